"""What the relay's control-channel tests share: a deployed testbed, and a client run as
uid/gid 65534 (nobody).

Not a conftest: imported as `from relay_testing import ...` (pytest puts tests/ on sys.path for
modules of a directory without __init__.py).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drills.netns.backend import NetnsBackend
from drills.runs import Run, RunStore
from drills.scenario import load_scenario
from drills.scenario.resolved import Topology

NOBODY = 65534
EACCES_STATUS = 13  # the child could not even connect
REFUSED_STATUS = 7  # it connected and was told it may not control the relay
HUNG_ROUNDS = 2000


@dataclass
class Deployed:
    topology: Topology
    namespaces: dict[str, str]
    run: Run
    backend: NetnsBackend


@contextmanager
def deployment(scenario_text: str, directory: Path, state_dir: Path, seed: int) -> Iterator[Deployed]:
    """Deploy `scenario_text` with the netns backend; tear it down after, asserting that the
    teardown was clean and that the run directory (the relays' sockets with it) is gone."""
    path = directory / "scenario.yaml"
    path.write_text(scenario_text)
    scenario = load_scenario(path)
    backend = NetnsBackend(seed=seed)
    run = RunStore(state_dir).create(scenario.name, path)
    bed = Deployed(scenario.topology, {n.name: backend.namespace_of(run, n.name) for n in scenario.topology.nodes}, run, backend)
    try:
        backend.deploy(scenario.topology, run)
        yield bed
    finally:
        report = backend.teardown(run)
        assert report.clean, report.left
        run.remove()
        assert not run.dir.exists()


def connect_as_nobody(directory: Path, name: str, pump: Callable[[], None]) -> int:
    """Fork a child that enters `directory` as root, drops to nobody and connects to `name`:
    what a local user could do if every directory above were open, so only the control
    directory and socket decide. Returns the child's status (see the *_STATUS constants).
    `pump` is called while waiting (an in-process server needs it; a relay process does not)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 99
        try:
            os.chdir(directory)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            status = _connect(name)
        finally:
            os._exit(status)
    for _ in range(HUNG_ROUNDS):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        pump()
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the unprivileged client hung")


def _connect(name: str) -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10.0)
    try:
        sock.connect(name)
    except PermissionError:
        return EACCES_STATUS
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    refusal = {"ok": False, "error": f"uid {NOBODY} may not control this relay (root only)"}
    return REFUSED_STATUS if json.loads(data) == refusal else 1

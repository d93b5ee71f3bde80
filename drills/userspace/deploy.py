"""Deploy and remove userspace links for the netns backend.

A userspace link is two TAPs, each born in its node's namespace under the link's interface
name (so addresses, MTU, routes and faults treat it as they treat a veth end), and one relay
process joining them. Order, each step journaled before it happens:

1. `{"op": "relay", ...}`: the intent (link, namespaces, control socket path, seed);
2. the TAPs and a link-event socket in each namespace, the control socket bound and listening
   in the run directory's root-only `relay/` (see `control`), all opened by this process, whose
   copies close once the relay has its own;
3. the relay process, in its own session, labelled `--run-id RUN` in its argv;
4. `{"op": "process", "pid": ..., "start": ..., "relay": LINK}`: teardown stops it like a service.

A non-persistent TAP disappears with its last descriptor, so a SIGKILLed relay (or deploying
process) leaves no device; a relay whose pid never reached the journal is found by its label
(`labelled_relays`). The control socket is a file in the run directory: the relay unlinks it
when it stops, and whatever a SIGKILL leaves goes with the run directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.clock import Clock
from drills.errors import BackendError
from drills.netns import kernel
from drills.runs import Run
from drills.scenario.resolved import Link
from drills.userspace import control, tap
from drills.userspace.impair import Impairments

# A relay that dies is reported at once (wait_ready checks its pid); this bound is only for one
# that is alive but slow to start: a Python interpreter starting under software emulation (the VM
# lane) takes several seconds, four of them at once on two CPUs longer still.
READY_TIMEOUT_S = 30.0
RELAY_MODULE = "drills.userspace.relay"


@dataclass(frozen=True)
class RelayHandle:
    """What the deploying process knows of a started relay."""

    link: str
    pid: int
    seed: int
    address: Path  # its control socket


def relay_seed(run_id: str, link: str, seed: int | None) -> int:
    """The seed of a link's relay: from the drill's seed when there is one, recorded either way."""
    base = f"{seed}" if seed is not None else run_id
    return zlib.crc32(f"{base}/{link}".encode())


def start_relay(
    run: Run,
    link: Link,
    ns_a: str,
    ns_b: str,
    initial: dict[str, Impairments],
    seed: int,
    names: tuple[str, str] | None = None,
) -> RelayHandle:
    """Create `link` as a TAP pair joined by a relay; returns once the relay runs. The TAPs are
    named after the link's ends unless `names` (a cross-host link's end: one TAP is the node's,
    the other the hidden end in the wire namespace, drills.netns.wire)."""
    name_a, name_b = names or (link.a.name, link.b.name)
    path = control.socket_path(run.dir, link.name)
    run.journal.record(
        [{"op": "relay", "link": link.name, "ns": [ns_a, ns_b], "control": str(path), "seed": seed}]
    )
    control.make_control_dir(run.dir)
    opened: list[int] = []
    listener: socket.socket | None = None
    try:
        for namespace, ifname in ((ns_a, name_a), (ns_b, name_b)):
            tap_fd, events = _open_end(namespace, ifname)
            opened += [tap_fd, events.detach()]
        listener = control.listen(path)
        opened.append(listener.detach())
        tap_a, events_a, tap_b, events_b, listen_fd = opened
        config = {direction: params.to_wire() for direction, params in initial.items()}
        argv = [
            sys.executable, "-m", RELAY_MODULE, "--run-id", run.run_id, "--link", link.name, "--seed", str(seed),
            "--tap-a", str(tap_a), "--tap-b", str(tap_b), "--events-a", str(events_a), "--events-b", str(events_b),
            "--control", str(listen_fd), "--control-path", str(path.absolute()), "--name-a", name_a, "--name-b", name_b,
            "--config", _json(config),
        ]  # fmt: skip
        log_path = run.dir / f"relay-{link.name}.log"
        with open(log_path, "ab") as log:
            try:
                process = subprocess.Popen(
                    argv, pass_fds=opened, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, cwd="/",
                )  # fmt: skip
            except OSError as exc:
                raise BackendError(f"cannot start the relay of link {link.name}: {exc}") from None
    finally:
        for fd in opened:
            os.close(fd)
    run.journal.record(
        [
            {
                "op": "process",
                "ns": ns_a,
                "pid": process.pid,
                "start": kernel.process_start_ticks(process.pid),
                "relay": link.name,
            }
        ]
    )
    return RelayHandle(link.name, process.pid, seed, path)


def _open_end(namespace: str, ifname: str) -> tuple[int, socket.socket]:
    def work() -> tuple[int, socket.socket]:
        fd = tap.open_tap(ifname)
        try:
            return fd, tap.link_events_socket()
        except BaseException:
            os.close(fd)
            raise

    try:
        return kernel.run_in_namespace(namespace, work)
    except OSError as exc:
        raise BackendError(f"cannot create TAP {ifname} in {namespace}: {exc}") from None


def _json(data: Any) -> str:
    import json

    return json.dumps(data, separators=(",", ":"))


def wait_ready(handle: RelayHandle, log_path: Path, clock: Clock, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until the relay answers and sees both ends up (their carriers then follow), on `clock`."""
    deadline = clock.now_s() + timeout_s
    last = "no answer"
    while clock.now_s() < deadline:
        if not _alive(handle.pid):
            raise BackendError(f"the relay of link {handle.link} exited: {_tail(log_path)}")
        try:
            with control.RelayControl(handle.address, timeout_s=1.0) as relay:
                state = relay.get()
            if all(state["up"].values()):
                return
            last = f"ends up: {state['up']}"
        except BackendError as exc:
            last = str(exc)
        clock.sleep_until(clock.now_s() + 0.01)
    raise BackendError(f"the relay of link {handle.link} is not ready after {timeout_s:g} s ({last})")


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists()
    return done != pid


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-3:])
    except OSError:
        return "(no log)"


def labelled_relays(run_id: str) -> list[tuple[int, int | None]]:
    """(pid, start ticks) of every relay process labelled with `run_id` (argv), journaled or not."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if RELAY_MODULE.encode() in argv and _label(argv) == run_id.encode():
            pid = int(entry.name)
            found.append((pid, kernel.process_start_ticks(pid)))
    return found


def _label(argv: list[bytes]) -> bytes | None:
    try:
        return argv[argv.index(b"--run-id") + 1]
    except (ValueError, IndexError):
        return None

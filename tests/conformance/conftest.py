"""A two-node testbed per test, its one link served by the engine under test.

`engine` is parametrized: `userspace` (TAP pair and relay) everywhere; `kernel` (veth pair and
netem qdiscs) is marked `netem` and skipped on a kernel without netem (the VM lane runs it)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import neighbours
import pytest
from conformance_testbed import TOPOLOGY, LinkTestbed

from drills import doctor
from drills.clock import SystemClock
from drills.engine.faults import FaultContext
from drills.netns.backend import NetnsBackend
from drills.netns.ops import NetnsOps
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.userspace.deploy import labelled_relays

# The relay is a process like any other on a machine shared with other jobs (and, in CI, with the
# VM lane's emulator): starved of CPU, it releases packets late and slowly, which the delay,
# jitter and rate checks would read as the engine's error. Under its real nice value the relay
# does what it would in a drill; here it runs at -10 (about 9x the CPU share of a default
# process under CFS), so that what the suite measures is the relay's model, not the host's load.
RELAY_NICE = -10


def _prioritise_relays(run_id: str) -> None:
    for pid, _start in labelled_relays(run_id):
        for task in os.listdir(f"/proc/{pid}/task"):  # every thread: nice is per thread on Linux
            os.setpriority(os.PRIO_PROCESS, int(task), RELAY_NICE)


def _has_netem() -> bool:
    return bool(doctor.kernel_capabilities().get(doctor.NETEM, False))


@pytest.fixture(
    params=[
        "userspace",
        pytest.param(
            "kernel",
            marks=[pytest.mark.netem, pytest.mark.skipif(not _has_netem(), reason="this kernel has no netem")],
        ),
    ]
)
def testbed(
    request: pytest.FixtureRequest, tmp_path: Path, state_dir: Path, host_snapshot: object
) -> Iterator[LinkTestbed]:
    engine = str(request.param)
    path = tmp_path / "conformance.yaml"
    path.write_text(TOPOLOGY.replace("ENGINE", engine))
    scenario = load_scenario(path)
    backend = NetnsBackend(seed=5)
    run = RunStore(state_dir).create(scenario.name, path)
    namespaces = {node.name: backend.namespace_of(run, node.name) for node in scenario.topology.nodes}
    bed: LinkTestbed | None = None
    ops: NetnsOps | None = None
    try:
        backend.deploy(scenario.topology, run)
        assert backend.engines == {"wire": engine}
        ops = backend.ops(run, SystemClock())
        assert isinstance(ops, NetnsOps)
        ctx = FaultContext(ops, SystemClock(), lambda _msg: None, random.Random(5))
        bed = LinkTestbed(engine, scenario.topology, namespaces, ctx, run, backend, ops)
        neighbours.pin_both(bed.ends())  # ARP off the impaired path: see tests/neighbours.py
        _prioritise_relays(run.run_id)
        yield bed
    finally:
        try:
            if bed is not None and bed.applied is not None:
                bed.applied.revert(bed.ctx)
        finally:
            if ops is not None:
                ops.close()
            report = backend.teardown(run)
            assert report.clean, report.left
            run.remove()

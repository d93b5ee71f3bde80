"""A two-node testbed per test, its one link served by the engine under test.

`engine` is parametrized: `userspace` (TAP pair and relay) everywhere; `kernel` (veth pair and
netem qdiscs) is marked `netem` and skipped on a kernel without netem (the VM lane runs it)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import neighbours
import pytest
from conformance_testbed import TOPOLOGY, LinkTestbed

from drills import doctor
from drills.engine.faults import FaultContext, Handles
from drills.netns.backend import NetnsBackend
from drills.runs import RunStore
from drills.scenario import load_scenario


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
def testbed(request: pytest.FixtureRequest, tmp_path: Path, state_dir: Path, host_snapshot: object) -> Iterator[LinkTestbed]:
    engine = str(request.param)
    path = tmp_path / "conformance.yaml"
    path.write_text(TOPOLOGY.replace("ENGINE", engine))
    scenario = load_scenario(path)
    backend = NetnsBackend(seed=5)
    run = RunStore(state_dir).create(scenario.name, path)
    namespaces = {node.name: backend.namespace_of(run, node.name) for node in scenario.topology.nodes}
    handles = Handles(namespaces)
    ctx = FaultContext(scenario.topology, handles, namespaces, lambda _msg: None, random.Random(5))
    bed = LinkTestbed(engine, scenario.topology, namespaces, ctx, run, backend)
    try:
        backend.deploy(scenario.topology, run)
        assert backend.engines == {"wire": engine}
        neighbours.pin_both(bed.ends())  # ARP off the impaired path: see tests/neighbours.py
        yield bed
    finally:
        try:
            if bed.applied is not None:
                bed.applied.revert(ctx)
        finally:
            handles.close()
            report = backend.teardown(run)
            assert report.clean, report.left
            run.remove()

"""A link's `profile:` is in force from deploy on, through the link's engine, and a degrade step
composes with it (the step's values over the profile's) and reverts to it. Also: ramps play
through the relay's control channel (the timevarying driver's userspace callback)."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from degrade_testing import degrade_step

from drills.backend import NodeOps
from drills.clock import SystemClock
from drills.engine.degrade import LinkDegrade
from drills.engine.faults import FaultContext
from drills.netns.backend import NetnsBackend
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.scenario.resolved import Scenario
from drills.userspace.control import RelayControl, socket_path
from drills.userspace.impair import Impairments

pytestmark = pytest.mark.netns

SCENARIO = """
version: 1
name: profiled
profiles:
  thin: {rate: 5mbit, reverse: {rate: 1mbit}}
topology:
  nodes: {a: {}, b: {}}
  links:
    - {name: sat, endpoints: [a:s0, b:s0], profile: geo-satellite, engine: userspace}
    - {name: thin, endpoints: [a:t0, b:t0], profile: thin}
"""


@dataclass
class Deployed:
    scenario: Scenario
    backend: NetnsBackend
    ctx: FaultContext
    namespaces: dict[str, str]
    run_dir: Path


@pytest.fixture
def deployed(tmp_path: Path, state_dir: Path, host_snapshot: object) -> Iterator[Deployed]:
    path = tmp_path / "p.yaml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    backend = NetnsBackend(seed=3)
    run = RunStore(state_dir).create(scenario.name, path)
    namespaces = {n.name: backend.namespace_of(run, n.name) for n in scenario.topology.nodes}
    ops: NodeOps | None = None
    try:
        backend.deploy(scenario.topology, run)
        ops = backend.ops(run, SystemClock())  # the driver plays on the real clock
        ctx = FaultContext(ops, SystemClock(), lambda _m: None, random.Random(3))
        yield Deployed(scenario, backend, ctx, namespaces, run.dir)
    finally:
        if ops is not None:
            ops.close()
        report = backend.teardown(run)
        assert report.clean, report.left
        run.remove()


def _relay(d: Deployed) -> RelayControl:
    return RelayControl(socket_path(d.run_dir, "sat"))


def _tbf_rate(namespace: str, ifname: str) -> str:
    out = subprocess.run(
        ["ip", "netns", "exec", namespace, "tc", "qdisc", "show", "dev", ifname, "root"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    assert "tbf d511:" in out, out
    return out.split(" rate ")[1].split()[0]


def _degrade(d: Deployed, **params: object) -> LinkDegrade:
    fault = LinkDegrade.from_step(degrade_step(d.scenario.topology, d.scenario.profiles, **params))
    fault.apply(d.ctx)
    return fault


def test_profiles_are_in_force_from_deploy(deployed: Deployed) -> None:
    assert deployed.backend.engines == {"sat": "userspace", "thin": "kernel"}
    with _relay(deployed) as relay:
        params = relay.params()
    assert params["a-to-b"].delay_s == 0.3 and params["a-to-b"].rate_bps == 50_000_000
    assert params["b-to-a"].rate_bps == 5_000_000 and params["b-to-a"].distribution == "normal"
    # A rate-only profile stays on the kernel (tbf), on both ends, reverse included.
    assert _tbf_rate(deployed.namespaces["a"], "t0") == "5Mbit"
    assert _tbf_rate(deployed.namespaces["b"], "t0") == "1Mbit"


def test_a_degrade_step_composes_with_the_profile_and_reverts_to_it(deployed: Deployed) -> None:
    with _relay(deployed) as relay:
        at_deploy = relay.params()
        fault = _degrade(deployed, link="sat", loss="5%")
        during = relay.params()
        assert during["a-to-b"].loss_pct == 5.0 and during["a-to-b"].delay_s == 0.3  # the profile's delay stays
        fault.revert(deployed.ctx)
        assert relay.params() == at_deploy
    fault = _degrade(deployed, link="thin", rate="2mbit", direction="a-to-b")
    assert _tbf_rate(deployed.namespaces["a"], "t0") == "2Mbit"
    fault.revert(deployed.ctx)
    assert _tbf_rate(deployed.namespaces["a"], "t0") == "5Mbit"


def test_a_ramp_plays_through_the_relay(deployed: Deployed) -> None:
    ramp = {"from": "10ms", "to": "20ms", "over": "1s"}
    step = degrade_step(deployed.scenario.topology, {}, link="sat", direction="a-to-b", ramp=ramp)
    fault = LinkDegrade.from_step(step)
    with _relay(deployed) as relay:
        fault.apply(deployed.ctx)
        assert relay.params()["a-to-b"].delay_s == pytest.approx(0.010)
        deadline = time.monotonic() + 5
        while relay.params()["a-to-b"].delay_s < 0.0199 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.params()["a-to-b"].delay_s == pytest.approx(0.020)
        fault.revert(deployed.ctx)
        assert relay.params()["a-to-b"] == Impairments(
            delay_s=0.3, jitter_s=0.01, distribution="normal", loss_pct=0.3, rate_bps=50_000_000
        )
    changes = fault.changes()
    assert len(changes) == 10 and all(c.error is None for c in changes)

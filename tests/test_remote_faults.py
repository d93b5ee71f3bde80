"""Every fault the engine has, applied and reverted through AgentOps on a local agent: what a
fault hands the seam (links, routes, impairment settings, rule tables, signals, services) crosses
the channel and acts on the agent's namespaces exactly as the same fault does locally, and the
part is torn down clean afterwards (host_snapshot)."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from drills.backend import HostPart, LinkState
from drills.clock import SystemClock
from drills.engine.fault import FaultContext
from drills.engine.faults import build
from drills.engine.timeline import expand
from drills.remote.agent_ops import AgentOps
from drills.remote.client import AgentClient
from drills.scenario import load_scenario

pytestmark = pytest.mark.netns

SCENARIO = """
version: 1
name: faults
seed: 1
topology:
  nodes:
    a: {}
    b: {services: [{name: svc, command: "sleep 1000"}]}
  links:
    - {name: ab, endpoints: ["a:e1", "b:e1"]}
timeline:
  - {at: 1s, fault: link-down, link: ab, for: 1s}
  - {at: 3s, fault: degrade, link: ab, rate: 10mbit, for: 1s}
  - {at: 5s, fault: partition, groups: [[a], [b]], for: 1s}
  - {at: 7s, fault: blackhole, link: ab, for: 1s}
  - {at: 9s, fault: node-freeze, node: b, for: 1s}
  - {at: 11s, fault: service-stop, node: b, service: svc, for: 1s}
  - {at: 13s, fault: node-loss, node: b, for: 1s}
  - {at: 15s, fault: exec, node: a, command: "true"}
"""


def test_every_fault_through_the_agent(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    lines: list[str] = []
    client = AgentClient("h1", [sys.executable, "-m", "drills", "agent"], lines.append)
    try:
        client.call("hello", "fa0001", "h1", "run", str(state_dir))
        client.call("deploy", scenario.topology, HostPart("h1", ("a", "b")), 1)
        ops = AgentOps(client)
        ops.warm()
        ctx = FaultContext(ops, SystemClock(), lines.append, random.Random(1))
        done = []
        for action in expand(scenario, 1):
            fault = build(action.step)
            if action.kind == "apply":
                fault.apply(ctx)
            else:
                fault.revert(ctx)
            done.append(f"{action.kind} {action.step.kind}")
        assert len(done) == 15, done
        # after every revert the testbed is as deployed
        assert ops.link_state("a", "e1") == LinkState(True, True)
        assert ops.service_running("b", "svc")
        address = scenario.topology.node("b").interfaces[0].ipv4
        assert address is not None
        assert ops.exec("a", f"ping -c1 -W2 {address.ip}", 5.0).returncode == 0
        report = client.call("teardown")
        assert report.clean, report.left
    finally:
        client.close()

"""Degrade of a cross-host link on the lane (tests/lane_testing.py: three SSH hosts, provisioned
by Ansible): each direction is impaired on its sender's host, by the engine that host chose for
its end (the kernel's netem where the kernel has it; else, as on this machine, the userspace
engine's relay between the node's TAP and the tunnel's).

The stream's round trips are measured by its sender on its own clock (no clock sync needed): a
degrade of one direction by DELAY_MS holds every packet of that direction at least that long,
so the fault phase's median round trip is at least DELAY_MS whatever the load, and below twice
it (see the bound's comment).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lane_testing import Lane

from drills.backend import NETEM
from drills.lifecycle import run as run_drill

pytestmark = [pytest.mark.netns, pytest.mark.docker]

DELAY_MS = 60
# a (h1) - b (h2) - c (h3); ab is degraded one direction at a time: a-to-b (on h1, a's host),
# then b-to-a (on h2, b's host). The stream from a to c crosses ab both ways.
SCENARIO = f"""
version: 1
name: three-hosts-degrade
seed: 11
topology:
  nodes:
    a: {{host: h1, routes: [{{to: c, via: b:e1}}, {{to: b, via: b:e1}}]}}
    b: {{host: h2, routes: [{{to: a, via: a:e1}}, {{to: c, via: c:e2}}]}}
    c: {{host: h3, routes: [{{to: a, via: b:e2}}, {{to: b, via: b:e2}}]}}
  links:
    - {{name: ab, endpoints: [a:e1, b:e1]}}
    - {{name: bc, endpoints: [b:e2, c:e2]}}
probes:
  - {{name: stream, type: udp-stream, from: a, to: c, rate_pps: 100}}
timeline:
  - {{id: out, at: 2s, fault: degrade, link: ab, direction: a-to-b, delay: {DELAY_MS}ms, for: 2s}}
  - {{id: back, at: 5s, fault: degrade, link: ab, direction: b-to-a, delay: {DELAY_MS}ms, for: 2s}}
duration: 9s
"""


def test_a_cross_host_link_is_degraded_each_way_on_its_senders_host(tmp_path: Path, state_dir: Path, lane: Lane) -> None:
    before = {host.name: lane.snapshot(host.name) for host in lane.hosts}
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO)
    log: list[str] = []
    result = run_drill(path, state_dir, log=log.append, inventory=lane.inventory)
    from drills.netns.host_checks import kernel_capabilities

    # The lane's hosts share this machine's kernel: its netem decides every host's engine.
    expected = "kernel" if kernel_capabilities().get(NETEM, False) else "userspace"
    assert result.engines["ab"] == expected, result.engines
    assert result.engines["bc"] == "kernel"  # never impaired: a veth at each end
    phases = {p.phase: p for p in result.phases["stream"]}
    baseline, fault = phases["baseline"], phases["fault"]
    assert baseline.rtt_p50_s is not None and fault.rtt_p50_s is not None
    assert baseline.rtt_p50_s < DELAY_MS / 1000
    # At least the one delay (each packet crosses ab once each way and one of them is held), and
    # below two: only one direction at a time, on one host. The upper bound fails only if more
    # than half of the fault phase's 400 round trips were each late by over 60 ms, on a machine
    # whose baseline median is well under a millisecond: no load seen on this lane comes near.
    assert DELAY_MS / 1000 <= fault.rtt_p50_s < 2 * DELAY_MS / 1000, (baseline, fault)
    for host in lane.hosts:
        assert lane.leftovers(host.name, before[host.name]) == []
    assert not any(state_dir.glob("runs/*"))

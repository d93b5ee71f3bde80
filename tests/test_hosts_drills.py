"""Drills spread over three hosts, on the lane (tests/lane_testing.py): three privileged
containers running a real sshd, provisioned by Ansible, each reached by the controller over SSH
with a real key; every cross-host link is a VXLAN tunnel over the lane's underlay.

What is checked: a cross-host cable cut of 2 s measures 2 s within its stated accuracy; a
failover sees the carrier loss on the remote end and takes the backup; a controller killed with
SIGKILL mid-drill leaves every host clean once the agents' dead-man switch has fired, and
`drill clean` then has nothing left; an unreachable host, and a host lacking a capability, are
refused before anything is deployed anywhere, naming the host and why.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from lane_testing import CHAIN, Lane

from drills.errors import BackendError, ScenarioError
from drills.lifecycle import run as run_drill
from drills.records import StreamRecord

pytestmark = [pytest.mark.netns, pytest.mark.docker]

DEADMAN_BOUND_S = 5.0  # the agent's stated bound: its part is gone within 5 s of the channel's loss

FAILOVER = """
version: 1
name: three-hosts-failover
seed: 5
topology:
  nodes:
    cp:
      host: h1
      routes:
        - {to: dispatch, via: eoc:fibre0, metric: 10}
        - {to: dispatch, via: eoc:sat0, metric: 100}
    eoc:
      host: h2
      routes:
        - {to: cp, via: cp:fibre0, metric: 10}
        - {to: cp, via: cp:sat0, metric: 100}
        - {to: dispatch, via: dispatch:lan0}
    dispatch:
      host: h3
      routes:
        - {to: default, via: eoc:lan0}
  links:
    - {name: fibre, endpoints: [cp:fibre0, eoc:fibre0]}
    - {name: vsat, endpoints: [cp:sat0, eoc:sat0]}
    - {name: eoc-lan, endpoints: [eoc:lan0, dispatch:lan0]}
probes:
  - {name: voice, type: udp-stream, from: dispatch, to: cp, rate_pps: 1000}
timeline:
  - {id: fibre-cut, at: 2s, fault: link-down, link: fibre, for: 3s}
expect:
  - {name: failover, probe: voice, step: fibre-cut, max_outage: 200ms, max_recovery: 1s}
duration: 7s
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_a_cross_host_cut_of_two_seconds_measures_two_seconds(tmp_path: Path, state_dir: Path, lane: Lane) -> None:
    before = {host.name: lane.snapshot(host.name) for host in lane.hosts}
    result = run_drill(_write(tmp_path, CHAIN), state_dir, log=lambda _m: None, inventory=lane.inventory)
    apply, revert = (s for s in result.steps if s.label == "cut")
    cut = next(m for m in result.metrics if m.kind == "apply")
    # Loss-derived: lost packets x the gap, no clock involved, exact to a packet gap and the
    # apply's confirmation window, over the span between the steps the engine issued (as on
    # one machine: tests/test_drill_run.py).
    span_s = revert.issued_s - apply.issued_s
    assert abs(cut.outage_s - span_s) <= cut.accuracy_s, (cut.outage_s, span_s, cut.accuracy_s)
    # The stated accuracy is one packet gap, the sender's lateness at the loss's edges, the apply's in-force
    # window and the stream's clock bound (h1's, where it runs): nothing else. The in-force
    # window runs from the first host starting the cut to the first end the kernel had down
    # (either end down stops the link), placed by the hosts' own stamps, each widened by its
    # clock bound: within the window to the last read-back, never wider.
    assert apply.issued_s <= apply.effect_by_s <= apply.confirmed_s, apply
    assert apply.in_force_s is not None and revert.in_force_s is None  # restored: every end must be up
    window_s = apply.effect_by_s - apply.issued_s
    record = next(r for r in result.records if isinstance(r, StreamRecord) and r.name == "stream")
    bound_s = next(float(h["bound_s"]) for h in result.hosts if h["host"] == "h1")
    assert record.clock_bound_s == bound_s
    edges_s = cut.accuracy_s - (1 / 1000 + window_s + bound_s)  # the lateness at the loss's edges
    assert -1e-9 <= edges_s <= max(record.send_lateness_s) + 1e-9, (edges_s, cut)
    # Its size is a benchmark's figure (bench/hosts.py: ±1.7-2.4 ms on the lane, the issue's
    # target ±3 ms), not asserted here (a shared machine's load must not fail a test); this
    # catches only a regression by an order of magnitude (a fault spawning a process, 10-20 ms).
    assert cut.accuracy_s < 0.010, cut
    # The hosts ran the cut at its instant: sent ahead, held by each agent until then.
    assert apply.issued_s >= apply.scheduled_s - 2 * max(float(h["bound_s"]) for h in result.hosts)
    assert not cut.recovered_during_event
    assert not result.inconclusive
    # Every host's clock offset is recorded with its bound; this lane's hosts share one kernel
    # clock, so the estimate must cover 0.
    assert {h["host"] for h in result.hosts} == {"h1", "h2", "h3"}
    for clock in result.hosts:
        assert abs(float(clock["offset_s"])) <= float(clock["bound_s"]) + 1e-6, clock
    for host in lane.hosts:
        assert lane.leftovers(host.name, before[host.name]) == []
    assert not any(state_dir.glob("runs/*"))


def test_a_failover_across_hosts_sees_carrier_loss_at_the_remote_end(tmp_path: Path, state_dir: Path, lane: Lane) -> None:
    before = {host.name: lane.snapshot(host.name) for host in lane.hosts}
    result = run_drill(_write(tmp_path, FAILOVER), state_dir, log=lambda _m: None, inventory=lane.inventory)
    cut = next(m for m in result.metrics if m.kind == "apply")
    # The stream starts at dispatch (h3), enters at eoc (h2): eoc's end of the fibre is the
    # REMOTE end of the cut made at cp (h1). Only its carrier loss reroutes eoc to the satellite.
    assert cut.recovered_during_event, cut
    assert cut.outage_s < 0.2, cut
    assert all(v.passed for v in result.verdicts), result.verdicts
    for host in lane.hosts:
        assert lane.leftovers(host.name, before[host.name]) == []


def test_sigkill_of_the_controller_leaves_every_host_clean(tmp_path: Path, state_dir: Path, lane: Lane, drill: object) -> None:
    before = {host.name: lane.snapshot(host.name) for host in lane.hosts}
    path = _write(tmp_path, CHAIN.replace("duration: 6s", "duration: 30s"))
    argv = drill.argv("run", str(path), "--inventory", str(lane.inventory), "--out", str(tmp_path / "out"))  # type: ignore[attr-defined]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Wait (bounded) until every host's part is deployed: the hosts show the run's namespaces.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(lane.leftovers(h.name, before[h.name]) for h in lane.hosts):
            time.sleep(0.2)
        assert all(lane.leftovers(h.name, before[h.name]) for h in lane.hosts), "never deployed"
        time.sleep(2.5)  # inside the drill: the cut is applied at 2 s
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        killed = time.monotonic()
        # Each agent sees its channel lost and tears its part down within the stated bound.
        # Polled up to twice the bound: the figure itself is the benchmark's, not this test's.
        while time.monotonic() < killed + 2 * DEADMAN_BOUND_S and any(
            lane.leftovers(h.name, before[h.name]) for h in lane.hosts
        ):
            time.sleep(0.2)
        for host in lane.hosts:
            assert lane.leftovers(host.name, before[host.name]) == [], host.name
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    cleaned = drill("clean")  # type: ignore[operator]
    assert cleaned.returncode == 0, cleaned.stderr
    assert not any(state_dir.glob("runs/*"))
    for host in lane.hosts:
        assert lane.leftovers(host.name, before[host.name]) == []


def test_an_unreachable_host_is_refused_before_anything_is_deployed(tmp_path: Path, state_dir: Path, lane: Lane) -> None:
    before = {host.name: lane.snapshot(host.name) for host in lane.hosts}
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(lane.inventory.read_text().replace("198.19.254.13", "198.19.254.99"))
    with pytest.raises(BackendError, match="h3") as raised:
        run_drill(_write(tmp_path, CHAIN), state_dir, log=lambda _m: None, inventory=inventory)
    assert "before anything was deployed" in str(raised.value)
    for host in lane.hosts:
        assert lane.leftovers(host.name, before[host.name]) == []
    assert not any(state_dir.glob("runs/*"))


def test_a_host_lacking_a_capability_is_refused_naming_it(tmp_path: Path, state_dir: Path, lane: Lane) -> None:
    """h3 without `nft`: a blackhole (packet-filter rules) on one of its nodes cannot run."""
    before = {host.name: lane.snapshot(host.name) for host in lane.hosts}
    scenario = CHAIN.replace(
        "  - {id: cut, at: 2s, fault: link-down, link: ab, for: 2s}",
        "  - {id: cut, at: 2s, fault: blackhole, link: bc, for: 2s}",
    )
    lane.ssh("h3", "mv /usr/sbin/nft /usr/sbin/nft.hidden", timeout_s=30)
    try:
        with pytest.raises(ScenarioError, match="host h3") as raised:
            run_drill(_write(tmp_path, scenario), state_dir, log=lambda _m: None, inventory=lane.inventory)
    finally:
        lane.ssh("h3", "mv /usr/sbin/nft.hidden /usr/sbin/nft", timeout_s=30)
    assert "host h1" not in str(raised.value)
    for host in lane.hosts:
        assert lane.leftovers(host.name, before[host.name]) == []
    assert not any(state_dir.glob("runs/*"))


def test_results_json_records_each_hosts_clock(tmp_path: Path, state_dir: Path, lane: Lane, drill: object) -> None:
    out = tmp_path / "out"
    done = drill("run", str(_write(tmp_path, CHAIN)), "--inventory", str(lane.inventory), "--out", str(out), timeout_s=180)  # type: ignore[operator]
    assert done.returncode in (0, 1), done.stderr
    results = json.loads((out / "results.json").read_text())
    assert [h["host"] for h in results["hosts"]] == ["h1", "h2", "h3"]


def test_the_example_runs_across_three_hosts_with_one_command(tmp_path: Path, lane: Lane, drill: object) -> None:
    """scenarios/three-hosts-cable-cut.yaml, as a user runs it: one `drill run` with an inventory
    naming the example's three hosts (here, the lane's), exit 0, every host left as it was."""
    before = {host.name: lane.snapshot(host.name) for host in lane.hosts}
    inventory = tmp_path / "hosts.ini"
    names = {"host-a": "h1", "host-b": "h2", "host-c": "h3"}
    inventory.write_text(
        "[backbone]\n" + "".join(lane.inventory_line(name, lane.host(h).address) + "\n" for name, h in names.items())
    )
    scenario = Path(__file__).resolve().parent.parent / "scenarios" / "three-hosts-cable-cut.yaml"
    out = tmp_path / "out"
    done = drill("run", str(scenario), "--inventory", str(inventory), "--out", str(out), timeout_s=300)  # type: ignore[operator]
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["outcome"] == "passed"
    assert sorted(h["host"] for h in results["hosts"]) == ["host-a", "host-b", "host-c"]
    for host in lane.hosts:
        assert lane.leftovers(host.name, before[host.name]) == []


def test_up_ls_exec_and_down_across_hosts(tmp_path: Path, lane: Lane, drill: object) -> None:
    """`drill up` leaves each host's part up after the controller leaves; `drill ls` shows the
    hosts; `drill exec` runs in a node on its host over SSH; `drill down` removes every part."""
    before = {host.name: lane.snapshot(host.name) for host in lane.hosts}
    path = _write(tmp_path, CHAIN)
    up = drill("up", str(path), "--inventory", str(lane.inventory), timeout_s=180)  # type: ignore[operator]
    try:
        assert up.returncode == 0, up.stderr
        listed = drill("ls")  # type: ignore[operator]
        assert listed.returncode == 0 and all(h in listed.stdout for h in ("h1", "h2", "h3")), listed.stdout
        inside = drill("exec", "c", "--", "ip", "-o", "link", "show", "e2", timeout_s=60)  # type: ignore[operator]
        assert inside.returncode == 0 and "mtu 1450" in inside.stdout, inside.stdout + inside.stderr
        assert all(lane.leftovers(h.name, before[h.name]) for h in lane.hosts), "the parts did not stay up"
    finally:
        down = drill("down", timeout_s=180)  # type: ignore[operator]
    assert down.returncode == 0, down.stderr
    for host in lane.hosts:
        assert lane.leftovers(host.name, before[host.name]) == []

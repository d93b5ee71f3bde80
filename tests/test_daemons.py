"""FRR and keepalived as node daemons (drills.scenario.daemons) on real namespaces: the
known-answer scenarios' outages fall inside their derived windows, two FRR instances do not see
each other, a node-loss restarts a router's daemons, and nothing is left behind.

The windows come from the protocols' timers (each scenario's header derives its own); they are
not timing asserts of this machine. What is random in them is bounded by the protocols: BFD's
transmit jitter is 0-25 % (RFC 5880 6.8.7), so its detection falls in 0.6-0.9 s of the fault
whatever the draw; FRR's OSPF hellos have no jitter, so the dead interval fires 3-4 s after it.
What is left is this machine's scheduling of ospfd/zebra after the detection (milliseconds on
an idle network) and the figure's stated accuracy (tens of ms): each bound has a margin of at
least 50 ms below and 250 ms above the derived window, more than the worst scheduling delay of a
loaded 2-core machine, so a chance failure is far below 1e-6. The satellite's rain loss (0.3 %
each way) adds isolated lost packets to the outage; that test bounds the longest loss period,
which such isolated losses do not lengthen.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drills.drill_result import DrillResult
from drills.errors import BackendError, ScenarioError
from drills.lifecycle import clean, down, up
from drills.lifecycle import run as run_drill
from drills.netns.backend import namespace_name
from drills.scenario import daemons, load_scenario

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
FRR_PROCESSES = ("zebra", "ospfd", "bfdd", "staticd", "keepalived")

# Skipped where FRR is missing, but never in CI, which installs it (./dev): there a missing
# daemon must fail, not hide.
needs_frr = pytest.mark.skipif(
    not all(os.access(p, os.X_OK) for p in daemons.programs() if p != daemons.KEEPALIVED)
    and os.environ.get("CI", "").strip().lower() not in ("true", "1", "yes"),
    reason="FRR (Debian's frr package) is not installed",
)


def _daemons_under(directory: Path) -> list[str]:
    """Daemon processes whose working directory lies under `directory` (a run's private dirs):
    exact even while other drills run daemons on this host."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if comm in FRR_PROCESSES and cwd.startswith(str(directory)):
            found.append(f"{comm} (pid {entry.name}, in {cwd})")
    return found


def _apply(result: DrillResult, probe: str = "stream") -> tuple[float, float, float]:
    """(outage, longest loss period, accuracy) of the first fault's apply event, in seconds."""
    metric = next(m for m in result.metrics if m.kind == "apply" and m.probe == probe)
    return metric.outage_s, metric.max_loss_period_s, metric.accuracy_s


def _run(name: str, state_dir: Path, log: list[str] | None = None) -> DrillResult:
    lines = log if log is not None else []
    result = run_drill(SCENARIOS / name, state_dir, log=lines.append)
    assert not result.inconclusive, "the baseline lost packets: the network had not converged"
    assert not _daemons_under(state_dir)
    return result


@needs_frr
def test_bfd_detects_a_blackhole_in_0_6_to_0_9_s(state_dir: Path, host_snapshot: object) -> None:
    result = _run("ospf-bfd-blackhole.yaml", state_dir)
    outage_s, _, accuracy_s = _apply(result)
    # Derived window 0.6-0.9 s + SPF/install (ms): see the scenario's header.
    assert 0.6 - 0.05 - accuracy_s <= outage_s <= 0.9 + 0.25 + accuracy_s, outage_s
    assert result.passed


@needs_frr
def test_without_bfd_the_dead_interval_decides_3_to_4_s(state_dir: Path, host_snapshot: object) -> None:
    result = _run("ospf-dead-interval-blackhole.yaml", state_dir)
    outage_s, _, accuracy_s = _apply(result)
    assert 3.0 - 0.1 - accuracy_s <= outage_s <= 4.0 + 0.25 + accuracy_s, outage_s
    assert result.passed


@needs_frr
def test_carrier_loss_reroutes_at_once(state_dir: Path, host_snapshot: object) -> None:
    result = _run("ospf-carrier-loss.yaml", state_dir)
    outage_s, _, accuracy_s = _apply(result)
    # Local events only (interface down -> neighbour killed -> LSA -> SPF at 0 ms -> install).
    assert outage_s <= 0.3 + accuracy_s, outage_s
    assert result.passed


@needs_frr
def test_satellite_failover_with_bfd(state_dir: Path, host_snapshot: object) -> None:
    result = _run("satellite-failover-bfd.yaml", state_dir)
    outage_s, longest_s, accuracy_s = _apply(result)
    # The gap itself is BFD's 0.6-0.9 s on the fibre; rain loss on the satellite adds isolated
    # packets to the outage (not to the longest period): binomial, at most 1,600 packets in the
    # 8 s event at 1 - 0.997^2 = 0.6 % (both ways), mean 9.6; 30 or more with probability
    # 9e-8 (computed exactly): 30 x 5 ms = 0.15 s.
    assert 0.6 - 0.05 - accuracy_s <= longest_s <= 0.9 + 0.25 + accuracy_s, longest_s
    assert longest_s <= outage_s <= longest_s + 0.15 + accuracy_s, (outage_s, longest_s)
    fault = next(p for p in result.phases["stream"] if p.phase == "fault")
    # The fault phase (8 s) spends its first 0.6-0.9 s losing packets on the fibre and the
    # rest on the satellite: its median round trip is the satellite's 2 x 300 ms, jitter 10 ms
    # (normal) each way, plus the relay's fraction of a ms (measured 602-608 ms).
    assert fault.rtt_p50_s is not None and 0.57 <= fault.rtt_p50_s <= 0.7, fault.rtt_p50_s
    assert result.passed


TWO_ROUTERS = """
version: 1
name: two-routers
seed: 3
topology:
  nodes:
    r1:
      daemons:
        frr: {config: FRR/r1-bfd.conf, daemons: [ospfd, bfdd], ospf_neighbors: 2}
    r2:
      daemons:
        frr: {config: FRR/r2-bfd.conf, daemons: [ospfd, bfdd], ospf_neighbors: 2}
  links:
    - {name: primary, endpoints: [r1:p, r2:p]}
    - {name: backup, endpoints: [r1:s, r2:s]}
probes:
  - {name: ping, type: icmp, from: r1, to: r2}
timeline:
  - {at: 1s, fault: note, text: nothing}
duration: 2s
"""


def _vtysh(run_id: str, run_dir: Path, node: str, command: str) -> str:
    directory = run_dir / "nodes" / node / "frr"
    shell = f"{daemons.vtysh_command(shlex.quote(str(directory)))} -c '{command}'"
    result = subprocess.run(
        ["ip", "netns", "exec", namespace_name(run_id, node), "/bin/sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return result.stdout


def _host_frr_paths() -> set[str]:
    found: set[str] = set()
    for directory in (Path("/etc/frr"), Path("/var/run/frr"), Path("/tmp")):
        if directory.is_dir():
            found |= {str(p) for p in directory.iterdir() if "frr" in str(p) or "keepalived" in p.name}
    return found


@needs_frr
def test_two_frr_instances_see_only_themselves(tmp_path: Path, state_dir: Path, host_snapshot: object) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_ROUTERS.replace("FRR", str(ROOT / "testbed" / "frr")))
    before = _host_frr_paths()
    started = up(path, state_dir)
    run_id = started.meta.run_id
    run_dir = state_dir / "runs" / run_id
    try:
        for me, peer in (("1", "2"), ("2", "1")):
            config = _vtysh(run_id, run_dir, f"r{me}", "show running-config")
            assert f"ospf router-id 10.255.0.{me}" in config
            assert f"10.255.0.{peer}" not in config
            neighbours = _vtysh(run_id, run_dir, f"r{me}", "show ip ospf neighbor")
            assert neighbours.count(f"10.255.0.{peer} ") == 2 and f"10.255.0.{me} " not in neighbours
        # Every daemon of each router runs in that router's own directory, with its own pid file.
        pids = {}
        for node in ("r1", "r2"):
            directory = run_dir / "nodes" / node / "frr"
            for daemon in ("zebra", "ospfd", "bfdd"):
                pid = int((directory / f"{daemon}.pid").read_text())
                assert os.readlink(f"/proc/{pid}/cwd") == str(directory)
                pids[(node, daemon)] = pid
        assert len(set(pids.values())) == 6
        assert _host_frr_paths() == before  # nothing in the host's /etc/frr, /var/run/frr, /tmp
    finally:
        down(state_dir, run_id)
    assert not _daemons_under(state_dir)


NODE_LOSS = """
version: 1
name: router-loss
seed: 5
topology:
  nodes:
    a: {loopback: none, routes: [{to: default, via: r1:site}]}
    b: {loopback: none, routes: [{to: default, via: r2:site}]}
    r1:
      daemons:
        frr: {config: FRR/r1.conf, ospf_neighbors: 2, ospf_routes: 2}
    r2:
      daemons:
        frr: {config: FRR/r2.conf, ospf_neighbors: 2, ospf_routes: 2}
  links:
    - {name: site-a, endpoints: [a:e0, r1:site]}
    - {name: primary, endpoints: [r1:p, r2:p]}
    - {name: backup, endpoints: [r1:s, r2:s]}
    - {name: site-b, endpoints: [r2:site, b:e0]}
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 200}
timeline:
  - {id: loss, at: 3s, fault: node-loss, node: r2, for: 3s}
duration: 28s
"""


@needs_frr
def test_node_loss_restarts_the_routers_daemons(tmp_path: Path, state_dir: Path, host_snapshot: object) -> None:
    path = tmp_path / "loss.yaml"
    path.write_text(NODE_LOSS.replace("FRR", str(ROOT / "testbed" / "frr")))
    log: list[str] = []
    result = run_drill(path, state_dir, log=log.append)
    assert not result.revert_failures
    # Each of r2's daemons was started twice through the backend (journaled, readiness checked):
    # at deploy and at the restore; r1's once.
    for daemon in ("zebra", "ospfd"):
        assert sum(f"service r2/{daemon} started" in line for line in log) == 2, log
        assert sum(f"service r1/{daemon} started" in line for line in log) == 1, log
    # Traffic came back after the restore: r2's daemons took their configuration and OSPF
    # formed its adjacencies again. Not at once: r1 still holds r2's old router-LSA, so r2's new
    # one must be originated again with a higher sequence number (RFC 2328 13.4), and each
    # router's origination waits MinLSInterval (5 s, FRR's `timers throttle lsa all 5000`)
    # after its previous one: about 2 x 5 s plus the adjacency (measured 11 s). Bound: 20 s.
    restored = next(m for m in result.metrics if m.kind == "revert")
    assert restored.time_to_recover_s is not None and restored.time_to_recover_s < 20.0
    assert not _daemons_under(state_dir)


def test_a_missing_daemon_is_refused_before_deploy(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_ROUTERS.replace("FRR", str(ROOT / "testbed" / "frr")))
    scenario = load_scenario(path)
    without_bfdd = {daemons.capability(p): p != f"{daemons.FRR_DIR}/bfdd" for p in daemons.programs()}
    problems = daemons.requirements(scenario, without_bfdd)
    assert [str(p) for p in problems] == [
        f"{path}:9:9: topology.nodes.r1.daemons: node r1 runs /usr/lib/frr/bfdd, not installed on this host; install Debian's packages (apt-get install frr)",
        f"{path}:12:9: topology.nodes.r2.daemons: node r2 runs /usr/lib/frr/bfdd, not installed on this host; install Debian's packages (apt-get install frr)",
    ]
    everything = {daemons.capability(p): True for p in daemons.programs()}
    assert daemons.requirements(scenario, everything) == []


def test_vrrp_master_loss_fails_over_in_master_down_interval(state_dir: Path, host_snapshot: object) -> None:
    # VRRPv3 (RFC 5798 6.1): Master_Down_Interval = 3 x 1 s + (256 - 100) / 256 s = 3.61 s after
    # the master's last advertisement, sent 0-1 s before the node-loss: 2.61-3.61 s. Skew_Time
    # rules out a tie; the master's advertisements have no jitter (keepalived).
    result = _run("vrrp-master-loss.yaml", state_dir)
    outage_s, _, accuracy_s = _apply(result)
    assert 2.61 - 0.1 - accuracy_s <= outage_s <= 3.61 + 0.3 + accuracy_s, outage_s
    assert result.passed


KEEPALIVED_PAIR = """
version: 1
name: vrrp-pair
seed: 4
topology:
  nodes:
    gw1:
      daemons:
        keepalived:
          config: |
            global_defs {
              vrrp_version 3
            }
            vrrp_instance v {
              state MASTER
              interface l
              virtual_router_id 51
              priority 200
              advert_int 1
              virtual_ipaddress {
                198.18.99.254/32
              }
            }
    gw2:
      daemons:
        keepalived:
          config: |
            global_defs {
              vrrp_version 3
            }
            vrrp_instance v {
              state BACKUP
              interface l
              virtual_router_id 51
              priority 100
              advert_int 1
              virtual_ipaddress {
                198.18.99.254/32
              }
            }
  links:
    - {name: l, endpoints: [gw1:l, gw2:l]}
probes:
  - {name: ping, type: icmp, from: gw1, to: gw2}
timeline:
  - {at: 1s, fault: note, text: nothing}
duration: 2s
"""


def _holds(run_id: str, node: str, address: str) -> bool:
    shown = subprocess.run(
        ["ip", "-n", namespace_name(run_id, node), "-4", "addr", "show", "dev", "l"],
        capture_output=True,
        text=True,
        timeout=5,
        check=True,
    ).stdout
    return f" {address}/" in shown


@pytest.mark.skipif(not os.access(daemons.KEEPALIVED, os.X_OK), reason="keepalived is not installed")
def test_two_keepalived_instances_elect_one_master(tmp_path: Path, state_dir: Path, host_snapshot: object) -> None:
    path = tmp_path / "pair.yaml"
    path.write_text(KEEPALIVED_PAIR)
    started = up(path, state_dir)
    run_id = started.meta.run_id
    run_dir = state_dir / "runs" / run_id
    try:
        # Each instance has its own pid files (keepalived locks them per config id) and runs
        # from its own directory; no /tmp/keepalived.data, no /run/keepalived.pid of the host's.
        pids = set()
        for node in ("gw1", "gw2"):
            directory = run_dir / "nodes" / node / "keepalived"
            for name in ("keepalived.pid", "vrrp.pid"):
                pids.add(int((directory / name).read_text()))
        assert len(pids) == 4
        # gw1 (priority 200, state MASTER) holds the address within a Master_Down_Interval of
        # gw2 (3.61 s), whichever started first; gw2 never does while gw1 advertises.
        deadline_s = time.monotonic() + 8.0
        while not _holds(run_id, "gw1", "198.18.99.254") and time.monotonic() < deadline_s:
            time.sleep(0.1)
        assert _holds(run_id, "gw1", "198.18.99.254")
        time.sleep(1.5)  # an advertisement interval and a half: gw2 heard gw1 and stays backup
        assert not _holds(run_id, "gw2", "198.18.99.254")
    finally:
        down(state_dir, run_id)
    assert not _daemons_under(state_dir)


@needs_frr
def test_drill_clean_after_sigkill_stops_every_daemon(tmp_path: Path, state_dir: Path, host_snapshot: object) -> None:
    """`drill run` killed with SIGKILL while its drill runs (daemons up, adjacencies Full): one
    `drill clean` stops every daemon it started (journaled like any service) and removes the
    namespaces."""
    path = tmp_path / "two.yaml"
    path.write_text(TWO_ROUTERS.replace("FRR", str(ROOT / "testbed" / "frr")).replace("duration: 2s", "duration: 60s"))
    argv = [sys.executable, "-m", "drills", "--state-dir", str(state_dir), "run", str(path), "--out", str(tmp_path / "out")]
    with open(tmp_path / "run.log", "wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
    try:
        # Until the drill's clock runs (deploy waited for every daemon and the adjacencies).
        deadline_s = time.monotonic() + 60.0
        while time.monotonic() < deadline_s and process.poll() is None:
            if "drill clock started" in (tmp_path / "run.log").read_text():
                break
            time.sleep(0.1)
        assert process.poll() is None, (tmp_path / "run.log").read_text()
        assert len(_daemons_under(state_dir)) == 6  # zebra, ospfd, bfdd in each router
    finally:
        process.kill()
        process.wait(timeout=10)
    assert len(_daemons_under(state_dir)) == 6  # SIGKILL took drills, not the daemons
    report = clean(state_dir)
    assert report.clean and len(report.cleaned) == 1 and not report.skipped, report
    assert not _daemons_under(state_dir)


# --------------------------------------------------------------------------- resolution (no kernel)

BROKEN = """
version: 1
name: broken
topology:
  nodes:
    r1:
      services: [{name: zebra, command: sleep 1}]
      daemons:
        frr: {config: missing.conf}
    c1:
      kind: container
      image: drills-node
      daemons:
        keepalived: {config: "vrrp_instance v {\\n}\\n"}
  links: [{endpoints: [r1:e0, c1:e0]}]
probes:
  - {name: ping, type: icmp, from: r1, to: c1}
duration: 2s
"""


def test_daemon_problems_are_located(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:8:7: topology.nodes.r1.daemons: node 'r1' has a service named 'zebra', as one of its daemons; rename the service",
        f"{path}:9:23: topology.nodes.r1.daemons.frr.config: configuration file {tmp_path}/missing.conf: file not found; check the path",
        f"{path}:13:7: topology.nodes.c1.daemons: `daemons` run in namespace nodes only; remove `kind: container`, or start them in the image",
    ]


def test_daemons_become_services_with_private_paths(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_ROUTERS.replace("FRR", str(ROOT / "testbed" / "frr")))
    r1 = load_scenario(path).topology.node("r1")
    assert [s.name for s in r1.services] == ["zebra", "ospfd", "bfdd"]
    config = (ROOT / "testbed" / "frr" / "r1-bfd.conf").read_text()
    for service in r1.services:
        assert service.private is not None and service.private.name == "frr"
        assert dict(service.private.files)["frr.conf"] == config
        # Every path the daemon opens is relative to its private directory (or /dev/null).
        assert service.command.startswith('cd "$DRILLS_DIR" && exec /usr/lib/frr/')
        assert "/etc/frr" not in service.command and "/var/run" not in service.command
    assert r1.services[1].settled is not None and "Full" in (r1.services[1].settled.command or "")


# Kills the ospfd of this node's namespace only (its network namespace compared), never by name alone.
KILL_OSPFD = (
    'me=$(readlink /proc/self/ns/net); for p in /proc/[0-9]*; do '
    '[ "$(cat $p/comm 2>/dev/null)" = ospfd ] && [ "$(readlink $p/ns/net)" = "$me" ] && kill -9 ${p#/proc/}; done; true'
)


@needs_frr
def test_a_daemon_that_dies_during_the_drill_is_an_error(tmp_path: Path, state_dir: Path, host_snapshot: object) -> None:
    path = tmp_path / "two.yaml"
    text = TWO_ROUTERS.replace("FRR", str(ROOT / "testbed" / "frr"))
    text = text.replace("  - {at: 1s, fault: note, text: nothing}", f"  - {{at: 1s, fault: exec, node: r1, command: {json.dumps(KILL_OSPFD)}}}")
    path.write_text(text)
    with pytest.raises(BackendError, match="daemon r1/ospfd died during the drill"):
        run_drill(path, state_dir, log=lambda _m: None)
    assert not _daemons_under(state_dir)


@pytest.mark.skipif(not os.access(daemons.KEEPALIVED, os.X_OK), reason="keepalived is not installed")
def test_node_loss_restarts_keepalived(tmp_path: Path, state_dir: Path, host_snapshot: object) -> None:
    path = tmp_path / "pair.yaml"
    text = KEEPALIVED_PAIR.replace("  - {name: ping, type: icmp, from: gw1, to: gw2}", "  - {name: ping, type: icmp, from: gw2, to: gw1}")
    text = text.replace("  - {at: 1s, fault: note, text: nothing}", "  - {id: loss, at: 2s, fault: node-loss, node: gw1, for: 2s}")
    path.write_text(text.replace("duration: 2s", "duration: 6s"))
    log: list[str] = []
    result = run_drill(path, state_dir, log=log.append)
    assert not result.revert_failures
    # Started at deploy and again at the restore, its stale pid files removed first (its
    # readiness reads vrrp.pid): journaled and checked both times; gw2's once.
    assert sum("service gw1/keepalived started" in line for line in log) == 2, log
    assert sum("service gw2/keepalived started" in line for line in log) == 1, log
    assert not _daemons_under(state_dir)

"""LAN segments on a real kernel: three namespace nodes on one bridge talk to each other; a
member's port down cuts that member only, a segment failure cuts every member, each reverted;
nothing of a segment is left after teardown, nor after SIGKILL of `drill run` and `drill clean`;
a drill over a segment measures a member port's outage."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Any

import pytest
import yaml

from drills import lifecycle
from drills.backend import HostPart
from drills.clock import SystemClock
from drills.engine.degrade import LinkDegrade
from drills.engine.fault import FaultContext
from drills.engine.filter_faults import Partition
from drills.engine.link_faults import SegmentDown, link_down
from drills.lifecycle import run as run_drill
from drills.netns import kernel
from drills.netns.backend import NetnsBackend, namespace_name
from drills.netns.ops import NetnsOps
from drills.netns.part import deploy_part, part_ops
from drills.netns.segments import BRIDGE, port_engines, segment_namespace, segment_namespaces
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.scenario.resolved import Interface, Topology, port_ifname
from drills.scenario.steps import DegradeStep, PartitionStep, SegmentDownStep, Step

pytestmark = pytest.mark.netns

NETNS_DIR = Path("/run/netns")
TIMEOUT_S = 5.0  # a datagram between two veths on one bridge arrives in microseconds
CUT_WAIT_S = 0.3  # a cut pair: nothing can arrive (a down interface, a drop rule), so a short wait is exact
MEMBERS = ("gw1:lan0", "gw2:lan0", "pc:eth0")

LAN: dict[str, Any] = {
    "version": 1,
    "name": "lan",
    "topology": {
        "addressing": {"ipv6": "fd00:d811:5e9::/48"},
        "nodes": {"gw1": {}, "gw2": {}, "pc": {"loopback": "none"}},
        "segments": [{"name": "lan", "members": list(MEMBERS), "subnet": "198.18.50.0/24"}],
    },
    "timeline": [
        {"id": "port", "at": "1s", "fault": "link-down", "link": "gw1:lan0", "for": "1s"},
        {"id": "switch", "at": "3s", "fault": "link-down", "link": "lan", "for": "1s"},
        {"id": "slow", "at": "5s", "fault": "degrade", "link": "gw1:lan0", "rate": "10mbit", "for": "1s"},
        {"id": "split", "at": "9s", "fault": "partition", "groups": [["gw1"], ["pc"]], "for": "1s"},
        {"id": "lossy", "at": "7s", "fault": "degrade", "link": "pc:eth0", "direction": "b-to-a", "loss": 30, "for": "1s"},
    ],
}


# --------------------------------------------------------------------------- helpers


def ip_json(namespace: str, *args: str) -> Any:
    out = subprocess.run(["ip", "-n", namespace, "-j", *args], check=True, capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)


def has_carrier(namespace: str, ifname: str) -> bool:
    flags = ip_json(namespace, "link", "show", "dev", ifname)[0]["flags"]
    return "NO-CARRIER" not in flags and "UP" in flags and "LOWER_UP" in flags


def reaches(ns: dict[str, str], src: Interface, dst: Interface, *, v6: bool = False, wait_s: float = TIMEOUT_S) -> bool:
    """Whether a datagram from `src`'s address arrives at `dst`'s, through the segment."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    s_addr, d_addr = (src.ipv6, dst.ipv6) if v6 else (src.ipv4, dst.ipv4)
    assert s_addr is not None and d_addr is not None
    server = kernel.run_in_namespace(ns[dst.node], lambda: socket.socket(family, socket.SOCK_DGRAM))
    client = kernel.run_in_namespace(ns[src.node], lambda: socket.socket(family, socket.SOCK_DGRAM))
    try:
        server.bind((str(d_addr.ip), 0))
        server.settimeout(wait_s)
        client.bind((str(s_addr.ip), 0))
        try:
            client.sendto(b"hello", (str(d_addr.ip), server.getsockname()[1]))
            data, sender = server.recvfrom(64)
        except OSError:  # unreachable (a down interface), or nothing arrived in time
            return False
        return data == b"hello" and sender[0] == str(s_addr.ip)
    finally:
        server.close()
        client.close()


@dataclass
class LanBed:
    topology: Topology
    ns: dict[str, str]
    segment_ns: str
    ctx: FaultContext
    steps: dict[str, Step]
    log: list[str] = field(default_factory=list)

    def member(self, endpoint: str) -> Interface:
        return self.topology.segment("lan").member(endpoint)

    def talking(self, cut: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
        """The ordered pairs of members whose datagrams arrive. A pair expected `cut` is given
        CUT_WAIT_S (nothing can arrive: a down interface or a drop rule); every other pair the
        full TIMEOUT_S, so a loaded machine never fails a pair that does talk."""
        members = [self.member(e) for e in MEMBERS]
        return {
            (a.endpoint, b.endpoint)
            for a in members
            for b in members
            if a != b and reaches(self.ns, a, b, wait_s=CUT_WAIT_S if (a.endpoint, b.endpoint) in (cut or set()) else TIMEOUT_S)
        }


def all_pairs(*endpoints: str) -> set[tuple[str, str]]:
    return {(a, b) for a in endpoints for b in endpoints if a != b}


@pytest.fixture
def lan(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> Iterator[LanBed]:
    path = tmp_path / "lan.yaml"
    path.write_text(yaml.safe_dump(LAN, sort_keys=False))
    ops: NetnsOps | None = None
    try:
        up = lifecycle.up(path, state_dir)
        run = RunStore(state_dir).get(up.meta.run_id)
        log: list[str] = []
        backend = NetnsBackend(log.append, service_cwd=tmp_path)
        # The node operations as `drill run` makes them (backend.ops after deploy).
        namespaces = {**up.meta.nodes, **segment_namespaces(run.run_id, up.topology)}
        ops = NetnsOps(run, up.topology, namespaces, port_engines(up.topology), SystemClock(), log.append, backend.start_service)
        ops.warm()
        ctx = FaultContext(ops, SystemClock(), log.append, random.Random(1))
        steps = {s.name: s for s in load_scenario(path).steps}
        yield LanBed(up.topology, dict(up.meta.nodes), segment_namespace(run.run_id, "lan"), ctx, steps, log)
    finally:
        if ops is not None:
            ops.close()
        lifecycle.clean(state_dir, include_up=True)


# --------------------------------------------------------------------------- the data path


def test_members_are_addressed_in_order_and_talk_through_one_bridge(lan: LanBed) -> None:
    members = [lan.member(e) for e in MEMBERS]
    assert [m.ipv4 for m in members] == [IPv4Interface(f"198.18.50.{n}/24") for n in (1, 2, 3)]
    assert [m.ipv6 for m in members] == [IPv6Interface(f"fd00:d811:5e9::{n}/64") for n in (1, 2, 3)]
    assert lan.talking() == all_pairs(*MEMBERS)
    assert reaches(lan.ns, members[2], members[0], v6=True) and reaches(lan.ns, members[0], members[1], v6=True)

    # The bridge as the module says: in the segment's own namespace, STP, forward delay and
    # snooping off, one port per member in member order; nothing of it in the host's namespace.
    assert (NETNS_DIR / lan.segment_ns).exists()
    bridge = ip_json(lan.segment_ns, "-d", "link", "show", "dev", BRIDGE)[0]["linkinfo"]["info_data"]
    assert (bridge["stp_state"], bridge["forward_delay"], bridge["mcast_snooping"]) == (0, 0, 0)
    ports = {p["ifname"]: p for p in ip_json(lan.segment_ns, "link", "show", "master", BRIDGE)}
    assert sorted(ports) == [port_ifname(i) for i in range(3)]
    # Each member's interface is the peer of its port (same veth pair: the port's peer index).
    for i, member in enumerate(members):
        iface = ip_json(lan.ns[member.node], "link", "show", "dev", member.name)[0]
        assert iface["link_index"] == ports[port_ifname(i)]["ifindex"], member.endpoint


# --------------------------------------------------------------------------- faults


def test_a_member_port_down_cuts_only_that_member_and_revert_restores(lan: LanBed) -> None:
    port = lan.steps["port"]
    assert isinstance(port, SegmentDownStep)
    fault = link_down(port)
    assert isinstance(fault, SegmentDown) and [e.endpoint for e in fault.step.ends] == ["gw1:lan0"]
    fault.apply(lan.ctx)
    try:
        assert not has_carrier(lan.ns["gw1"], "lan0"), "the cut member must see its link go"
        assert has_carrier(lan.ns["gw2"], "lan0") and has_carrier(lan.ns["pc"], "eth0")
        # gw2 and pc still talk; nothing reaches gw1 nor leaves it.
        assert reaches(lan.ns, lan.member("gw2:lan0"), lan.member("pc:eth0"))
        assert reaches(lan.ns, lan.member("pc:eth0"), lan.member("gw2:lan0"))
        cut = all_pairs(*MEMBERS) - all_pairs("gw2:lan0", "pc:eth0")
        assert lan.talking(cut) == all_pairs("gw2:lan0", "pc:eth0")
    finally:
        fault.revert(lan.ctx)
    assert has_carrier(lan.ns["gw1"], "lan0")
    assert lan.talking() == all_pairs(*MEMBERS)


def test_a_segment_failure_cuts_every_member_and_revert_restores(lan: LanBed) -> None:
    switch = lan.steps["switch"]
    assert isinstance(switch, SegmentDownStep)
    fault = link_down(switch)
    assert isinstance(fault, SegmentDown) and len(fault.step.ends) == 3
    assert fault.describe().startswith("segment lan: every port")
    fault.apply(lan.ctx)
    try:
        assert not any(has_carrier(lan.ns[m.split(":")[0]], m.split(":")[1]) for m in MEMBERS)
        assert lan.talking(all_pairs(*MEMBERS)) == set()
    finally:
        fault.revert(lan.ctx)
    assert all(has_carrier(lan.ns[m.split(":")[0]], m.split(":")[1]) for m in MEMBERS)
    assert lan.talking() == all_pairs(*MEMBERS)


def root_qdisc(namespace: str, ifname: str) -> str:
    out = subprocess.run(
        ["tc", "-n", namespace, "-j", "qdisc", "show", "dev", ifname], check=True, capture_output=True, text=True, timeout=30
    )
    return str(next(q for q in json.loads(out.stdout) if q.get("root"))["kind"])


def test_a_member_port_degrade_puts_qdiscs_on_both_sides_of_the_port(lan: LanBed) -> None:
    """Member -> segment (a-to-b) is the member's egress; segment -> member (b-to-a) the
    egress of its bridge port, in the segment's namespace. A rate limit alone is tbf, which
    this kernel has (netem's parameters: the VM lane, below)."""
    step = lan.steps["slow"]
    assert isinstance(step, DegradeStep) and step.link.name == "lan/gw1:lan0"
    assert [(d.name, d.end.endpoint) for d in step.directions] == [("a-to-b", "gw1:lan0"), ("b-to-a", "_seg.lan:p0")]
    before = (root_qdisc(lan.ns["gw1"], "lan0"), root_qdisc(lan.segment_ns, port_ifname(0)))
    fault = LinkDegrade.from_step(step)
    fault.apply(lan.ctx)
    try:
        assert root_qdisc(lan.ns["gw1"], "lan0") == "tbf" and root_qdisc(lan.segment_ns, port_ifname(0)) == "tbf"
        assert root_qdisc(lan.ns["gw2"], "lan0") == before[0]  # the other members untouched
        assert lan.talking() == all_pairs(*MEMBERS)  # slower, not cut
    finally:
        fault.revert(lan.ctx)
    assert (root_qdisc(lan.ns["gw1"], "lan0"), root_qdisc(lan.segment_ns, port_ifname(0))) == before


@pytest.mark.netem
def test_a_member_port_loss_is_netem_on_its_bridge_port(lan: LanBed) -> None:
    step = lan.steps["lossy"]
    assert isinstance(step, DegradeStep) and [d.end.endpoint for d in step.directions] == ["_seg.lan:p2"]
    fault = LinkDegrade.from_step(step)
    fault.apply(lan.ctx)
    try:
        assert root_qdisc(lan.segment_ns, port_ifname(2)) == "netem"
        assert root_qdisc(lan.ns["pc"], "eth0") != "netem"  # b-to-a only: pc's own egress untouched
    finally:
        fault.revert(lan.ctx)
    assert root_qdisc(lan.segment_ns, port_ifname(2)) != "netem"


def test_a_partition_cuts_nodes_across_a_segment_and_only_them(lan: LanBed) -> None:
    """A partition is per node: gw1 and pc stop hearing each other on the segment, while gw2
    still talks to both (their addresses are dropped, not the segment)."""
    step = lan.steps["split"]
    assert isinstance(step, PartitionStep)
    fault = Partition.from_step(step)
    fault.apply(lan.ctx)
    try:
        cut = all_pairs("gw1:lan0", "pc:eth0")
        assert lan.talking(cut) == all_pairs(*MEMBERS) - cut
    finally:
        fault.revert(lan.ctx)
    assert lan.talking() == all_pairs(*MEMBERS)


def test_teardown_removes_the_segment(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = tmp_path / "lan.yaml"
    path.write_text(yaml.safe_dump(LAN, sort_keys=False))
    try:
        up = lifecycle.up(path, state_dir)
        seg_ns = segment_namespace(up.meta.run_id, "lan")
        assert (NETNS_DIR / seg_ns).exists()
        _run_id, report = lifecycle.down(state_dir, up.meta.run_id)
        assert report.clean and f"namespace {seg_ns}" in report.removed
        assert not (NETNS_DIR / seg_ns).exists()
        assert host_snapshot.leftovers() == []
    finally:
        lifecycle.clean(state_dir, include_up=True)


# --------------------------------------------------------------------------- a drill, and SIGKILL

DRILL = """
version: 1
name: lan-port-cut
topology:
  nodes:
    gw1: {}
    gw2: {}
    pc: {loopback: none}
  segments:
    - {name: lan, members: [gw1:lan0, gw2:lan0, pc:eth0]}
probes:
  - {name: to-gw1, type: udp-stream, from: pc, to: gw1:lan0, rate_pps: 1000}
  - {name: to-gw2, type: udp-stream, from: pc, to: gw2:lan0, rate_pps: 1000}
timeline:
  - {id: port, at: 2.0005s, fault: link-down, link: lan, end: gw1:lan0, for: 1s}
duration: 5s
"""


def test_a_drill_measures_a_member_port_outage(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    (tmp_path / "drill.yaml").write_text(DRILL)
    result = run_drill(tmp_path / "drill.yaml", state_dir, log=lambda _m: None)
    steps = {s.kind: s for s in result.steps if s.label == "port"}
    assert steps["apply"].detail == "segment lan: port of gw1:lan0 down", steps
    cut = next(m for m in result.metrics if m.kind == "apply" and m.probe == "to-gw1")
    # gw1 was cut from [apply.issued, apply.confirmed] to [revert.issued, revert.confirmed]
    # (packets waiting for gw1's ARP after are queued, not lost): the outage lies in that span
    # widened by the accuracy the drill states (which grows on a busy machine).
    shortest = steps["revert"].issued_s - steps["apply"].confirmed_s
    longest = steps["revert"].confirmed_s - steps["apply"].issued_s
    assert shortest - cut.accuracy_s <= cut.outage_s <= longest + cut.accuracy_s, (cut, shortest, longest)
    other = next(m for m in result.metrics if m.kind == "apply" and m.probe == "to-gw2")
    assert other.outage_s == 0.0 and other.lost == 0, other  # gw2 kept talking to pc
    assert not result.inconclusive and not result.revert_failures


def test_sigkill_then_clean_removes_the_segment(tmp_path: Path, state_dir: Path, host_snapshot: Any, drill: Any) -> None:
    path = tmp_path / "drill.yaml"
    path.write_text(DRILL.replace("duration: 5s", "duration: 30s"))
    proc = drill.popen("run", str(path), "--out", str(tmp_path / "out"))
    try:
        seg_ns = _wait_for_segment(state_dir, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert (NETNS_DIR / seg_ns).exists(), "killed after the segment was made: it is there until clean"
    done = drill("clean")
    assert done.returncode == 0, done.stderr
    assert not (NETNS_DIR / seg_ns).exists()
    assert host_snapshot.leftovers() == []


def _wait_for_segment(state_dir: Path, proc: subprocess.Popen[str]) -> str:
    """The segment's namespace once the drill clock runs (a fault intent is journaled)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for journal in (state_dir / "runs").glob("*/journal.jsonl"):
            try:
                entries = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
            except (OSError, ValueError):  # a line half written
                continue
            names = [e["name"] for e in entries if e.get("op") == "netns" and "_seg." in e.get("name", "")]
            if names and any(e.get("op") == "fault" for e in entries):
                return str(names[0])
        assert proc.poll() is None, f"drill run ended (rc {proc.returncode}) before it was killed"
        time.sleep(0.01)
    raise AssertionError("the journal never showed the segment and a fault")


def test_the_example_scenario_measures_its_known_answers(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """scenarios/command-post-lan.yaml: a port failure cuts one console only (ops2 loses not
    one packet, an exact count), and a switch failure cuts both for the switch's 2 s: each
    outage lies within the fault's span, widened by the accuracy the drill states (which grows
    on a busy machine, so the scenario's own outage bounds are not asserted here)."""
    example = Path(__file__).resolve().parents[1] / "scenarios" / "command-post-lan.yaml"
    result = run_drill(example, state_dir, log=lambda _m: None)
    assert not result.inconclusive and not result.revert_failures
    verdicts = {v.objective: v for v in result.verdicts}
    assert verdicts["port-cuts-ops1-only: loss"].passed, verdicts
    steps = {s.kind: s for s in result.steps if s.label == "switch"}
    shortest = steps["revert"].issued_s - steps["apply"].confirmed_s
    longest = steps["revert"].confirmed_s - steps["apply"].issued_s
    switch = [m for m in result.metrics if m.event == "switch" and m.kind == "apply"]
    assert {m.probe for m in switch} == {"ops1-voice", "ops2-voice"}
    for m in switch:
        assert shortest - m.accuracy_s <= m.outage_s <= longest + m.accuracy_s, (m, shortest, longest)


def test_a_host_part_deploys_its_segments_and_its_operations_reach_them(
    tmp_path: Path, state_dir: Path, host_snapshot: Any
) -> None:
    """Several machines: an agent deploys its part (drills.netns.part) with the segments whose
    members are all on its host, and its node operations cut a member's port and degrade it."""
    path = tmp_path / "lan.yaml"
    path.write_text(yaml.safe_dump(LAN, sort_keys=False))
    scenario = load_scenario(path)
    run = RunStore(state_dir).create("lan", path)
    backend = NetnsBackend()
    part = HostPart("h1", ("gw1", "gw2", "pc"))
    ops = None
    try:
        deploy_part(backend, scenario.topology, part, run)
        ops = part_ops(backend, scenario.topology, part, run, SystemClock())
        ops.warm()
        ctx = FaultContext(ops, SystemClock(), lambda _m: None, random.Random(1))
        ns = {node: namespace_name(run.run_id, node) for node in part.nodes}
        members = [scenario.topology.segment("lan").member(e) for e in MEMBERS]
        assert reaches(ns, members[0], members[2]) and reaches(ns, members[1], members[2])
        steps = {s.name: s for s in scenario.steps}
        port, slow = steps["port"], steps["slow"]
        assert isinstance(port, SegmentDownStep) and isinstance(slow, DegradeStep)
        cut = link_down(port)
        cut.apply(ctx)
        assert not reaches(ns, members[0], members[2], wait_s=CUT_WAIT_S) and reaches(ns, members[1], members[2])
        cut.revert(ctx)
        degrade = LinkDegrade.from_step(slow)
        degrade.apply(ctx)
        assert root_qdisc(segment_namespace(run.run_id, "lan"), port_ifname(0)) == "tbf"
        degrade.revert(ctx)
        assert reaches(ns, members[0], members[2])
    finally:
        if ops is not None:
            ops.close()
        report = backend.teardown(run)
        assert report.clean and f"namespace {segment_namespace(run.run_id, 'lan')}" in report.removed, report
        run.remove()

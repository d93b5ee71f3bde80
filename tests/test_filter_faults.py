"""`blackhole` and `partition` (nftables in the run's own namespaces): rules built right, and on
real namespaces packets really stop, only where they should, and flow again after revert."""

from __future__ import annotations

import json
import random
import select
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Any, cast

import pytest

from drills import lifecycle
from drills.backend import NFTABLES, LinkState, NodeOps
from drills.clock import FakeClock, SystemClock
from drills.engine import filter_faults
from drills.engine.drill import requirements as drill_requirements
from drills.engine.faults import Fault, FaultContext, build
from drills.errors import BackendError, EnvironmentProblem
from drills.lifecycle import run as run_drill
from drills.netns import kernel, nft
from drills.netns.backend import NetnsBackend
from drills.netns.ops import NetnsOps
from drills.rules import ICMPV6_TYPE, IN_INTERFACE, IPV4_SOURCE, IPV6_SOURCE, Chain, Match, Rule, Table
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.scenario.resolved import Scenario, Topology

PORT = 47311
SETTLE_S = 0.15  # a datagram on these veths arrives within microseconds; this is generous
ROUNDS = 3  # an allowed probe gets three chances (a first packet may wait for ARP); so does a blocked one

# A star around x (in no group), plus a direct link between a2 and b2: traffic between the
# groups both transits x and crosses a link joining them. IPv4 and IPv6 everywhere.
PARTITION_BED = """
version: 1
name: {name}
topology:
  addressing: {{ipv4: 198.18.40.0/24, loopbacks: 198.19.40.0/24, ipv6: "fd00:d811:40::/48"}}
  nodes:
    x:
      routes:
        - {{to: a1, via: a1:x}}
        - {{to: a2, via: a2:x}}
        - {{to: b1, via: b1:x}}
        - {{to: b2, via: b2:x}}
        - {{to: a2:b, via: a2:x}}
        - {{to: "fd00:d811:41:9::/64", via: a2:x}}
    a1: {{routes: [{{to: default, via: x:a1}}, {{to: "::/0", via: x:a1}}]}}
    a2:
      interfaces: {{b: {{ipv6: "fd00:d811:41:9::1/64"}}}}
      routes: [{{to: default, via: x:a2}}, {{to: "::/0", via: x:a2}}]
    b1: {{routes: [{{to: default, via: x:b1}}, {{to: "::/0", via: x:b1}}]}}
    b2:
      interfaces: {{a: {{ipv6: "fd00:d811:41:9::2/64"}}}}
      routes: [{{to: default, via: x:b2}}, {{to: "::/0", via: x:b2}}]
  links:
    - {{endpoints: [a1:x, x:a1]}}
    - {{endpoints: [a2:x, x:a2]}}
    - {{endpoints: [b1:x, x:b1]}}
    - {{endpoints: [b2:x, x:b2]}}
    - {{name: direct, endpoints: [a2:b, b2:a]}}
{rest}
"""

PARTITION_STEPS = """
timeline:
  - {id: both, at: 1s, fault: partition, groups: [[a1, a2], [b1, b2]], for: 1s}
  - {id: oneway, at: 3s, fault: partition, groups: [[a1, a2], [b1, b2]], one_way: true, for: 1s}
"""

GROUP = {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}
DIRECT = (ip_network("198.18.40.16/30"), ip_network("fd00:d811:41:9::/64"))  # the a2-b2 link's subnets

# a and b joined by `wire` (metric 10) and, as a backup (metric 20), through r.
BLACKHOLE_BED = """
version: 1
name: gray
topology:
  addressing: {ipv4: 198.18.50.0/24, loopbacks: 198.19.50.0/24, ipv6: "fd00:d811:50::/48"}
  nodes:
    a: {routes: [{to: b, via: b:a, metric: 10}, {to: b, via: r:a, metric: 20}]}
    b: {routes: [{to: a, via: a:b, metric: 10}, {to: a, via: r:b, metric: 20}]}
    r: {routes: [{to: a, via: a:r}, {to: b, via: b:r}]}
  links:
    - {name: wire, endpoints: [a:b, b:a]}
    - {endpoints: [a:r, r:a]}
    - {endpoints: [b:r, r:b]}
timeline:
  - {id: gray, at: 1s, fault: blackhole, link: wire, for: 1s}
  - {id: cut, at: 3s, fault: link-down, link: wire, for: 1s}
"""


# --------------------------------------------------------------------------- helpers


@dataclass
class Bed:
    scenario: Scenario
    namespaces: dict[str, str]
    ctx: FaultContext

    @property
    def topology(self) -> Topology:
        return self.scenario.topology

    def fault(self, step_id: str) -> Fault:
        return build(next(s for s in self.scenario.steps if s.id == step_id))


def _no_services(*_args: object) -> int:
    raise AssertionError("these testbeds have no services")


@contextmanager
def deployed(path: Path, state_dir: Path) -> Iterator[Bed]:
    scenario = load_scenario(path)
    up = lifecycle.up(path, state_dir)
    run = RunStore(state_dir).get(up.meta.run_id)
    clock = SystemClock()
    ops = NetnsOps(run, scenario.topology, up.meta.nodes, {}, clock, lambda _m: None, _no_services)
    try:
        ctx = FaultContext(ops, clock, lambda _m: None, random.Random(0))
        yield Bed(scenario, up.meta.nodes, ctx)
    finally:
        ops.close()  # an open socket would keep its namespace alive
        lifecycle.down(state_dir, up.meta.run_id)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def nft_tables(namespace: str | None) -> set[str]:
    """Names of the nftables tables in a namespace (None: the host's own, read only)."""
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    out = subprocess.run([*prefix, "nft", "-j", "list", "tables"], check=True, capture_output=True, text=True).stdout
    return {o["table"]["name"] for o in json.loads(out)["nftables"] if "table" in o}


def drills_tables(namespace: str | None) -> set[str]:
    return {name for name in nft_tables(namespace) if name.startswith("drills_")}


def link_local(namespace: str, ifname: str) -> str:
    """The kernel-made IPv6 link-local address of an interface (waits for it briefly)."""
    deadline = time.monotonic() + 3.0
    while True:
        out = subprocess.run(
            ["ip", "-n", namespace, "-j", "-6", "addr", "show", "dev", ifname],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        found = [a["local"] for a in json.loads(out)[0]["addr_info"] if a.get("scope") == "link"]
        if found or time.monotonic() > deadline:
            assert found, f"{ifname} has no link-local address"
            return str(found[0])
        time.sleep(0.05)


@dataclass(frozen=True)
class Probe:
    """One UDP datagram from an address of `src` to an address of `dst` (one way: no reply needed,
    so a one-way partition is seen as such). `dev`: a link-local pair, over this interface of `src`."""

    src: str
    src_ip: str
    dst: str
    dst_ip: str
    dev: str | None = None


def addresses(topology: Topology, node: str) -> list[str]:
    v4, v6 = filter_faults.node_addresses(topology.node(node))
    return [str(a) for a in (*v4, *v6)]


def every_pair(topology: Topology) -> list[Probe]:
    """Every ordered pair of nodes, every address of the sender to every address of the
    receiver (same family): loopbacks, all interfaces, IPv4 and IPv6."""
    probes = []
    names = [n.name for n in topology.nodes]
    for src in names:
        for dst in names:
            if src == dst:
                continue
            for src_ip in addresses(topology, src):
                for dst_ip in addresses(topology, dst):
                    if (":" in src_ip) == (":" in dst_ip):
                        probes.append(Probe(src, src_ip, dst, dst_ip))
    return probes


def link_local_pairs(namespaces: dict[str, str], *ends: tuple[str, str, str, str]) -> list[Probe]:
    """Probes between the IPv6 link-local addresses of each (node, iface, peer, peer iface)."""
    probes = []
    for node, iface, peer, peer_iface in ends:
        mine, theirs = link_local(namespaces[node], iface), link_local(namespaces[peer], peer_iface)
        probes += [Probe(node, mine, peer, theirs, iface), Probe(peer, theirs, node, mine, peer_iface)]
    return probes


def deliver(namespaces: dict[str, str], probes: list[Probe]) -> set[Probe]:
    """Send every probe (up to ROUNDS times until it arrives); the ones that arrived where they
    were sent. Every socket is made inside its node's namespace and closed before returning."""

    def receivers() -> list[socket.socket]:
        v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v4.bind(("0.0.0.0", PORT))
        v6.bind(("::", PORT))
        return [v4, v6]

    def sender(ip: str, dev: str | None) -> tuple[socket.socket, int]:
        scope = socket.if_nametoindex(dev) if dev else 0
        if ":" in ip:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.bind((ip, 0, 0, scope))
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((ip, 0))
        return sock, scope

    listening: dict[socket.socket, str] = {}
    sending: dict[tuple[str, str, str | None], tuple[socket.socket, int]] = {}
    try:
        for node in sorted({p.dst for p in probes}):
            for sock in kernel.run_in_namespace(namespaces[node], receivers):
                listening[sock] = node
        for key in sorted({(p.src, p.src_ip, p.dev) for p in probes}, key=str):
            node, ip, dev = key
            sending[key] = kernel.run_in_namespace(namespaces[node], partial(sender, ip, dev))
        delivered: set[Probe] = set()
        misdelivered: list[Probe] = []
        for round_ in range(ROUNDS):
            if len(delivered) == len(probes):
                break
            for i, probe in enumerate(probes):
                if probe in delivered:
                    continue
                sock, scope = sending[(probe.src, probe.src_ip, probe.dev)]
                target = (probe.dst_ip, PORT, 0, scope) if ":" in probe.dst_ip else (probe.dst_ip, PORT)
                with suppress(OSError):  # no route, unreachable: not delivered
                    sock.sendto(f"{round_}:{i}".encode(), target)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                ready, _, _ = select.select(list(listening), [], [], SETTLE_S)
                if not ready:
                    break
                for sock in ready:
                    with suppress(BlockingIOError):
                        while True:
                            data = sock.recv(64, socket.MSG_DONTWAIT)
                            probe = probes[int(data.split(b":")[1])]
                            if listening[sock] == probe.dst:
                                delivered.add(probe)
                            else:
                                misdelivered.append(probe)
        assert not misdelivered, f"datagrams arrived at the wrong node: {misdelivered[:5]}"
        return delivered
    finally:
        for sock in [*listening, *(s for s, _ in sending.values())]:
            sock.close()


def assert_matrix(
    namespaces: dict[str, str], probes: list[Probe], allowed: Callable[[Probe], bool], phase: str
) -> None:
    delivered = deliver(namespaces, probes)
    expected = {p for p in probes if allowed(p)}
    lost = sorted(expected - delivered, key=str)
    leaked = sorted(delivered - expected, key=str)
    assert not lost and not leaked, (
        f"{phase}: {len(lost)} allowed probe(s) lost, e.g. {lost[:4]}; {len(leaked)} blocked probe(s) delivered, e.g. {leaked[:4]}"
    )


def everything(_probe: Probe) -> bool:
    return True


def hops(probe: Probe) -> list[str]:
    """The nodes a probe's datagram enters on its way in PARTITION_BED, the receiver last."""
    on_direct = any(ip_address(probe.dst_ip) in net for net in DIRECT)
    if probe.dev is not None or (on_direct and {probe.src, probe.dst} == {"a2", "b2"}):
        return [probe.dst]  # across the link that joins them
    path = [] if probe.src == "x" or probe.dst == "x" else ["x"]
    if on_direct and probe.dst == "b2":
        path.append("a2")  # x routes the a2-b2 subnet through a2
    return [*path, probe.dst]


# --------------------------------------------------------------------------- no kernel needed


@dataclass
class FakeOps:
    """Node operations that record what the filter faults ask for (every other operation is
    absent: a blackhole or partition must need none). `carrier` says which ends read back
    with carrier."""

    calls: list[tuple[str, tuple[Any, ...]]]
    carrier: dict[tuple[str, str], bool]

    def arm_rules(self, tables: Any) -> None:
        self.calls.append(("arm_rules", tuple(tables)))

    def apply_rules(self, tables: Any, on_applied: Any = None) -> None:
        self.calls.append(("apply_rules", tuple(tables)))

    def remove_rules(self, tables: Any) -> None:
        self.calls.append(("remove_rules", tuple(tables)))

    def link_state(self, node: str, ifname: str) -> LinkState:
        self.calls.append(("link_state", (node, ifname)))
        return LinkState(admin_up=True, carrier=self.carrier.get((node, ifname), True))


def fake_ctx(carrier: dict[tuple[str, str], bool] | None = None) -> tuple[FaultContext, FakeOps]:
    ops = FakeOps([], carrier or {})
    return FaultContext(cast(NodeOps, ops), FakeClock(), lambda _m: None, random.Random(0)), ops


# a - b - c in a line, IPv4 and IPv6: three groups of one node each.
THREE_GROUPS = """
version: 1
name: three
topology:
  addressing: {ipv4: 198.18.60.0/24, loopbacks: 198.19.60.0/24, ipv6: "fd00:d811:60::/48"}
  nodes: {a: {}, b: {}, c: {}}
  links:
    - {endpoints: [a:b, b:a]}
    - {endpoints: [b:c, c:b]}
timeline:
  - {id: apart, at: 1s, fault: partition, groups: [[a], [b], [c]], for: 1s}
  - {id: downhill, at: 3s, fault: partition, groups: [[a], [b], [c]], one_way: true, for: 1s}
"""

ND = Match(
    ICMPV6_TYPE, ("router-solicitation", "router-advertisement", "neighbor-solicitation", "neighbor-advertisement")
)


def expected_table(topology: Topology, table: str, target: str, cut: list[str], facing: tuple[str, ...]) -> Table:
    """The table a partition must build in `target` to drop the nodes of `cut`, written out by
    hand from the topology's addresses (loopback first, then each interface)."""
    v4: list[IPv4Address] = []
    v6: list[IPv6Address] = []
    for name in cut:
        node = topology.node(name)
        v4 += [node.loopback.ip] if node.loopback is not None else []
        v4 += [i.ipv4.ip for i in node.interfaces if i.ipv4 is not None]
        v6 += [i.ipv6.ip for i in node.interfaces if i.ipv6 is not None]
    rules = (
        Rule((ND,), "accept", counter=False),
        Rule((Match(IPV4_SOURCE, tuple(str(a) for a in sorted(v4))),), "drop"),
        Rule((Match(IPV6_SOURCE, tuple(str(a) for a in sorted(v6))),), "drop"),
        Rule((Match(IN_INTERFACE, facing), Match(IPV6_SOURCE, ("fe80::/10",))), "drop"),
    )
    return Table(target, "inet", table, (Chain("partition", "prerouting", -300, rules),))


def test_a_three_group_partition_builds_exactly_these_tables_both_ways_and_one_way(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "three", THREE_GROUPS))
    topology = scenario.topology
    apart_step, downhill_step = scenario.steps
    apart, downhill = build(apart_step), build(downhill_step)
    assert isinstance(apart, filter_faults.Partition) and isinstance(downhill, filter_faults.Partition)
    name = apart_step.table  # type: ignore[attr-defined]
    assert name.startswith("drills_apart_")
    # Both ways: every node drops both others; each drops link-local packets from its neighbours.
    assert apart.tables == (
        expected_table(topology, name, "a", ["b", "c"], ("b",)),
        expected_table(topology, name, "b", ["a", "c"], ("a", "c")),
        expected_table(topology, name, "c", ["a", "b"], ("b",)),
    )
    assert apart.sources == (("a", ("b", "c")), ("b", ("a", "c")), ("c", ("a", "b")))
    # One way: packets never reach a later group. a drops nothing (no table), b drops a, c drops
    # a and b; c's only neighbour is b, so only its interface toward b drops link-local packets.
    name = downhill_step.table  # type: ignore[attr-defined]
    assert downhill.tables == (
        expected_table(topology, name, "b", ["a"], ("a",)),
        expected_table(topology, name, "c", ["a", "b"], ("b",)),
    )
    assert downhill.describe() == "partition {a} -> {b} -> {c} (one way: packets never reach a later group)"


def test_partition_applies_and_heals_through_the_node_operations_only(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "three", THREE_GROUPS))
    fault = build(scenario.steps[0])
    assert isinstance(fault, filter_faults.Partition)
    ctx, ops = fake_ctx()
    fault.apply(ctx)
    fault.revert(ctx)
    assert ops.calls == [("apply_rules", fault.tables), ("remove_rules", fault.tables)]


def test_partition_rules_cover_every_address_of_the_cut_nodes(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "p", PARTITION_BED.format(name="p", rest=PARTITION_STEPS)))
    topology = scenario.topology
    both, oneway = (build(step) for step in scenario.steps)
    assert isinstance(both, filter_faults.Partition) and isinstance(oneway, filter_faults.Partition)
    # Both ways: every grouped node drops the other group; x, in no group, is never touched.
    assert {t.node for t in both.tables} == {"a1", "a2", "b1", "b2"}
    # One way: only the second group drops (the first group's packets); the first is untouched.
    assert {t.node for t in oneway.tables} == {"b1", "b2"}
    assert dict(oneway.sources) == {"b1": ("a1", "a2"), "b2": ("a1", "a2")}
    b2 = next(t for t in oneway.tables if t.node == "b2")
    (chain,) = b2.chains
    assert (b2.family, chain.hook, chain.priority) == ("inet", "prerouting", -300)
    from_a = {v for rule in chain.rules if rule.verdict == "drop" for m in rule.matches for v in m.values}
    for member in ("a1", "a2"):
        assert set(addresses(topology, member)) <= from_a
    assert not set(addresses(topology, "x")) & from_a
    # b2 faces a2 directly: its link-local packets are dropped by interface; b1 faces no A node.
    assert 'iifname "a" ip6 saddr fe80::/10 counter drop' in nft.script(b2)
    assert "iifname" not in nft.script(next(t for t in oneway.tables if t.node == "b1"))
    assert "ct " not in nft.script(b2), "no connection-tracking exemption: established flows are cut too"
    assert both.tables[0].name != oneway.tables[0].name and both.tables[0].name.startswith("drills_both_")
    assert oneway.describe() == "partition {a1, a2} -> {b1, b2} (one way: packets never reach a later group)"
    assert both.describe(reverted=True) == "partition {a1, a2} | {b1, b2} healed"
    assert all("drills_oneway_" in line for line in oneway.touches()) and len(oneway.touches()) == 2


def test_blackhole_layout(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "gray", BLACKHOLE_BED))
    fault = build(scenario.steps[0])
    assert isinstance(fault, filter_faults.Blackhole)
    name = scenario.steps[0].table  # type: ignore[attr-defined]
    drop_all = (Rule((), "drop"),)
    assert fault.tables == (
        Table("a", "netdev", name, (Chain("ingress_a", "ingress", -500, drop_all, device="b"),)),
        Table("b", "netdev", name, (Chain("ingress_b", "ingress", -500, drop_all, device="a"),)),
    )
    assert fault.touches()[0].startswith("a:b nftables table netdev drills_gray_")


def test_blackhole_applies_then_confirms_carrier_on_both_ends(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "gray", BLACKHOLE_BED))
    fault = build(scenario.steps[0])
    assert isinstance(fault, filter_faults.Blackhole)
    ctx, ops = fake_ctx()
    fault.apply(ctx)
    fault.revert(ctx)
    assert ops.calls == [
        ("apply_rules", fault.tables),
        ("link_state", ("a", "b")),
        ("link_state", ("b", "a")),
        ("remove_rules", fault.tables),
    ]
    # An end without carrier: a link-down, not the gray failure asked for.
    ctx, ops = fake_ctx({("b", "a"): False})
    with pytest.raises(BackendError, match="b:a has no carrier under blackhole"):
        fault.apply(ctx)


def test_a_host_without_nft_refuses_filter_steps_before_deploy(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "p", PARTITION_BED.format(name="p", rest=PARTITION_STEPS)))
    problems = filter_faults.requirements(scenario, {NFTABLES: False})
    assert [p.path for p in problems] == ["timeline[0].fault", "timeline[1].fault"]
    assert all("apt-get install nftables" in p.message and "'partition'" in p.message for p in problems)
    assert problems[0].line > 0, "located in the file, as the loader's problems are"
    assert filter_faults.requirements(scenario, {NFTABLES: True}) == []
    assert filter_faults.requirements(scenario, {}) == problems, "not declared: not available"
    asked: list[int] = []
    assert filter_faults.requirements(scenario, lambda: asked.append(1) or {NFTABLES: True}) == [] and asked == [1]
    # No filter step: the capabilities are not even asked for.
    gray = load_scenario(write(tmp_path, "gray", BLACKHOLE_BED.split("timeline:")[0]))
    assert filter_faults.requirements(gray, lambda: pytest.fail("asked")) == []


def test_the_drill_preflight_asks_the_capabilities_for_filter_steps(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "gray", BLACKHOLE_BED))
    (problem,) = drill_requirements(scenario, lambda: {NFTABLES: False})
    assert problem.path == "timeline[0].fault" and "fault 'blackhole' needs the `nft` command" in problem.message
    assert drill_requirements(scenario, lambda: {NFTABLES: True}) == []
    # What the backend that would deploy it declares: this machine has nft.
    assert drill_requirements(scenario, NetnsBackend().capabilities) == []


def test_the_namespace_backend_declares_nftables_when_nft_is_found(tmp_path: Path) -> None:
    assert NetnsBackend().capabilities()[NFTABLES] == (nft.find_nft() is not None)
    assert nft.find_nft() is not None  # this machine has nft (./dev setup)
    assert nft.find_nft(search_path=str(tmp_path), fallbacks=()) is None
    with pytest.raises(EnvironmentProblem, match="apt-get install nftables"):
        nft.require_nft(find=lambda: None)


# --------------------------------------------------------------------------- real namespaces


@pytest.mark.netns
def test_blackhole_drops_both_ways_keeps_carrier_and_no_backup_takes_over(
    tmp_path: Path, state_dir: Path, host_snapshot: Any
) -> None:
    host_before = drills_tables(None)
    with deployed(write(tmp_path, "gray", BLACKHOLE_BED), state_dir) as bed:
        topo, ns = bed.topology, bed.namespaces
        a_lo, b_lo = (str(topo.node(n).primary_address) for n in ("a", "b"))
        wire = [
            Probe(src, str(topo.node(src).interface(i).ipv4.ip), dst, str(topo.node(dst).interface(j).ipv4.ip))  # type: ignore[union-attr]
            for src, i, dst, j in (("a", "b", "b", "a"), ("b", "a", "a", "b"))
        ]
        wire6 = [
            Probe(src, str(topo.node(src).interface(i).ipv6.ip), dst, str(topo.node(dst).interface(j).ipv6.ip))  # type: ignore[union-attr]
            for src, i, dst, j in (("a", "b", "b", "a"), ("b", "a", "a", "b"))
        ]
        loops = [Probe("a", a_lo, "b", b_lo), Probe("b", b_lo, "a", a_lo)]
        elsewhere = [Probe("a", a_lo, "r", str(topo.node("r").interface("a").ipv4.ip))]  # type: ignore[union-attr]
        probes = wire + wire6 + loops + elsewhere
        assert deliver(ns, probes) == set(probes), "the testbed does not work before the fault"

        gray = bed.fault("gray")
        gray.arm(bed.ctx)  # as `drill run` does: the rules loaded before the clock, inert
        assert deliver(ns, probes) == set(probes), "the armed blackhole dropped packets before it was applied"
        gray.apply(bed.ctx)
        try:
            assert deliver(ns, probes) == set(elsewhere), "packets crossed the blackholed link"
            for end in ("a", "b"):
                peer_if = "b" if end == "a" else "a"
                state = bed.ctx.ops.link_state(end, peer_if)
                assert state.admin_up and state.carrier, f"{end} lost carrier: not a gray failure"
                assert drills_tables(ns[end]) == {gray.tables[0].name}  # type: ignore[attr-defined]
            # The point of a gray failure: the primary route stays, the backup never takes over.
            route = json.loads(subprocess.check_output(["ip", "-n", ns["a"], "-j", "route", "get", b_lo]))[0]
            assert route["dev"] == "b"
        finally:
            gray.revert(bed.ctx)
        assert deliver(ns, probes) == set(probes), "traffic did not come back after the blackhole"
        bed.ctx.ops.disarm_rules()  # type: ignore[attr-defined]
        assert all(drills_tables(ns[n]) == set() for n in ns), "a table of the fault is left"
        gray.revert(bed.ctx)  # reverting twice is harmless (a teardown after a failed apply does)

        # The same topology under carrier loss: there the backup route does take over.
        cut = bed.fault("cut")
        cut.apply(bed.ctx)
        try:
            assert deliver(ns, loops) == set(loops), "the backup route is broken: the check above proves nothing"
        finally:
            cut.revert(bed.ctx)
    assert drills_tables(None) == host_before, "the host's own nftables were touched"


@pytest.mark.netns
@pytest.mark.parametrize(("step_id", "armed"), [("both", True), ("both", False), ("oneway", True)])
def test_partition_reachability_matrix(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, step_id: str, armed: bool
) -> None:
    """armed: as `drill run` applies it (the rules loaded before, a jump to them applied);
    not armed: the table created whole when applied."""
    host_before = drills_tables(None)
    path = write(tmp_path, "part", PARTITION_BED.format(name="part", rest=PARTITION_STEPS))
    with deployed(path, state_dir) as bed:
        ns = bed.namespaces
        probes = every_pair(bed.topology) + link_local_pairs(ns, ("a2", "b", "b2", "a"), ("a1", "x", "x", "a1"))

        def hears(node: str, src: str) -> bool:
            g_node, g_src = GROUP.get(node), GROUP.get(src)
            if g_node is None or g_src is None or g_node == g_src:
                return True  # nodes in no group forward and receive unchanged
            return step_id == "oneway" and g_src == "B"  # one way: only A -> B is cut

        def allowed(probe: Probe) -> bool:
            # A node of a group drops what the other group sends, for itself or in transit.
            return all(hears(node, probe.src) for node in hops(probe))

        fault = bed.fault(step_id)
        if armed:
            fault.arm(bed.ctx)
        assert_matrix(ns, probes, everything, "before")
        fault.apply(bed.ctx)
        try:
            # Forget every neighbour: what is allowed must resolve its next hops again under the
            # partition (IPv6 neighbour discovery passes it, as ARP does).
            for namespace in ns.values():
                subprocess.run(["ip", "-n", namespace, "neigh", "flush", "all"], check=True)
            assert_matrix(ns, probes, allowed, "during")
            targets = {"a1", "a2", "b1", "b2"} if step_id == "both" else {"b1", "b2"}
            assert {n for n in ns if drills_tables(ns[n])} == targets
        finally:
            fault.revert(bed.ctx)
        assert_matrix(ns, probes, everything, "after")
        bed.ctx.ops.disarm_rules()  # type: ignore[attr-defined]
        assert all(drills_tables(ns[n]) == set() for n in ns), "a table of the partition is left"
    assert drills_tables(None) == host_before, "the host's own nftables were touched"


def _recv_within(sock: socket.socket, size: int, timeout_s: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while len(data) < size and time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            chunk = sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
    return data


@pytest.mark.netns
def test_partition_cuts_an_established_tcp_connection(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = write(tmp_path, "tcp", PARTITION_BED.format(name="tcp", rest=PARTITION_STEPS))
    sockets: list[socket.socket] = []

    def tcp_in(namespace: str) -> socket.socket:
        sock = kernel.run_in_namespace(namespace, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        sockets.append(sock)
        return sock

    with deployed(path, state_dir) as bed:
        try:
            ns, topo = bed.namespaces, bed.topology
            b1 = str(topo.node("b1").primary_address)
            listener = tcp_in(ns["b1"])
            listener.bind((b1, 0))
            listener.listen(4)
            port = listener.getsockname()[1]

            def connect() -> tuple[socket.socket, socket.socket]:
                client = tcp_in(ns["a1"])
                client.settimeout(5.0)
                client.connect((b1, port))
                server, _ = listener.accept()
                sockets.append(server)
                return client, server

            client, server = connect()
            client.sendall(b"hello")
            assert _recv_within(server, 5, 5.0) == b"hello"
            server.sendall(b"hi")
            assert _recv_within(client, 2, 5.0) == b"hi"

            fault = bed.fault("both")
            fault.apply(bed.ctx)
            try:
                client.sendall(b"during")
                server.sendall(b"back")
                # Established both ways, and still nothing crosses: the drops are stateless.
                assert _recv_within(server, 6, 1.0) == b"", "an established connection leaked through the partition"
                assert _recv_within(client, 4, 0.2) == b""
            finally:
                fault.revert(bed.ctx)
            # TCP retransmits what was held back once the partition heals (backoff: a few seconds).
            assert _recv_within(server, 6, 15.0) == b"during"
            assert _recv_within(client, 4, 15.0) == b"back"
            again, accepted = connect()
            again.sendall(b"new")
            assert _recv_within(accepted, 3, 5.0) == b"new"
        finally:
            for sock in sockets:
                sock.close()


PARTITION_DRILL = """
probes:
  - {name: cross, type: udp-stream, from: a1, to: b1, rate_pps: 1000}
timeline:
  - {id: split, at: 2s, fault: partition, groups: [[a1, a2], [b1, b2]], for: 2s}
expect:
  - {probe: cross, step: split, max_recovery: 3s}
duration: 6s
"""


@pytest.mark.netns
def test_two_second_partition_yields_a_two_second_outage(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = write(tmp_path, "split", PARTITION_BED.format(name="split", rest=PARTITION_DRILL))
    result = run_drill(path, state_dir, log=lambda _m: None)
    apply, revert = (s for s in result.steps if s.label == "split")
    shortest_s = revert.issued_s - apply.confirmed_s
    longest_s = revert.confirmed_s - apply.issued_s
    cut = next(m for m in result.metrics if m.kind == "apply")
    # In force once every node's kernel committed its table: before the read-back confirmed it.
    assert apply.in_force_s is not None and apply.issued_s <= apply.in_force_s < apply.confirmed_s
    jitter_s = cut.accuracy_s - (apply.effect_by_s - apply.issued_s)
    assert shortest_s - jitter_s <= cut.outage_s <= longest_s + jitter_s
    # Lost packets times the gap, within the span the engine issued (2 s plus the scheduler's
    # lateness on a loaded machine, which is not the measurement's error): see test_drill_run.
    assert abs(cut.outage_s - (revert.issued_s - apply.issued_s)) <= 0.1
    assert apply.confirmed_s - apply.issued_s < 0.5, "applying and confirming a partition took too long"
    assert not cut.recovered_during_event
    assert not result.inconclusive and not result.revert_failures
    assert [v.passed for v in result.verdicts] == [True]
    assert not any(state_dir.glob("runs/*"))

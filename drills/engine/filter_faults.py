"""Faults made of packet-filter rules inside the run's own nodes: `blackhole` and `partition`.

Each fault owns one table per node it changes, named after its step (`drills_<id>_<hash>`,
drills.scenario.steps.table_name), and never touches anything else. The rules are built as data
(drills.rules) from the resolved step, before the drill clock starts. Before it too, the backend
may arm each table (`NodeOps.arm_rules`: its hooked chains with no rule, dropping nothing, and
its rules loaded where no packet reaches them), so that no hook is registered and no rule built
on the clock; then applying points every hooked chain at its rules at once and confirms it
(`NodeOps.apply_rules`), reverting unpoints them, and armed tables go when the run's operations
close. Without arming, apply creates the table and revert deletes it.

- `blackhole` (a gray failure): a `netdev` table in each end's node with an ingress chain
  bound to the link's interface, dropping every frame (ARP and neighbour discovery included).
  Carrier stays up on both ends, so routes through the link stay installed and no backup route
  takes over: what BFD exists to catch and carrier detection misses.
- `partition`: an `inet` table in every node of a group that must not hear another group, with
  one prerouting chain at raw priority (-300, before conntrack) dropping packets whose source is
  any address of a node in such a group. The drops are stateless, so established connections
  are cut too (iptables partitions that accept ESTABLISHED first leak them). A node of a group
  drops those packets whether they are for itself or in transit (it stands on the far side of
  the cut); nodes in no group forward unchanged.

The namespace backend does this with nftables (`nft`, Debian package `nftables`); a backend
declares it can (`drills.backend.NFTABLES`), and `requirements()` refuses these steps before
anything is deployed when it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from drills.backend import NFTABLES
from drills.engine.fault import FaultContext, register
from drills.errors import BackendError, Problem
from drills.rules import (
    ICMPV6_TYPE,
    IN_INTERFACE,
    IPV4_SOURCE,
    IPV6_SOURCE,
    NEIGHBOR_ADVERTISEMENT,
    NEIGHBOR_SOLICITATION,
    ROUTER_ADVERTISEMENT,
    ROUTER_SOLICITATION,
    Chain,
    Match,
    Rule,
    Table,
)
from drills.scenario.resolved import Interface, Link, Node, Scenario
from drills.scenario.steps import BlackholeStep, PartitionStep

NFT_PACKAGE = "nftables"  # Debian's (and RHEL's) package for the `nft` command
NFT_KINDS = ("blackhole", "partition")
# Before conntrack (-200): a dropped packet creates no conntrack entry, and no state can let an
# established flow through.
PARTITION_PRIORITY = -300
BLACKHOLE_PRIORITY = -500  # ahead of any other ingress chain a node's services might add
# Neighbour discovery passes a partition as ARP does (the inet family never sees ARP): the
# permitted direction of a one-way partition must still resolve its next hop. These messages
# cannot carry application data and never leave the link.
ND_TYPES = (ROUTER_SOLICITATION, ROUTER_ADVERTISEMENT, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT)
LINK_LOCAL_V6 = "fe80::/10"


# --------------------------------------------------------------------------- preflight


def missing_nft(kind: str) -> str:
    return (
        f"fault '{kind}' needs the `nft` command, which is not installed "
        f"(Debian/Ubuntu: apt-get install {NFT_PACKAGE}; RHEL: dnf install {NFT_PACKAGE})"
    )


def requirements(
    scenario: Scenario, capabilities: Mapping[str, bool] | Callable[[], Mapping[str, bool]]
) -> list[Problem]:
    """Every blackhole or partition step of `scenario` the backend cannot run, located in the
    file: one whose capabilities do not declare `drills.backend.NFTABLES`. `capabilities` is the
    backend's mapping, or a lookup called only when the timeline has such a step (at most once).
    Meant for the runner's preflight, before anything is deployed."""
    steps = [step for step in scenario.steps if step.kind in NFT_KINDS]
    if not steps:
        return []
    caps = capabilities() if callable(capabilities) else capabilities
    if caps.get(NFTABLES, False):
        return []
    return [scenario.problem(("timeline", step.index, "fault"), missing_nft(step.kind)) for step in steps]


# --------------------------------------------------------------------------- blackhole


@dataclass(frozen=True)
class Blackhole:
    """Gray failure on a link: both ends keep carrier, every frame arriving at either end is dropped."""

    link: Link
    tables: tuple[Table, ...]
    reversible: bool = True
    in_force_at_first_change = False

    @classmethod
    def from_step(cls, step: BlackholeStep) -> Blackhole:
        link = step.link
        chains: dict[str, list[Chain]] = {}  # node -> chains (a link may loop back to its own node)
        for label, end in (("a", link.a), ("b", link.b)):
            rule = Rule((), "drop")
            chains.setdefault(end.node, []).append(
                Chain(f"ingress_{label}", "ingress", BLACKHOLE_PRIORITY, (rule,), device=end.name)
            )
        tables = tuple(Table(node, "netdev", step.table, tuple(c)) for node, c in chains.items())
        return cls(link, tables)

    def describe(self, reverted: bool = False) -> str:
        if reverted:
            return f"link {self.link.name}: blackhole lifted"
        return f"link {self.link.name}: blackhole (carrier up, every packet dropped both ways)"

    def touches(self) -> list[str]:
        return [
            f"{t.node}:{c.device} nftables table netdev {t.name}, ingress chain {c.name} dropping every packet (armed inert before the clock; in force while applied)"
            for t in self.tables
            for c in t.chains
        ]

    def arm(self, ctx: FaultContext) -> None:
        ctx.ops.arm_rules(self.tables)  # inert till applied: applying adds a jump to the rule only

    def apply(self, ctx: FaultContext) -> None:
        # In force once every node's kernel committed its table; the read-back and the carrier
        # check after it confirm the gray failure without widening the event's window.
        ctx.ops.apply_rules(self.tables, ctx.mark_in_force)
        self._confirm_carrier(ctx)

    def revert(self, ctx: FaultContext) -> None:
        ctx.ops.remove_rules(self.tables)

    def _confirm_carrier(self, ctx: FaultContext) -> None:
        """Carrier up on both ends: a gray failure, not a link-down. Reading each end also proves
        the interface a chain is bound to exists in its node: a kernel (6.18) accepts a netdev
        chain naming a device that does not exist, and hooks nothing."""
        for end in (self.link.a, self.link.b):
            state = ctx.ops.link_state(end.node, end.name)
            if not (state.admin_up and state.carrier):
                raise BackendError(
                    f"{end.endpoint} has no carrier under blackhole: this is a link-down, not a gray failure"
                )


register("blackhole")(Blackhole.from_step)


# --------------------------------------------------------------------------- partition


def node_addresses(node: Node) -> tuple[list[IPv4Address], list[IPv6Address]]:
    """Every address a node's packets may carry as their source: loopback and every interface's
    IPv4 and IPv6 addresses (link-local ones are matched by interface, see `Partition`)."""
    v4 = [node.loopback.ip] if node.loopback is not None else []
    v6: list[IPv6Address] = []
    for iface in node.interfaces:
        if iface.ipv4 is not None:
            v4.append(iface.ipv4.ip)
        if iface.ipv6 is not None:
            v6.append(iface.ipv6.ip)
    return v4, v6


def _peer(links: Iterable[Link], iface: Interface) -> Interface | None:
    for link in links:
        if link.a == iface:
            return link.b
        if link.b == iface:
            return link.a
    return None


def blocked_pairs(groups: Sequence[Sequence[str]], one_way: bool) -> list[tuple[int, int]]:
    """(from group, to group) index pairs whose packets are dropped. Symmetric: every ordered pair
    of distinct groups. One way: a group never reaches a later one (with two groups, group 1's
    packets never reach group 2); later groups still reach earlier ones."""
    count = len(groups)
    return [(i, j) for i in range(count) for j in range(count) if i != j and (not one_way or i < j)]


@dataclass(frozen=True)
class Partition:
    """Groups of nodes cut from each other, both ways or one way.

    Each node of a group that must not hear group G gets a prerouting chain dropping packets
    sourced from any address of G's nodes, plus IPv6 link-local packets arriving on its
    interfaces that face a node of G (link-local sources are the kernel's, unknown before
    deploy, and can only come from a direct neighbour)."""

    groups: tuple[tuple[str, ...], ...]
    one_way: bool
    tables: tuple[Table, ...]
    sources: tuple[tuple[str, tuple[str, ...]], ...]  # target node -> the nodes it drops
    reversible: bool = True
    in_force_at_first_change = False

    @classmethod
    def from_step(cls, step: PartitionStep) -> Partition:
        groups, members = step.groups, {node.name: node for node in step.members}
        heard_from: dict[int, list[int]] = {}
        for src, dst in blocked_pairs(groups, step.one_way):
            heard_from.setdefault(dst, []).append(src)
        tables, sources = [], []
        for dst, srcs in sorted(heard_from.items()):
            cut = [member for src in srcs for member in groups[src]]
            v4: set[IPv4Address] = set()
            v6: set[IPv6Address] = set()
            for member in cut:
                a4, a6 = node_addresses(members[member])
                v4.update(a4)
                v6.update(a6)
            for target in groups[dst]:
                facing = sorted(
                    iface.name
                    for iface in members[target].interfaces
                    if (peer := _peer(step.links, iface)) is not None and peer.node in cut
                )
                rules = [Rule((Match(ICMPV6_TYPE, ND_TYPES),), "accept", counter=False)]
                if v4:
                    rules.append(Rule((_addresses(IPV4_SOURCE, v4),), "drop"))
                if v6:
                    rules.append(Rule((_addresses(IPV6_SOURCE, v6),), "drop"))
                if facing:
                    by_iface = Match(IN_INTERFACE, tuple(facing))
                    rules.append(Rule((by_iface, Match(IPV6_SOURCE, (LINK_LOCAL_V6,))), "drop"))
                chain = Chain("partition", "prerouting", PARTITION_PRIORITY, tuple(rules))
                tables.append(Table(target, "inet", step.table, (chain,)))
                sources.append((target, tuple(cut)))
        return cls(groups, step.one_way, tuple(tables), tuple(sources))

    def describe(self, reverted: bool = False) -> str:
        shown = [f"{{{', '.join(group)}}}" for group in self.groups]
        if self.one_way:
            text = f"partition {' -> '.join(shown)} (one way: packets never reach a later group)"
        else:
            text = f"partition {' | '.join(shown)}"
        return f"{text} healed" if reverted else text

    def touches(self) -> list[str]:
        return [
            f"{node}: nftables table inet {self.tables[0].name}, prerouting chain dropping packets from "
            f"{', '.join(cut)} (every address; armed inert before the clock; in force while applied)"
            for node, cut in self.sources
        ]

    def arm(self, ctx: FaultContext) -> None:
        ctx.ops.arm_rules(self.tables)  # inert till applied: applying adds a jump to the rules only

    def apply(self, ctx: FaultContext) -> None:
        ctx.ops.apply_rules(self.tables, ctx.mark_in_force)  # in force once every table is committed

    def revert(self, ctx: FaultContext) -> None:
        ctx.ops.remove_rules(self.tables)


def _addresses(field: str, addresses: Iterable[IPv4Address | IPv6Address]) -> Match:
    ordered = sorted(addresses, key=lambda a: a.packed)
    return Match(field, tuple(str(a) for a in ordered))


register("partition")(Partition.from_step)

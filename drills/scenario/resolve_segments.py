"""LAN segments: their members checked (known nodes, each interface on one link or segment, a
name no link has), and their subnets, given or taken from the pools, with the members addressed
in order (.1, .2, ...). Called by the topology and address resolvers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import Any

from drills.scenario import addrspace, model, values
from drills.scenario.diagnostics import suggest
from drills.scenario.reporter import Reporter
from drills.scenario.resolved import Interface, IPNetwork, Segment
from drills.scenario.yamlpos import KeyPath

Members = list[tuple[str, str]]  # (node, interface) in file order
Nets = tuple[IPv4Network | None, IPv6Network | None]


@dataclass(frozen=True)
class SegmentPlan:
    """A segment whose members passed their checks: its index in `topology.segments`."""

    index: int
    name: str
    members: Members


def default_prefix(members: int) -> int:
    """The longest IPv4 prefix holding `members` hosts and one more (room for a virtual
    address, such as a VRRP gateway's), and never longer than a /29."""
    prefix = 29
    while prefix > 8 and (1 << (32 - prefix)) - 2 < members + 1:
        prefix -= 1
    return prefix


class SegmentResolver(Reporter):
    def segment_refs(
        self,
        node_names: set[str] | dict[str, Any],
        segments: list[model.Segment],
        ends: dict[tuple[str, str], KeyPath],
        link_names: dict[str, int],
    ) -> list[SegmentPlan]:
        """Check every segment's members and name; `ends` (the links' endpoints) grows with the
        members, so an interface is on one link or one segment only."""
        base: KeyPath = ("topology", "segments")
        names: dict[str, int] = {}
        plans = []
        for i, segment in enumerate(segments):
            spath = (*base, i)
            if segment.name in link_names:
                first = self.line_of(("topology", "links", link_names[segment.name]))
                self.err(
                    (*spath, "name"),
                    f"segment name '{segment.name}' is the name of the link at {first}; links and segments need distinct names",
                )
            elif segment.name in names:
                first = self.line_of((*base, names[segment.name]))
                self.err(
                    (*spath, "name"),
                    f"segment name '{segment.name}' is already used by the segment at {first}; segment names are unique",
                )
            names.setdefault(segment.name, i)
            members: Members = []
            bad = False
            for j, endpoint in enumerate(segment.members):
                mpath = (*spath, "members", j)
                node, iface = endpoint.split(":", 1)
                problem = values.interface_name(iface)
                if node not in node_names:
                    self.err(mpath, f"unknown node '{node}'{suggest(node, node_names)}")
                    bad = True
                elif problem:
                    self.err(mpath, problem)
                    bad = True
                elif (node, iface) in ends:
                    self.err(
                        mpath,
                        f"endpoint {endpoint} is already used ({self.line_of(ends[(node, iface)])}); "
                        "each interface joins one link or one segment",
                    )
                    bad = True
                ends.setdefault((node, iface), mpath)
                members.append((node, iface))
            if not bad:
                plans.append(SegmentPlan(i, segment.name, members))
        return plans

    def segment_subnets(
        self,
        topo: model.Topology,
        plans: list[SegmentPlan],
        index4: addrspace.Disjoint,
        index6: addrspace.Disjoint,
        used4: list[tuple[Any, KeyPath]],
        used6: list[tuple[Any, KeyPath]],
    ) -> dict[int, Nets]:
        """The subnets written by hand, checked (large enough, overlapping nothing given before)
        and claimed; also refuses addresses written on a member's interface (members are
        addressed from the segment's subnet, in order)."""
        fixed: dict[int, Nets] = {}
        for plan in plans:
            segment = topo.segments[plan.index]
            spath: KeyPath = ("topology", "segments", plan.index)
            for node, iface in plan.members:
                cfg = topo.nodes[node].interfaces.get(iface)
                for key in ("ipv4", "ipv6"):
                    if cfg is not None and getattr(cfg, key) is not None:
                        self.err(
                            ("topology", "nodes", node, "interfaces", iface, key),
                            f"{node}:{iface} is a member of segment {plan.name}, addressed from its subnet in member order; "
                            "set the segment's `subnet` (or `ipv6`) and order its members instead",
                        )
            nets: list[Any] = []
            for key, text, used, index, family in (
                ("subnet", segment.subnet, used4, index4, 4),
                ("ipv6", segment.ipv6, used6, index6, 6),
            ):
                if text is None:
                    nets.append(None)
                    continue
                net = ipaddress.ip_network(text)
                hosts = net.num_addresses - (2 if family == 4 else 1)
                if net.version != family:
                    self.err((*spath, key), f"{net} is not an IPv{family} prefix")
                elif hosts < len(plan.members):
                    self.err(
                        (*spath, key),
                        f"{net} has {max(hosts, 0)} host addresses, too few for the segment's {len(plan.members)} members; "
                        f"give a larger subnet (such as a /{default_prefix(len(plan.members))})",
                    )
                elif (overlap := index.first_overlapping(net)) is not None:
                    self.err(
                        (*spath, key),
                        f"subnet {net} overlaps {overlap[0]} given at {self.line_of(overlap[1])}; segments and links need separate subnets",
                    )
                else:
                    used.append((net, (*spath, key)))
                    index.add(net, (net, (*spath, key)))
                    nets.append(net)
                    continue
                nets.append(None)
            fixed[plan.index] = (nets[0], nets[1])
        return fixed

    def build_segments(
        self,
        topo: model.Topology,
        plans: list[SegmentPlan],
        fixed: dict[int, Nets],
        taken4: list[Any],
        taken6: list[Any],
        pools: tuple[IPNetwork, IPNetwork | None],
        built: dict[tuple[str, str], Interface],
    ) -> tuple[Segment, ...] | None:
        """Each segment with its members addressed in order, automatic subnets taken from the
        pools (and appended to `taken4`/`taken6`, so no link subnet lands in one); `built` gains
        the members. None when a pool runs dry (reported)."""
        pool4, pool6 = pools
        out = []
        for plan in plans:
            segment = topo.segments[plan.index]
            net4, net6 = fixed.get(plan.index, (None, None))
            if net4 is None:
                net4 = _next_free(pool4, default_prefix(len(plan.members)), taken4)
                if net4 is None:
                    self.err(("topology", "addressing", "ipv4"), f"pool {pool4} has no room left for segment {plan.name}; give a larger pool")
                    return None
            if net6 is None and pool6 is not None and segment.ipv6 is None:
                net6 = _next_free(pool6, 64, taken6)
                if net6 is None:
                    self.err(("topology", "addressing", "ipv6"), f"pool {pool6} has no /64 left for segment {plan.name}")
                    return None
            members = []
            for n, (node, iface) in enumerate(plan.members, start=1):
                cfg = topo.nodes[node].interfaces.get(iface)
                mtu = segment.mtu if segment.mtu is not None else (cfg.mtu if cfg is not None else None)
                v4 = IPv4Interface((int(net4.network_address) + n, net4.prefixlen))
                v6 = IPv6Interface((int(net6.network_address) + n, net6.prefixlen)) if net6 is not None else None
                members.append(Interface(node, iface, v4, v6, mtu))
                built[(node, iface)] = members[-1]
            out.append(Segment(plan.name, tuple(members), segment.mtu))
        return tuple(out)


def _next_free(pool: Any, prefix: int, taken: list[Any]) -> Any:
    """The first free /`prefix` of `pool`, claimed in `taken`; None when there is none."""
    net = next(addrspace.free_subnets(pool, prefix, taken), None)
    if net is not None:
        taken.append(net)
    return net

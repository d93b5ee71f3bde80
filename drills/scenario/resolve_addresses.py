"""Addressing: the addresses fixed by hand, checked for consistency, and automatic ones for
everything left open (a /30 per link from `addressing.ipv4`, a /64 from `addressing.ipv6` when set,
a /32 loopback per node), skipping every subnet the author fixed by hand."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import Any

from drills.scenario import addrspace, model
from drills.scenario.resolve_segments import SegmentPlan, SegmentResolver
from drills.scenario.resolved import Interface, IPAddress, Link, Segment
from drills.scenario.yamlpos import KeyPath


@dataclass(frozen=True)
class Addressed:
    """The links with their addresses, each node's loopback, and every interface by (node, name)."""

    links: tuple[Link, ...]
    loopbacks: dict[str, IPv4Interface | None]
    interfaces: dict[tuple[str, str], Interface]
    segments: tuple[Segment, ...] = ()


class AddressResolver(SegmentResolver):
    def assign_addresses(
        self,
        topo: model.Topology,
        link_ends: list[tuple[tuple[str, str], tuple[str, str]] | None],
        link_names: dict[str, int],
        segments: list[SegmentPlan] | None = None,
    ) -> Addressed | None:
        """Every link's and loopback's addresses; None when one is wrong or a pool runs dry."""
        base: KeyPath = ("topology",)
        pool4 = ipaddress.ip_network(topo.addressing.ipv4)
        pool_lo = ipaddress.ip_network(topo.addressing.loopbacks)
        pool6 = ipaddress.ip_network(topo.addressing.ipv6) if topo.addressing.ipv6 else None
        for key, pool, family in (("ipv4", pool4, 4), ("loopbacks", pool_lo, 4), ("ipv6", pool6, 6)):
            if pool is not None and pool.version != family:
                self.err((*base, "addressing", key), f"{pool} is not an IPv{family} prefix")
        if pool6 is not None and pool6.version == 6 and pool6.prefixlen > 64:
            self.err(
                (*base, "addressing", "ipv6"), f"{pool6} is too small; give a /64 or larger (a /48 ULA prefix is usual)"
            )
        if self.problems:
            return None

        def iface_cfg(node: str, iface: str) -> model.InterfaceConfig | None:
            return topo.nodes[node].interfaces.get(iface)

        def cfg_path(node: str, iface: str, key: str) -> KeyPath:
            return (*base, "nodes", node, "interfaces", iface, key)

        # Addresses fixed by hand, per link, checked for consistency.
        used4: list[tuple[IPv4Network, KeyPath]] = []
        used6: list[tuple[IPv6Network, KeyPath]] = []
        addrs: dict[IPAddress, KeyPath] = {}
        fixed4: dict[int, tuple[IPv4Interface | None, IPv4Interface | None]] = {}
        fixed6: dict[int, tuple[IPv6Interface | None, IPv6Interface | None]] = {}
        # The same subnets, indexed: which one a new subnet overlaps, without a scan of them all.
        index4, index6 = addrspace.Disjoint(), addrspace.Disjoint()

        def claim_address(addr: IPAddress, path: KeyPath) -> None:
            if addr in addrs:
                self.err(
                    path,
                    f"address {addr} is also given at {self.line_of(addrs[addr])}; addresses are unique in a testbed",
                )
            addrs.setdefault(addr, path)

        for i, ends in enumerate(link_ends):
            assert ends is not None
            for family, used, fixed, index in ((4, used4, fixed4, index4), (6, used6, fixed6, index6)):
                key = "ipv4" if family == 4 else "ipv6"
                given: list[Any] = []
                for owner, iface in ends:
                    cfg = iface_cfg(owner, iface)
                    value = getattr(cfg, key) if cfg else None
                    given.append(ipaddress.ip_interface(value) if value else None)
                a, b = given
                if a is not None and b is not None and a.network != b.network:
                    self.err(
                        cfg_path(*ends[1], key),
                        f"{b} is not in the subnet of the other end {ends[0][0]}:{ends[0][1]} ({a.network}); both ends of a link share one subnet",
                    )
                    continue
                fixed_net = (a or b).network if (a or b) else None
                if fixed_net is not None:
                    where = cfg_path(*ends[0 if a is not None else 1], key)
                    if fixed_net.num_addresses < 2 or (family == 4 and fixed_net.prefixlen > 31):
                        wider = "a /30 or /31" if family == 4 else "a /64 (or a /127)"
                        self.err(where, f"{fixed_net} is too small for a link; use {wider}")
                        continue
                    if a is not None and b is None:
                        b = _other_host(a)
                    elif b is not None and a is None:
                        a = _other_host(b)
                    if a is not None and b is not None and a.ip == b.ip:
                        self.err(
                            cfg_path(*ends[1], key),
                            f"both ends of the link have address {a.ip}; give {ends[1][0]}:{ends[1][1]} another address in {fixed_net}",
                        )
                        continue
                    # Addresses written by hand on this link (not the derived neighbour address).
                    given_here = [
                        (addr.ip, cfg_path(node, iface, key))
                        for addr, (node, iface) in ((a, ends[0]), (b, ends[1]))
                        if addr is not None and getattr(iface_cfg(node, iface), key, None)
                    ]
                    # One mistake, one problem: a reused address is named as such, not also as
                    # the overlap of the two link subnets it implies.
                    clash = next(((ip, at) for ip, at in given_here if ip in addrs), None)
                    if clash is not None:
                        claim_address(*clash)
                        continue
                    overlap = index.first_overlapping(fixed_net)
                    if overlap is not None:
                        self.err(
                            where,
                            f"subnet {fixed_net} overlaps {overlap[0]} given at {self.line_of(overlap[1])}; links need separate subnets",
                        )
                        continue
                    used.append((fixed_net, where))
                    index.add(fixed_net, (fixed_net, where))
                    for ip, at in given_here:
                        claim_address(ip, at)
                fixed[i] = (a, b)

        seg_fixed = self.segment_subnets(topo, segments or [], index4, index6, used4, used6)
        loopbacks: dict[str, IPv4Interface | None] = {}
        for name, node in topo.nodes.items():
            if node.loopback not in ("auto", "none"):
                lo = IPv4Interface(node.loopback)
                lpath = (*base, "nodes", name, "loopback")
                if lo.network.prefixlen != 32:
                    self.err(lpath, f"a loopback address is a /32; write {lo.ip}/32")
                overlap = index4.first_overlapping(IPv4Network(lo.ip))
                if overlap is not None:
                    self.err(
                        lpath,
                        f"loopback {lo.ip} lies in link subnet {overlap[0]} given at {self.line_of(overlap[1])}; take it from outside the link subnets",
                    )
                    continue
                claim_address(lo.ip, lpath)
                loopbacks[name] = lo
        if self.problems:
            return None

        # Automatic addresses for what was left open.
        # One list, grown as link subnets are handed out: the generators read it lazily, so that
        # automatic loopbacks never land in an automatic link subnet when the two pools overlap.
        taken4: list[Any] = [n for n, _ in used4] + [IPv4Network(f"{a}/32") for a in addrs if a.version == 4]
        subnets4 = addrspace.free_subnets(pool4, 30, taken4)
        taken6: list[Any] = [n for n, _ in used6]
        subnets6 = addrspace.free_subnets(pool6, 64, taken6) if pool6 else None
        auto_lo = addrspace.free_hosts(pool_lo, taken4)
        built: dict[tuple[str, str], Interface] = {}
        # Segments first: their subnets are larger than a link's /30, and taken in pool order
        # before the links fill the pool's gaps.
        built_segments = self.build_segments(topo, segments or [], seg_fixed, taken4, taken6, (pool4, pool6), built)
        if built_segments is None:
            return None
        links: list[Link] = []
        names_by_index = {i: n for n, i in link_names.items()}
        for i, ends in enumerate(link_ends):
            assert ends is not None
            a4, b4 = fixed4.get(i, (None, None))
            if a4 is None:
                net4 = next(subnets4, None)
                if net4 is None:
                    self.err(
                        (*base, "addressing", "ipv4"),
                        f"pool {pool4} has no /30 left for link {names_by_index[i]}; give a larger pool",
                    )
                    return None
                taken4.append(net4)
                first4 = int(net4.network_address)  # the two hosts of the /30, built from integers
                a4, b4 = IPv4Interface((first4 + 1, 30)), IPv4Interface((first4 + 2, 30))
            a6, b6 = fixed6.get(i, (None, None))
            if a6 is None and subnets6 is not None:
                net6 = next(subnets6, None)
                if net6 is None:
                    self.err(
                        (*base, "addressing", "ipv6"), f"pool {pool6} has no /64 left for link {names_by_index[i]}"
                    )
                    return None
                a6, b6 = IPv6Interface(f"{net6[1]}/64"), IPv6Interface(f"{net6[2]}/64")
            sides = []
            for (owner, iface), v4, v6 in ((ends[0], a4, a6), (ends[1], b4, b6)):
                cfg = iface_cfg(owner, iface)
                sides.append(Interface(owner, iface, v4, v6, cfg.mtu if cfg else None))
                built[(owner, iface)] = sides[-1]
            link = topo.links[i]
            links.append(
                Link(names_by_index[i], sides[0], sides[1], link.profile, link.engine, link_profile(link, self.profiles))
            )
        for name, node in topo.nodes.items():
            if node.loopback == "auto":
                host = next(auto_lo, None)
                if host is None:
                    self.err((*base, "addressing", "loopbacks"), f"pool {pool_lo} has no address left for node {name}")
                    return None
                loopbacks[name] = IPv4Interface(f"{host}/32")
            elif node.loopback == "none":
                loopbacks[name] = None
        return Addressed(tuple(links), loopbacks, built, built_segments)


def link_profile(link: model.Link, profiles: dict[str, model.Profile]) -> model.Profile | None:
    """The impairments a link is deployed with: its profile, with the link's own `delay` and `rate`
    in both directions in place of the profile's (an imported backbone's links each have theirs)."""
    profile = profiles.get(link.profile) if link.profile is not None else None
    own = {key: value for key, value in (("delay", link.delay), ("rate", link.rate)) if value is not None}
    if not own:
        return profile
    base = profile or model.Profile()
    reverse = base.reverse.model_copy(update=own) if base.reverse is not None else None
    return base.model_copy(update={**own, "reverse": reverse})


def _other_host(given: IPv4Interface | IPv6Interface) -> Any:
    """The neighbour's address when only one end of a link was given."""
    for host in given.network.hosts() if given.network.num_addresses > 2 else given.network:
        if host != given.ip:
            return ipaddress.ip_interface(f"{host}/{given.network.prefixlen}")
    return None

"""Resolve a parsed scenario: check every reference and assign every address.

Runs after shape validation and before anything touches the kernel. Each check appends a located
problem and carries on, so one pass reports everything. Auto-addressing gives each link a /30 from
`addressing.ipv4` (and a /64 from `addressing.ipv6` when set) and each node a /32 loopback,
skipping every subnet the author fixed by hand. Faults that would act on one object at the same
time are refused here too (see `_overlaps` and drills.scenario.overlap), so that no fault silently undoes another.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import os
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any

from drills.errors import Problem
from drills.impairment import degraded_with_netem
from drills.scenario import addrspace, model, overlap, values
from drills.scenario.bounds import check_resolved, check_sizes, step_end_s
from drills.scenario.diagnostics import problem_at, suggest
from drills.scenario.resolved import (
    Container,
    Interface,
    IPAddress,
    IPNetwork,
    Link,
    Node,
    Readiness,
    Route,
    Scenario,
    Service,
    Topology,
)
from drills.scenario.steps import resolve_steps
from drills.scenario.yamlpos import KeyPath, Located

_CONTAINER_KEYS = frozenset(
    {"image", "command", "environment", "volumes", "capabilities", "privileged", "exec", "attach", "ready"}
)
DEFAULT_TAIL_S = 10.0  # a drill runs this long past its last step unless `duration` says otherwise


@dataclass
class Parts:
    """The pieces of a scenario that passed shape validation, with their list indices."""

    topology: model.Topology | None = None
    profiles: dict[str, model.Profile] = field(default_factory=dict)
    probes: list[tuple[int, Any]] = field(default_factory=list)
    steps: list[tuple[int, Any]] = field(default_factory=list)
    objectives: list[tuple[int, model.Objective]] = field(default_factory=list)
    # When the topology has shape errors: its node names and the links valid on their own, so
    # that link references are still checked in the same pass.
    node_names: set[str] | None = None
    links: list[tuple[int, model.Link]] = field(default_factory=list)
    # Names defined by pieces that have shape errors (already reported): a reference to one of
    # them is not "unknown".
    invalid_profiles: set[str] = field(default_factory=set)
    invalid_probes: set[str] = field(default_factory=set)
    invalid_steps: set[str] = field(default_factory=set)

    @classmethod
    def from_model(cls, whole: model.ScenarioFile) -> Parts:
        topology = whole.topology if isinstance(whole.topology, model.Topology) else None
        return cls(
            topology=topology,
            profiles=dict(whole.profiles),
            probes=list(enumerate(whole.probes)),
            steps=list(enumerate(whole.timeline)),
            objectives=list(enumerate(whole.expect)),
        )


class _Resolver:
    def __init__(
        self, located: Located, profiles: dict[str, model.Profile], invalid_profiles: set[str] | None = None
    ) -> None:
        self.located = located
        self.profiles = profiles
        self.invalid_profiles = invalid_profiles or set()
        self.problems: list[Problem] = []

    def err(self, path: KeyPath, message: str, *, key: bool = False) -> None:
        self.problems.append(problem_at(self.located, path, message, key=key))

    def line_of(self, path: KeyPath) -> str:
        mark = self.located.mark(path)
        return f"line {mark.line}" if mark else "elsewhere"

    # ------------------------------------------------------------------ topology

    def links(
        self, node_names: set[str] | dict[str, Any], links: list[tuple[int, model.Link]]
    ) -> tuple[dict[tuple[str, str], KeyPath], dict[str, int], list[tuple[tuple[str, str], tuple[str, str]] | None]]:
        """Check the links' endpoints, names and profiles; also used on the valid links of a
        topology that has shape errors elsewhere."""
        base: KeyPath = ("topology",)
        ends: dict[tuple[str, str], KeyPath] = {}
        link_names: dict[str, int] = {}
        link_ends: list[tuple[tuple[str, str], tuple[str, str]] | None] = []
        for i, link in links:
            lpath = (*base, "links", i)
            pair: list[tuple[str, str]] = []
            for j, endpoint in enumerate(link.endpoints):
                epath = (*lpath, "endpoints", j)
                node, iface = endpoint.split(":", 1)
                if node not in node_names:
                    self.err(epath, f"unknown node '{node}'{suggest(node, node_names)}")
                problem = values.interface_name(iface)
                if problem:
                    self.err(epath, problem)
                if (node, iface) in ends:
                    self.err(
                        epath,
                        f"endpoint {endpoint} is already used by another link ({self.line_of(ends[(node, iface)])}); each interface joins one link",
                    )
                ends.setdefault((node, iface), epath)
                pair.append((node, iface))
            name = link.name or f"{link.endpoints[0]}--{link.endpoints[1]}"
            if name in link_names:
                first = self.line_of((*base, "links", link_names[name]))
                self.err(
                    (*lpath, "name"),
                    f"link name '{name}' is already used by the link at {first}; link names are unique",
                )
            link_names.setdefault(name, i)
            if (
                link.profile is not None
                and link.profile not in self.profiles
                and link.profile not in self.invalid_profiles
            ):
                self.err((*lpath, "profile"), self._unknown_profile(link.profile))
            link_ends.append((pair[0], pair[1]) if len(pair) == 2 else None)
        return ends, link_names, link_ends

    def topology(self, topo: model.Topology) -> Topology | None:
        base: KeyPath = ("topology",)
        before = len(self.problems)
        ends, link_names, link_ends = self.links(topo.nodes, list(enumerate(topo.links)))
        for node_name, node in topo.nodes.items():
            for iface in node.interfaces:
                if (node_name, iface) not in ends:
                    self.err(
                        (*base, "nodes", node_name, "interfaces", iface),
                        f"interface '{iface}' of node '{node_name}' is on no link; add a link with endpoint {node_name}:{iface}",
                        key=True,
                    )
        if len(self.problems) > before:
            return None
        return self._address(topo, link_ends, link_names)

    def _unknown_profile(self, name: str) -> str:
        return (
            f"unknown link profile '{name}'{suggest(name, self.profiles)} (known: {', '.join(sorted(self.profiles))})"
        )

    def _address(
        self,
        topo: model.Topology,
        link_ends: list[tuple[tuple[str, str], tuple[str, str]] | None],
        link_names: dict[str, int],
    ) -> Topology | None:
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
        subnets6 = addrspace.free_subnets(pool6, 64, [n for n, _ in used6]) if pool6 else None
        auto_lo = addrspace.free_hosts(pool_lo, taken4)
        built: dict[tuple[str, str], Interface] = {}
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
            link_profile = topo.links[i].profile
            links.append(
                Link(
                    names_by_index[i],
                    sides[0],
                    sides[1],
                    link_profile,
                    topo.links[i].engine,
                    self.profiles.get(link_profile) if link_profile is not None else None,
                )
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

        # Each node's interfaces in link order, grouped once (not a scan of all links per node).
        by_owner: dict[str, list[Interface]] = {}
        for (owner, _), end in built.items():
            by_owner.setdefault(owner, []).append(end)
        nodes = []
        for name, node in topo.nodes.items():
            interfaces = tuple(by_owner.get(name, ()))
            routes = self._routes(name, node, interfaces, loopbacks, built, topo)
            sysctls = self._sysctls(name, node)
            services = self._services(name, node)
            container = self._container(name, node)
            nodes.append(Node(name, node.kind, loopbacks[name], interfaces, routes, sysctls, services, container))
        if self.problems:
            return None
        return Topology(tuple(nodes), tuple(links))

    def _routes(
        self,
        name: str,
        node: model.Node,
        interfaces: tuple[Interface, ...],
        loopbacks: dict[str, IPv4Interface | None],
        built: dict[tuple[str, str], Interface],
        topo: model.Topology,
    ) -> tuple[Route, ...]:
        routes: list[Route] = []
        seen: dict[tuple[IPNetwork, int], KeyPath] = {}
        own = {iface.name: iface for iface in interfaces}
        for r, route in enumerate(node.routes):
            rpath: KeyPath = ("topology", "nodes", name, "routes", r)
            via = self._next_hop(route, rpath, built, topo)
            family = via.version if via is not None else 4
            dest = self._destination(route.to, family, (*rpath, "to"), loopbacks, built, topo)
            if dest is None:
                continue
            if via is not None and via.version != dest.version:
                self.err(
                    (*rpath, "via"), f"next hop {via} is IPv{via.version} but destination {dest} is IPv{dest.version}"
                )
                continue
            if route.dev is not None and route.dev not in own and route.dev != "lo":
                self.err((*rpath, "dev"), f"node '{name}' has no interface '{route.dev}'{suggest(route.dev, own)}")
                continue
            if via is None and route.dev is None:
                self.err(rpath, "a route needs `via` (next hop) or `dev` (outgoing interface)")
                continue
            if via is not None:
                nets = [i.ipv4.network for i in interfaces if i.ipv4] + [i.ipv6.network for i in interfaces if i.ipv6]
                if not any(via in net for net in nets):
                    self.err(
                        (*rpath, "via"),
                        f"next hop {via} is on no subnet of node '{name}'; use an address of a directly connected neighbour",
                    )
                    continue
            key = (dest, route.metric)
            if key in seen:
                self.err(
                    rpath,
                    f"route to {dest} with metric {route.metric} is already given at {self.line_of(seen[key])}; remove one, or give it another metric (a higher metric makes a backup route)",
                )
                continue
            seen[key] = rpath
            lo = loopbacks.get(name)
            source = lo.ip if lo is not None and dest.version == 4 else None
            routes.append(Route(dest, via, route.dev, route.metric, source))
        return tuple(routes)

    def _endpoint(
        self, text: str, path: KeyPath, built: dict[tuple[str, str], Interface], topo: model.Topology
    ) -> Interface | None:
        node, _, iface = text.partition(":")
        if node not in topo.nodes:
            self.err(path, f"unknown node '{node}'{suggest(node, topo.nodes)}")
            return None
        found = built.get((node, iface))
        if found is None:
            names = [i for (n, i) in built if n == node]
            self.err(path, f"node '{node}' has no interface '{iface}'{suggest(iface, names)}")
        return found

    def _next_hop(
        self, route: model.Route, rpath: KeyPath, built: dict[tuple[str, str], Interface], topo: model.Topology
    ) -> IPAddress | None:
        if route.via is None:
            return None
        # One colon: an endpoint, never an address (IPv6 has two or more); a failed parse of
        # every endpoint was a good share of resolving a large testbed.
        if route.via.count(":") != 1:
            try:
                return ipaddress.ip_address(route.via)
            except ValueError:
                pass
        if ":" in route.via and not route.via.count(":") > 1:
            iface = self._endpoint(route.via, (*rpath, "via"), built, topo)
            if iface is None:
                return None
            to_v6 = ":" in route.to and route.to.count(":") > 1
            addr = (iface.ipv6 if to_v6 else iface.ipv4) or iface.ipv4 or iface.ipv6
            return addr.ip if addr else None
        self.err((*rpath, "via"), f"'{route.via}' is neither an address nor an endpoint node:interface")
        return None

    def _destination(
        self,
        text: str,
        family: int,
        path: KeyPath,
        loopbacks: dict[str, IPv4Interface | None],
        built: dict[tuple[str, str], Interface],
        topo: model.Topology,
    ) -> IPNetwork | None:
        if text == "default":
            return IPv4Network("0.0.0.0/0") if family == 4 else IPv6Network("::/0")
        if text in topo.nodes:
            lo = loopbacks.get(text)
            if lo is None:
                self.err(path, f"node '{text}' has no loopback (loopback: none); route to a prefix instead")
            return lo.network if lo else None
        if "/" in text:
            try:
                return ipaddress.ip_network(text)
            except ValueError:
                try:
                    fixed = ipaddress.ip_interface(text).network
                    self.err(path, f"{text} has host bits set; did you mean {fixed}?")
                except ValueError:
                    self.err(path, f"'{text}' is not a prefix")
                return None
        if ":" in text and text.count(":") == 1:
            iface = self._endpoint(text, path, built, topo)
            if iface is None:
                return None
            addr = (iface.ipv6 if family == 6 else iface.ipv4) or iface.ipv4
            return addr.network if addr else None
        self.err(
            path,
            f"unknown destination '{text}' (use a prefix, `default`, a node or node:interface){suggest(text, topo.nodes)}",
        )
        return None

    def _sysctls(self, name: str, node: model.Node) -> tuple[tuple[str, str], ...]:
        out = []
        for key, value in node.sysctls.items():
            if not key.startswith("net.") or not all(part for part in key.split(".")):
                self.err(
                    ("topology", "nodes", name, "sysctls", key),
                    f"'{key}' is not a per-namespace sysctl; only net.* keys can be set in a node (others would change the host)",
                    key=True,
                )
                continue
            out.append((key, str(value)))
        return tuple(out)

    def _container(self, name: str, node: model.Node) -> Container | None:
        """The container settings of a `kind: container` node; container keys on any other node
        are refused (they would be silently ignored)."""
        npath: KeyPath = ("topology", "nodes", name)
        given = node.model_fields_set & _CONTAINER_KEYS
        if node.kind != "container":
            for key in sorted(given):
                self.err((*npath, key), f"`{key}` applies to container nodes only; add `kind: container`", key=True)
            return None
        if node.image is None and node.attach is None:
            self.err(
                (*npath, "kind"), "a container node needs an `image` (or `attach: CONTAINER` to use a running one)"
            )
            return None
        volumes = []
        for v, volume in enumerate(node.volumes):
            host, sep, inside = volume.partition(":")
            if not sep or not host or not inside.startswith("/"):
                self.err(
                    (*npath, "volumes", v), f"'{volume}' is not `host:container[:ro]` with an absolute container path"
                )
                continue
            # Relative to the file that names it, as a `topology: FILE` path is: an imported
            # topology file keeps working wherever the scenario that includes it lives.
            mark = self.located.mark((*npath, "volumes", v))
            base = Path(mark.file).parent if mark is not None else Path.cwd()
            host_path = Path(os.path.normpath(base / host)).resolve()
            if not host_path.exists():
                self.err((*npath, "volumes", v), f"host path {host_path} does not exist")
                continue
            volumes.append(f"{host_path}:{inside}")
        ready = None
        if node.ready is not None:
            r = node.ready
            if (r.tcp is None) == (r.command is None):
                self.err((*npath, "ready"), "give exactly one readiness check: `tcp: PORT` or `command: ...`")
            ready = Readiness(r.tcp, r.command, r.timeout)
        command: tuple[str, ...] | None
        if isinstance(node.command, str):
            command = ("/bin/sh", "-c", node.command)
        else:
            command = tuple(node.command) if node.command is not None else None
        return Container(
            image=node.image or "",
            command=command,
            environment=tuple(sorted(node.environment.items())),
            volumes=tuple(volumes),
            capabilities=tuple(node.capabilities),
            privileged=node.privileged,
            exec=tuple(node.exec),
            attach=node.attach,
            ready=ready,
        )

    def _services(self, name: str, node: model.Node) -> tuple[Service, ...]:
        out: list[Service] = []
        seen: set[str] = set()
        for s, service in enumerate(node.services):
            spath: KeyPath = ("topology", "nodes", name, "services", s)
            if service.name in seen:
                self.err(
                    (*spath, "name"),
                    f"service name '{service.name}' is used twice in node '{name}'; give each service its own name",
                )
            seen.add(service.name)
            ready = None
            if service.ready is not None:
                r = service.ready
                if (r.tcp is None) == (r.command is None):
                    self.err((*spath, "ready"), "give exactly one readiness check: `tcp: PORT` or `command: ...`")
                ready = Readiness(r.tcp, r.command, r.timeout)
            out.append(Service(service.name, service.command, tuple(sorted(service.env.items())), ready))
        return tuple(out)

    # ------------------------------------------------------------------ drill parts

    def drill(self, parts: Parts, topology: Topology | None) -> float:
        """Check the references of probes, timeline and objectives; return the drill's end time."""
        nodes = {n.name: n for n in topology.nodes} if topology else {}
        links = _link_index(topology) if topology else {}
        probe_names: set[str] = set()
        for i, probe in parts.probes:
            ppath: KeyPath = ("probes", i)
            if probe.name in probe_names:
                self.err((*ppath, "name"), f"probe name '{probe.name}' is used twice; give each probe its own name")
            probe_names.add(probe.name)
            if topology is None:
                continue
            if probe.source not in nodes:
                self.err((*ppath, "from"), f"unknown node '{probe.source}'{suggest(probe.source, nodes)}")
            target = getattr(probe, "to", None)
            if target is not None:
                self._target(target, (*ppath, "to"), nodes, links)

        step_ids: dict[str, float] = {}
        restores: dict[str, list[float]] = {}
        claimed: list[tuple[int, Any, dict[overlap.Aspect, bool]]] = []
        end_s = 0.0
        for i, step in parts.steps:
            spath: KeyPath = ("timeline", i)
            if isinstance(step, model.RestoreStep):
                if step.restore not in step_ids:
                    if step.restore not in parts.invalid_steps:  # else its problems are reported
                        self.err(
                            (*spath, "restore"),
                            f"no earlier step has id '{step.restore}'{suggest(step.restore, step_ids)}",
                        )
                elif step_ids[step.restore] > step.at:
                    self.err(
                        (*spath, "at"),
                        f"restores '{step.restore}' before that step happens (at {step_ids[step.restore]:g} s); restore it later",
                    )
                else:
                    restores.setdefault(step.restore, []).append(step.at)
                end_s = max(end_s, step.at)
                continue
            if step.id is not None:
                if step.id in step_ids:
                    self.err((*spath, "id"), f"step id '{step.id}' is used twice; give each step its own id")
                step_ids.setdefault(step.id, step.at)
            end_s = max(end_s, step_end_s(step))
            if topology is None:
                continue
            link_ref = getattr(step, "link", None)
            link = None
            if link_ref is not None:
                link = links.get(link_ref)
                if link is None:
                    self.err(
                        (*spath, "link"),
                        f"unknown link '{link_ref}' (name a link or one of its endpoints node:interface){suggest(link_ref, links)}",
                    )
            end = getattr(step, "end", None)
            if end is not None and link is not None and end not in (link.a.endpoint, link.b.endpoint):
                self.err(
                    (*spath, "end"),
                    f"'{end}' is not an end of link {link.name} ({link.a.endpoint} or {link.b.endpoint})",
                )
            node_ref = getattr(step, "node", None)
            if node_ref is not None and node_ref not in nodes:
                self.err((*spath, "node"), f"unknown node '{node_ref}'{suggest(node_ref, nodes)}")
            service = getattr(step, "service", None)
            if service is not None and node_ref in nodes:
                names = [s.name for s in nodes[node_ref].services]
                if service not in names:
                    self.err(
                        (*spath, "service"), f"node '{node_ref}' has no service '{service}'{suggest(service, names)}"
                    )
            profile = getattr(step, "profile", None)
            if profile is not None and profile not in self.profiles and profile not in self.invalid_profiles:
                self.err((*spath, "profile"), self._unknown_profile(profile))
            if isinstance(step, model.Partition):
                seen: dict[str, int] = {}
                for g, group in enumerate(step.groups):
                    for n, member in enumerate(group):
                        mpath = (*spath, "groups", g, n)
                        if member not in nodes:
                            self.err(mpath, f"unknown node '{member}'{suggest(member, nodes)}")
                        elif member in seen:
                            self.err(
                                mpath,
                                f"node '{member}' is in group {seen[member] + 1} already; groups of a partition do not overlap",
                            )
                        seen.setdefault(member, g)
            if step.fault not in overlap.ONE_SHOT_FAULTS:
                claimed.append((i, step, overlap.claims(step, nodes, links, topology)))
        self._overlaps(claimed, restores)

        for i, objective in parts.objectives:
            opath: KeyPath = ("expect", i)
            if objective.probe is not None and objective.probe not in probe_names | parts.invalid_probes:
                self.err((*opath, "probe"), f"unknown probe '{objective.probe}'{suggest(objective.probe, probe_names)}")
            if objective.step is not None and objective.step not in step_ids.keys() | parts.invalid_steps:
                self.err(
                    (*opath, "step"), f"no timeline step has id '{objective.step}'{suggest(objective.step, step_ids)}"
                )
            bounds = (
                objective.max_outage,
                objective.max_recovery,
                objective.max_loss,
                objective.latency,
                objective.availability,
            )
            if objective.template is None and all(b is None for b in bounds):
                self.err(
                    opath,
                    "an objective needs a `template` or a bound (max_outage, max_recovery, max_loss, latency, availability)",
                )
        return end_s

    def _overlaps(
        self, claimed: list[tuple[int, Any, dict[overlap.Aspect, bool]]], restores: dict[str, list[float]]
    ) -> None:
        """Refuse a fault whose repetitions overlap each other (a revert would end the next one
        early), and two faults that claim one aspect at overlapping times (see `overlap.claims` for
        what composes). One problem per pair of steps, located at the one that starts later."""
        spans = self._spans(claimed, restores)
        # Only pairs that claim one thing at about the same time are compared (in the order a
        # comparison of every pair would report them).
        candidates = overlap.candidate_pairs([c for _, _, c in claimed], [spans[i] for i, _, _ in claimed])
        for x, y in candidates:
            self._conflict(claimed[x], claimed[y], spans)

    def _spans(
        self, claimed: list[tuple[int, Any, dict[overlap.Aspect, bool]]], restores: dict[str, list[float]]
    ) -> dict[int, list[tuple[float, float]]]:
        """When each step is in effect, by timeline index; a step overlapping itself is refused."""
        spans: dict[int, list[tuple[float, float]]] = {}
        for i, step, _ in claimed:
            occurrences = overlap.occurrences(step, restores.get(step.id, []) if step.id else [])
            if any(a[1] > b[0] for a, b in itertools.pairwise(occurrences)) or overlap.flap_runs_over(step):
                self._self_overlap(i, step)
            spans[i] = overlap.union(occurrences)
        return spans

    def _conflict(
        self,
        earlier: tuple[int, Any, dict[overlap.Aspect, bool]],
        later_in_file: tuple[int, Any, dict[overlap.Aspect, bool]],
        spans: dict[int, list[tuple[float, float]]],
    ) -> None:
        """The problem of two steps (in file order) that claim one aspect at one moment, if they do."""
        (i, step_i, claims_i), (j, step_j, claims_j) = earlier, later_in_file
        shared = [a for a in claims_j if a in claims_i and (claims_i[a] or claims_j[a])]
        hit = overlap.first_overlap(spans[i], spans[j]) if shared else None
        if hit is None:
            return
        # The one that starts later (in file order at the same instant) gets the problem.
        first, later = sorted([(hit[0], i, step_i), (hit[1], j, step_j)], key=lambda t: (t[0][0], t[1]))
        (from_s, to_s), first_index, first_step = first
        until = "the end of the drill" if math.isinf(to_s) else overlap.clock_text(to_s)
        self.err(
            ("timeline", later[1]),
            f"{overlap.step_name(later[2])} at {overlap.clock_text(later[0][0])} overlaps {overlap.step_name(first_step)} on "
            f"{overlap.aspect_text(shared[0])} ({self.line_of(('timeline', first_index))}) from {overlap.clock_text(from_s)} "
            f"to {until}; {overlap.CONFLICT_REASON[shared[0][0]]}: move one, or {overlap.shorten_hint(first_step, to_s)}",
        )

    def _self_overlap(self, i: int, step: Any) -> None:
        if isinstance(step, model.LinkFlap):
            down_s = step.period * step.duty / 100.0
            self.err(
                ("timeline", i, "jitter"),
                f"down periods of {down_s:g} s, each up to {step.jitter:g} s late, can run into the next one (every {step.period:g} s); keep `jitter` at most {step.period - down_s:g} s",
            )
        elif step.duration is None:
            self.err(
                ("timeline", i, "repeat"),
                "each repetition lasts until the end of the drill, so they overlap; give the step a `for:` shorter than `repeat.every`",
            )
        else:
            self.err(
                ("timeline", i, "repeat"),
                f"each repetition lasts {step.duration:g} s but one starts every {step.repeat.every:g} s, so they overlap; make `repeat.every` longer than `for`",
            )

    def _target(self, text: str, path: KeyPath, nodes: dict[str, Node], links: dict[str, Link]) -> None:
        if text in nodes:
            if nodes[text].primary_address is None:
                self.err(path, f"node '{text}' has no address to aim at; give it a loopback or name an endpoint")
            return
        if text in links and ":" in text:
            return
        try:
            ipaddress.ip_address(text)
            return
        except ValueError:
            pass
        self.err(
            path,
            f"unknown target '{text}' (name a node, an endpoint node:interface or an address){suggest(text, list(nodes) + list(links))}",
        )


def _other_host(given: IPv4Interface | IPv6Interface) -> Any:
    """The neighbour's address when only one end of a link was given."""
    for host in given.network.hosts() if given.network.num_addresses > 2 else given.network:
        if host != given.ip:
            return ipaddress.ip_interface(f"{host}/{given.network.prefixlen}")
    return None


def _link_index(topology: Topology) -> dict[str, Link]:
    """Links by name and by each endpoint, the two ways a step can name a link."""
    index: dict[str, Link] = {}
    for link in topology.links:
        index[link.name] = link
        index[link.a.endpoint] = link
        index[link.b.endpoint] = link
    return index


def resolve(
    path: Path,
    located: Located,
    whole: model.ScenarioFile | None,
    parts: Parts,
    profiles: dict[str, model.Profile],
) -> tuple[Scenario | None, list[Problem]]:
    """Resolve every reference; a Scenario only when nothing is wrong."""
    resolver = _Resolver(located, profiles, parts.invalid_profiles)
    too_large = check_sizes(located, parts)
    if too_large is not None:  # checking further could take long: stop here
        return None, too_large
    topology = resolver.topology(parts.topology) if parts.topology is not None else None
    if parts.topology is None and parts.node_names is not None:
        resolver.links(parts.node_names, parts.links)
    end_s = resolver.drill(parts, topology)
    if whole is None or topology is None or resolver.problems:
        return None, resolver.problems
    duration_s = whole.duration if whole.duration is not None else end_s + DEFAULT_TAIL_S
    if whole.duration is not None and end_s > whole.duration:
        resolver.err(
            ("duration",),
            f"the timeline runs until {end_s:g} s, past the drill's duration of {whole.duration:g} s; lengthen `duration`",
        )
        return None, resolver.problems
    topology = _mark_degraded_links(topology, whole, profiles)
    scenario = Scenario(path, whole.name, whole.description, whole.seed, topology, profiles, whole, duration_s, located)
    problems = check_resolved(scenario)
    if problems:
        return None, problems
    return replace(scenario, steps=resolve_steps(whole.timeline, topology, profiles)), []


def _mark_degraded_links(topology: Topology, whole: model.ScenarioFile, profiles: dict[str, model.Profile]) -> Topology:
    """Mark the links a degrade step impairs with netem parameters: `auto` engine selection needs it."""
    # Each link looks only at the degrade steps naming it, not at the whole timeline.
    by_ref: dict[str, list[Any]] = {}
    for step in whole.timeline:
        if isinstance(step, model.Degrade):
            by_ref.setdefault(step.link, []).append(step)

    def naming(refs: set[str]) -> list[Any]:
        return [step for ref in refs for step in by_ref.get(ref, ())]

    links = tuple(
        replace(link, degraded_netem=True)
        if degraded_with_netem(naming(refs := {link.name, link.a.endpoint, link.b.endpoint}), profiles, refs)
        else link
        for link in topology.links
    )
    return replace(topology, links=links)

"""The testbed's own references: links (endpoints, names, profiles), and each node's routes,
sysctls, services and container settings, checked and built once addresses are assigned."""

from __future__ import annotations

import ipaddress
import os
from ipaddress import IPv4Interface, IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from drills.scenario import daemons, model, values
from drills.scenario.diagnostics import suggest
from drills.scenario.reporter import Reporter
from drills.scenario.resolved import Container, Interface, IPAddress, IPNetwork, Node, Readiness, Route, Service
from drills.scenario.yamlpos import KeyPath

_CONTAINER_KEYS = frozenset(
    {"image", "command", "environment", "volumes", "capabilities", "privileged", "exec", "attach", "ready"}
)


class TopologyResolver(Reporter):
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
                self.err((*lpath, "profile"), self.unknown_profile(link.profile))
            link_ends.append((pair[0], pair[1]) if len(pair) == 2 else None)
        return ends, link_names, link_ends

    def nodes(
        self,
        topo: model.Topology,
        loopbacks: dict[str, IPv4Interface | None],
        built: dict[tuple[str, str], Interface],
    ) -> tuple[Node, ...]:
        """Every node with its interfaces (in link order), routes, sysctls, services, container."""
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
            nodes.append(
                Node(name, node.kind, loopbacks[name], interfaces, routes, sysctls, services, container, node.host)
            )
        return tuple(nodes)

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
        ready = self._readiness(node.ready, (*npath, "ready"))
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
            ready = self._readiness(service.ready, (*spath, "ready"))
            out.append(Service(service.name, service.command, tuple(sorted(service.env.items())), ready))
        dpath: KeyPath = ("topology", "nodes", name, "daemons")
        if node.daemons is not None and node.kind != "netns":
            self.err(dpath, "`daemons` run in namespace nodes only; remove `kind: container`, or start them in the image", key=True)
            return tuple(out)
        for daemon in daemons.services(self, name, node.daemons, dpath):
            if daemon.name in seen:
                self.err(dpath, f"node '{name}' has a service named '{daemon.name}', as one of its daemons; rename the service", key=True)
            seen.add(daemon.name)
            out.append(daemon)
        return tuple(out)

    def _readiness(self, ready: model.Readiness | None, path: KeyPath) -> Readiness | None:
        """A readiness check (a container's or a service's): exactly one of a port or a command."""
        if ready is None:
            return None
        if (ready.tcp is None) == (ready.command is None):
            self.err(path, "give exactly one readiness check: `tcp: PORT` or `command: ...`")
        return Readiness(ready.tcp, ready.command, ready.timeout)

"""One host's part of a topology spread over several hosts, on the namespace backend.

A host deploys its nodes (with every interface of theirs), the links with both ends here (veth
pairs, or relays, as on one machine), and its ends of the cross-host links (drills.netns.wire:
a veth whose hidden end is bridged to a VXLAN tunnel). The cross ends are made where the deploy
pipeline lets another substrate join (`Joins.provide`), after the nodes' namespaces and before
their configuration, so a cross interface gets its addresses, MTU, state and routes exactly as
any other interface does. A cross link is served by the kernel engine at both ends: each host
impairs its own sending end with qdiscs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from drills.backend import NETEM, CrossEnd, HostPart, Impairment, LinkState
from drills.clock import Clock
from drills.engines import KERNEL, USERSPACE, needs_netem
from drills.errors import BackendError, BadInput, EnvironmentProblem
from drills.impairment import profile_directions
from drills.netns import kernel, qdisc, tc, wire
from drills.netns.backend import Joins, Namespaces, NetnsBackend, namespace_name
from drills.netns.handles import Handles
from drills.netns.ops import NetnsOps
from drills.runs import Run
from drills.scenario.resolved import Interface, Link, Node, Topology

Log = Callable[[str], None]


def restrict(topology: Topology, part: HostPart) -> Topology:
    """The part's nodes, in the topology's order, with all their interfaces (a cross interface
    with its MTU lowered to the tunnel's, unless the scenario asked for less), and only the links
    with both ends here. BadInput listing every way `part` does not fit `topology`."""
    _check_part(topology, part)
    here = set(part.nodes)
    mtus = {(end.node, end.ifname): end.mtu for end in part.cross}
    nodes = tuple(_lower_mtus(node, mtus) for node in topology.nodes if node.name in here)
    links = tuple(link for link in topology.links if {link.a.node, link.b.node} <= here)
    return Topology(nodes=nodes, links=links)


def _lower_mtus(node: Node, mtus: dict[tuple[str, str], int]) -> Node:
    interfaces = tuple(
        replace(iface, mtu=min(iface.mtu or mtus[key], mtus[key])) if (key := (node.name, iface.name)) in mtus else iface
        for iface in node.interfaces
    )
    return replace(node, interfaces=interfaces)


def _check_part(topology: Topology, part: HostPart) -> None:
    problems = []
    names = {node.name for node in topology.nodes}
    problems += [f"node {node} is not in the topology" for node in part.nodes if node not in names]
    here = set(part.nodes)
    links = {link.name: link for link in topology.links}
    crossing = {end.link: end for end in part.cross}
    for end in part.cross:
        link = links.get(end.link)
        ends = {(e.node, e.name) for e in (link.a, link.b)} if link is not None else set()
        if (end.node, end.ifname) not in ends:
            problems.append(f"cross end {end.node}:{end.ifname} is not an end of a link {end.link} of the topology")
        elif end.node not in here:
            problems.append(f"cross end {end.node}:{end.ifname}: node {end.node} is not on this host")
        elif link is not None and {link.a.node, link.b.node} <= here:
            problems.append(f"link {end.link} has both ends on this host: it is not a cross link")
        elif link is not None and link.engine == USERSPACE:
            problems.append(
                f"link {end.link} crosses hosts and asks for the userspace engine: only the kernel serves a "
                "cross-host link (VXLAN); remove `engine: userspace` or place both its nodes on one host"
            )
    for link in topology.links:
        if len({link.a.node, link.b.node} & here) == 1 and link.a.node != link.b.node and link.name not in crossing:
            problems.append(f"link {link.name} has one end on this host and no cross end for it")
    if problems:
        raise BadInput(f"host {part.host}: the part does not fit the topology:\n" + "\n".join(problems))


def deploy_part(
    backend: NetnsBackend,
    topology: Topology,
    part: HostPart,
    run: Run,
    underlay_ns: str | None = None,
    log: Log | None = None,
) -> None:
    """Deploy `part` of `topology` on this host (`restrict`, then the namespace backend's pipeline
    joined by the cross ends); a cross link's profile goes on its sending end here. On error,
    raise: the caller tears down from the journal (`backend.teardown(run)`), as for a deploy."""
    local = restrict(topology, part)
    _require_netem(backend, topology, part)
    wire.check_underlay(part.cross, underlay_ns)  # before any namespace: a refusal leaves nothing

    def provide(namespaces: Namespaces) -> None:
        wire.create(run, part.host, namespaces, part.cross, underlay_ns, log)
        _install_cross_profiles(topology, part, namespaces)

    backend.deploy_with(local, run, Joins(provide=provide))
    _confirm_cross_interfaces(local, part, run, log or (lambda _msg: None))


def _require_netem(backend: NetnsBackend, topology: Topology, part: HostPart) -> None:
    """Refuse, before anything is made, a cross link that needs netem on a host without it: the
    userspace engine, which serves such a link on one machine, cannot serve a tunnel."""
    links = {link.name: link for link in topology.links}
    wanting = [end.link for end in part.cross if needs_netem(links[end.link])]
    if wanting and not backend.capabilities().get(NETEM, False):
        raise EnvironmentProblem(
            f"host {part.host}: cross-host links {', '.join(wanting)} need netem (delay, loss, jitter...), "
            "which this host's kernel lacks, and only the kernel engine serves a cross-host link (VXLAN): "
            "install a kernel with CONFIG_NET_SCH_NETEM on this host, or place each such link's nodes on "
            "one host (where the userspace engine can serve it)"
        )


def _confirm_cross_interfaces(local: Topology, part: HostPart, run: Run, log: Log) -> None:
    """Each node's cross interface reads back up, with carrier (its hidden end is up) and the
    MTU it was given, stated when the scenario asked for less than the tunnel carries."""
    ends = {(end.node, end.ifname): end for end in part.cross}
    by_namespace = {namespace_name(run.run_id, end.node): end.node for end in part.cross}

    def confirm(namespace: str, ipr: Any) -> None:
        node = local.node(by_namespace[namespace])
        for (name, ifname), end in ends.items():
            if name != node.name:
                continue
            state, mtu = kernel.link_state(ipr, ifname), node.interface(ifname).mtu
            if not (state.admin_up and state.carrier and state.mtu == mtu):
                raise BackendError(
                    f"link {end.link}: {name}:{ifname} reads back {'up' if state.admin_up else 'down'}, "
                    f"{'with' if state.carrier else 'without'} carrier, MTU {state.mtu}; asked up, with carrier, MTU {mtu}"
                )
            if state.mtu < end.mtu:
                log(f"link {end.link}: {name}:{ifname} MTU {state.mtu}, as the scenario asks (the tunnel carries {end.mtu})")

    kernel.in_each_namespace(list(by_namespace), confirm)


def _install_cross_profiles(topology: Topology, part: HostPart, namespaces: Namespaces) -> None:
    """A cross link's profile, for the directions whose sending end is here (the other host
    installs the other direction): qdiscs, read back, gone with the namespaces."""
    here = set(part.nodes)
    links = {link.name: link for link in topology.links}
    directions = [d for end in part.cross for d in profile_directions(links[end.link]) if d.end.node in here]
    handles = Handles(dict(namespaces))
    try:
        for d in directions:
            if not d.settings.empty:
                control, index = tc.Tc(handles.raw(d.end.node)), handles.index(d.end.node, d.end.name)
                qdisc.install(control, index, d.end, d.settings)
                qdisc.confirm_installed(control, index, d.end, d.settings)
    finally:
        handles.close()


class PartOps(NetnsOps):
    """Node operations of one host's part: those of the namespace backend for its nodes (a
    cross interface is an interface like any other), the kernel engine for its cross links, and
    the hidden ends of its cross links (`set_far_end`: how a cut made on the other host takes
    this host's node's carrier away)."""

    def __init__(
        self,
        run: Run,
        topology: Topology,
        part: HostPart,
        backend: NetnsBackend,
        clock: Clock,
        log: Log,
    ) -> None:
        namespaces = {node: namespace_name(run.run_id, node) for node in part.nodes}
        engines = {**backend.engines, **{end.link: KERNEL for end in part.cross}}
        super().__init__(run, restrict(topology, part), namespaces, engines, clock, log, backend.start_service)
        self.cross: tuple[CrossEnd, ...] = part.cross
        self.wire = wire.Wire(run.run_id, part.host, part.cross)

    def warm(self) -> None:
        super().warm()
        handles = self.handles
        for end in self.cross:
            handles.index(end.node, end.ifname)
            handles.raw(end.node)
        self.wire.warm()

    def impair(self, changes: Sequence[Impairment]) -> None:
        """As the namespace backend's, for changes whose sending end is on this host; BackendError
        (before anything is changed) for one whose sending end is another host's."""
        for change in changes:
            end = _sending_end(change.link, change.direction)
            if end.node not in self.namespaces:
                raise BackendError(
                    f"link {change.link.name} {change.direction}: its sending end {end.endpoint} is on "
                    "another host: impair it there"
                )
        super().impair(changes)

    def set_far_end(self, link: str, up: bool) -> None:
        """`wire.Wire.set_far_end` for cross link `link`: this host's node loses (or regains)
        carrier on it, as when the fibre is cut at the other end."""
        self.wire.set_far_end(link, up)

    def far_end_state(self, link: str) -> LinkState:
        return self.wire.far_end_state(link)

    def close(self) -> None:
        super().close()
        self.wire.close()


def _sending_end(link: Link, direction: str) -> Interface:
    return link.a if direction == "a-to-b" else link.b


def part_ops(
    backend: NetnsBackend, topology: Topology, part: HostPart, run: Run, clock: Clock, log: Log | None = None
) -> PartOps:
    """The node operations of `part`, deployed by `deploy_part` with `backend`."""
    return PartOps(run, topology, part, backend, clock, log or (lambda _msg: None))

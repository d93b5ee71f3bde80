"""One host's part of a topology spread over several hosts, on the namespace backend.

A host deploys its nodes (with every interface of theirs), the links with both ends here (veth
pairs, or relays, as on one machine), and its ends of the cross-host links (drills.netns.wire:
a veth, or a TAP pair, whose hidden end is bridged to a VXLAN tunnel). The cross ends are made
where the deploy pipeline lets another substrate join (`Joins.provide`), after the nodes'
namespaces and before their configuration, so a cross interface gets its addresses, MTU, state
and routes exactly as any other interface does.

Each host impairs what its own node sends on a cross link (the other direction is the other
host's), with the engine it chooses for that link as one machine chooses (drills.engines): the
kernel's qdiscs on the node's veth end, or, for `engine: userspace` or a link needing netem on a
host without it, a relay between the node's TAP and the hidden end's TAP (`wire.TapPair`). The
relay passes the direction the node receives untouched: the far host impaired it already. So
the two hosts of a link may serve it with different engines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from drills.backend import NETEM, CapabilityLookup, CrossEnd, HostPart, Impairment, LinkState
from drills.clock import Clock
from drills.engines import KERNEL, USERSPACE, engines, needs_netem
from drills.errors import BackendError, BadInput, EnvironmentProblem
from drills.impairment import profile_directions
from drills.netns import kernel, qdisc, tc, wire
from drills.netns.backend import Joins, Namespaces, NetnsBackend, namespace_name
from drills.netns.handles import Handles
from drills.netns.ops import NetnsOps
from drills.netns.segments import segment_namespaces
from drills.runs import Run
from drills.scenario.resolved import Interface, Link, Node, Topology
from drills.userspace.profile import profile_impairments

Log = Callable[[str], None]


def restrict(topology: Topology, part: HostPart) -> Topology:
    """The part's nodes, in the topology's order, with all their interfaces (a cross interface
    with its MTU lowered to the tunnel's, unless the scenario asked for less), and only the links
    with both ends here, and the LAN segments whose members are all here. BadInput listing every
    way `part` does not fit `topology`."""
    _check_part(topology, part)
    here = set(part.nodes)
    mtus = {(end.node, end.ifname): end.mtu for end in part.cross}
    nodes = tuple(_lower_mtus(node, mtus) for node in topology.nodes if node.name in here)
    links = tuple(link for link in topology.links if {link.a.node, link.b.node} <= here)
    # Placement keeps a segment's members on one host (drills.hosts.placement refuses otherwise).
    segments = tuple(s for s in topology.segments if {m.node for m in s.members} <= here)
    return Topology(nodes=nodes, links=links, segments=segments)


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
    chosen = cross_engines(topology, part, backend.capabilities)
    _require_netem(backend, topology, part, chosen)
    wire.check_underlay(part.cross, underlay_ns)  # before any namespace: a refusal leaves nothing

    def provide(namespaces: Namespaces) -> None:
        def tap_pair(end: CrossEnd, wire_ns: str) -> None:
            _start_cross_relay(backend, run, topology.link(end.link), end, namespaces[end.node], wire_ns)

        relayed = {link: tap_pair for link, engine in chosen.items() if engine == USERSPACE}
        wire.create(run, part.host, namespaces, part.cross, underlay_ns, log, relayed)
        _install_cross_profiles(topology, part, namespaces, chosen)

    backend.deploy_with(local, run, Joins(provide=provide))
    backend.engines = {**backend.engines, **chosen}  # what the agent reports for this host
    _confirm_cross_interfaces(local, part, run, log or (lambda _msg: None))


def cross_engines(topology: Topology, part: HostPart, capabilities: CapabilityLookup) -> dict[str, str]:
    """Cross link -> the engine serving this host's end of it, chosen exactly as for a link on
    one machine (`drills.engines.engines`: `engine: userspace`, or `auto` on a link needing netem
    on a host without netem and with TUN/TAP, gives userspace; otherwise the kernel)."""
    return engines([topology.link(end.link) for end in part.cross], capabilities)


def _require_netem(backend: NetnsBackend, topology: Topology, part: HostPart, chosen: dict[str, str]) -> None:
    """Refuse, before anything is made, a cross link that the kernel engine serves here and that
    needs netem on a host without it (the userspace engine serves such a link when it may)."""
    wanting = [end.link for end in part.cross if chosen[end.link] == KERNEL and needs_netem(topology.link(end.link))]
    caps = backend.capabilities() if wanting else {}
    if wanting and not caps.get(NETEM, False):
        asked = [link for link in wanting if topology.link(link).engine == KERNEL]
        why = (
            f"{', '.join(asked)} {'asks' if len(asked) == 1 else 'ask'} for `engine: kernel` (remove it: the userspace engine serves it here)"
            if asked
            # `auto` chose the kernel, so TUN/TAP is missing (drills.engines.choose)
            else "the userspace engine, which would serve them, needs TUN/TAP (/dev/net/tun), which this host lacks too"
        )
        raise EnvironmentProblem(
            f"host {part.host}: cross-host links {', '.join(wanting)} need netem (delay, loss, jitter...), "
            f"which this host's kernel lacks; {why}; or install a kernel with CONFIG_NET_SCH_NETEM on this host"
        )


def _start_cross_relay(backend: NetnsBackend, run: Run, link: Link, end: CrossEnd, node_ns: str, wire_ns: str) -> None:
    """This host's end of cross link `link` as a TAP pair and its relay: the node's TAP on the
    relay's side that is the node's side of the link (a or b), the hidden end on the other, so
    the link's directions are the relay's. The relay starts with the profile of the direction the
    node sends only: the other direction arrives impaired by the other host's engine."""
    node_side, hidden = (node_ns, end.ifname), (wire_ns, wire.hidden_ifname(end.vni))
    at_a = (link.a.node, link.a.name) == (end.node, end.ifname)
    sending = "a-to-b" if at_a else "b-to-a"
    initial = {d: params for d, params in profile_impairments(link).items() if d == sending}
    backend.start_relay(run, link, (node_side, hidden) if at_a else (hidden, node_side), initial)


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


def _install_cross_profiles(topology: Topology, part: HostPart, namespaces: Namespaces, chosen: dict[str, str]) -> None:
    """A kernel-served cross link's profile, for the directions whose sending end is here (the
    other host installs the other direction; a relay started with its own): qdiscs, read back,
    gone with the namespaces."""
    here = set(part.nodes)
    links = {link.name: link for link in topology.links}
    directions = [
        d
        for end in part.cross
        if chosen[end.link] == KERNEL
        for d in profile_directions(links[end.link])
        if d.end.node in here
    ]
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
    cross interface is an interface like any other), the engine chosen here for each cross link
    (`cross_engines`: qdiscs on the node's end, or its relay), and the hidden ends of its cross
    links (`set_far_end`: how a cut made on the other host takes this host's node's carrier
    away)."""

    def __init__(
        self,
        run: Run,
        topology: Topology,
        part: HostPart,
        backend: NetnsBackend,
        clock: Clock,
        log: Log,
    ) -> None:
        here = restrict(topology, part)
        namespaces = {node: namespace_name(run.run_id, node) for node in part.nodes}
        namespaces |= segment_namespaces(run.run_id, here)  # a member port's degrade
        # deploy_part recorded the engine chosen for each cross link beside the local links'.
        super().__init__(run, here, namespaces, dict(backend.engines), clock, log, backend.start_service)
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
        """As the namespace backend's, for changes whose sending end is on this host (a relay's
        direction is the link's: the change goes to it as it is); BackendError (before anything
        is changed) for one whose sending end is another host's."""
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

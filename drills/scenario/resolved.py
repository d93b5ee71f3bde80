"""The resolved scenario: every reference checked, every address assigned, nothing optional left.

This is what backends and the engine consume. It is immutable; what a run observes is recorded
elsewhere, never written back here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network, ip_address
from pathlib import Path
from typing import TYPE_CHECKING

from drills.errors import Problem
from drills.scenario.exercise import PLANNED, Cue, Exercise
from drills.scenario.yamlpos import Located, path_text

if TYPE_CHECKING:
    from drills.scenario import model
    from drills.scenario.expect import KnownAnswer, Objective
    from drills.scenario.probes import Spec
    from drills.scenario.steps import Step

IPNetwork = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Interface:
    """One end of a link, inside its node."""

    node: str
    name: str
    ipv4: IPv4Interface | None
    ipv6: IPv6Interface | None
    mtu: int | None

    @property
    def endpoint(self) -> str:
        return f"{self.node}:{self.name}"


@dataclass(frozen=True)
class Link:
    """A point-to-point link; `a` and `b` are its endpoints in file order."""

    name: str
    a: Interface
    b: Interface
    profile: str | None
    engine: str = "auto"  # as asked: kernel | userspace | auto (drills.userspace.select chooses)
    profile_spec: model.Profile | None = field(default=None, compare=False)  # `profile`, looked up
    degraded_netem: bool = False  # a degrade step on this link needs netem parameters


SEGMENT_NODE_PREFIX = "_seg."  # node names never begin with "_": no node can have these names


def segment_node(segment: str) -> str:
    """The name under which backends reach a segment's bridge side (its namespace is named as a
    node's would be: `drill-RUN-_seg.NAME`)."""
    return f"{SEGMENT_NODE_PREFIX}{segment}"


def port_ifname(position: int) -> str:
    """The bridge port of the member at `position` (0-based, member order)."""
    return f"p{position}"


def is_segment_port(link: Link) -> bool:
    """Whether `link` is a LAN segment member's port (`Segment.port`), not a link of the file."""
    return link.b.node.startswith(SEGMENT_NODE_PREFIX)


@dataclass(frozen=True)
class Segment:
    """A LAN segment: one broadcast domain (a bridge) joining `members`, in file order, each
    addressed from the segment's subnet. A member's port goes down alone, or the whole segment."""

    name: str
    members: tuple[Interface, ...]
    mtu: int | None = None

    def member(self, endpoint: str) -> Interface:
        for iface in self.members:
            if iface.endpoint == endpoint:
                return iface
        raise KeyError(endpoint)

    def port(self, endpoint: str) -> Link:
        """A member's port as a point-to-point link, for a `degrade` of it: `a` is the member's
        interface, `b` the bridge port facing it (in the segment's namespace), so "a-to-b" is
        member -> segment (the member's egress) and "b-to-a" is segment -> member (the port's
        egress). Served by the kernel (qdiscs on either end)."""
        position = next(i for i, iface in enumerate(self.members) if iface.endpoint == endpoint)
        member = self.members[position]
        bridge_side = Interface(segment_node(self.name), port_ifname(position), None, None, member.mtu)
        return Link(f"{self.name}/{endpoint}", member, bridge_side, None, "kernel")


@dataclass(frozen=True)
class Route:
    """A static route; `gateway` None means a directly connected route through `device`.
    `source` is the preferred source address (the node's loopback), so that replies come back
    to an address the far end has a route to."""

    destination: IPNetwork
    gateway: IPAddress | None
    device: str | None
    metric: int
    source: IPAddress | None = None


@dataclass(frozen=True)
class Readiness:
    tcp_port: int | None
    command: str | None
    timeout_s: float


@dataclass(frozen=True)
class PrivateDir:
    """A directory of a service's own, `<run dir>/nodes/<node>/<name>`, made before the service
    starts (again at each restart), `files` written in it; the command and the readiness check
    find its path in $DRILLS_DIR. Daemons keep their config, pid files and sockets there, so
    no two instances, runs or the host share a path (drills.scenario.daemons)."""

    name: str
    files: tuple[tuple[str, str], ...]  # (file name, text)


@dataclass(frozen=True)
class Service:
    name: str
    command: str
    env: tuple[tuple[str, str], ...]
    ready: Readiness | None
    private: PrivateDir | None = None
    # Waited once every node's services started, at deploy only (a routing daemon's adjacencies
    # need its neighbours running): the drill's clock starts on a converged network.
    settled: Readiness | None = None


@dataclass(frozen=True)
class Container:
    """How a `kind: container` node is run. With `attach`, the container exists already (a lab
    another tool deployed): it is used, never created, configured or removed."""

    image: str
    command: tuple[str, ...] | None
    environment: tuple[tuple[str, str], ...]
    volumes: tuple[str, ...]  # "host:container[:ro]", host paths absolute
    capabilities: tuple[str, ...]
    privileged: bool
    exec: tuple[str, ...]
    attach: str | None = None
    ready: Readiness | None = None  # deploy waits for it (after the exec lines)


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    loopback: IPv4Interface | None
    interfaces: tuple[Interface, ...]
    routes: tuple[Route, ...]
    sysctls: tuple[tuple[str, str], ...]
    services: tuple[Service, ...]
    container: Container | None = None  # set exactly when kind == "container"
    host: str | None = None  # the inventory host named by `host:` (several machines), else None

    def interface(self, name: str) -> Interface:
        for iface in self.interfaces:
            if iface.name == name:
                return iface
        raise KeyError(name)

    @property
    def addresses(self) -> set[IPAddress]:
        """Every address the node holds: its loopback and its interfaces' (both families)."""
        found: set[IPAddress] = {self.loopback.ip} if self.loopback is not None else set()
        for iface in self.interfaces:
            found |= {a.ip for a in (iface.ipv4, iface.ipv6) if a is not None}
        return found

    @property
    def primary_address(self) -> IPAddress | None:
        """The address probes use when a node is named as a target: loopback, else first interface."""
        if self.loopback is not None:
            return self.loopback.ip
        for iface in self.interfaces:
            if iface.ipv4 is not None:
                return iface.ipv4.ip
        return None


@dataclass(frozen=True)
class Topology:
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    segments: tuple[Segment, ...] = ()

    def node(self, name: str) -> Node:
        return self._by_name[name]

    def link(self, ref: str) -> Link:
        """The link named `ref` or having `ref` as an endpoint (the first such in file order)."""
        return self._links_by_ref[ref]

    def segment(self, ref: str) -> Segment:
        """The segment named `ref` or having `ref` as a member endpoint."""
        return self.segment_refs[ref]

    @cached_property
    def segment_refs(self) -> dict[str, Segment]:
        """Segments by name and by each member endpoint, the two ways a step can name one."""
        index: dict[str, Segment] = {}
        for segment in self.segments:
            for ref in (segment.name, *(member.endpoint for member in segment.members)):
                index.setdefault(ref, segment)
        return index

    # Indexes built on first use (the dataclass is frozen; cached_property writes past that):
    # lookups by a scan of every node made validation of large testbeds quadratic.
    @cached_property
    def _by_name(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    @cached_property
    def _links_by_ref(self) -> dict[str, Link]:
        index: dict[str, Link] = {}
        for link in self.links:
            for ref in (link.name, link.a.endpoint, link.b.endpoint):
                index.setdefault(ref, link)
        return index

    @cached_property
    def _holders(self) -> dict[IPAddress, str]:
        """The node holding each address (the first in file order, as a scan would find)."""
        holders: dict[IPAddress, str] = {}
        for node in self.nodes:
            for address in node.addresses:
                holders.setdefault(address, node.name)
        return holders

    def probe_target(self, ref: str) -> tuple[IPAddress | None, str | None]:
        """Address and node of a probe's `to`: a node (its primary address), an endpoint (its
        IPv4 address), or an address (with the node holding it, None when none does)."""
        try:
            address = ip_address(ref)
        except ValueError:
            pass
        else:
            return address, self._holders.get(address)
        if ":" in ref:
            node, iface = ref.split(":", 1)
            ipv4 = self.node(node).interface(iface).ipv4
            return (ipv4.ip if ipv4 is not None else None), node
        return self.node(ref).primary_address, ref


@dataclass(frozen=True)
class HostsSpec:
    """The scenario's `hosts:` (several machines), resolved. Present when the file has a `hosts:`
    section or a node names a `host:`. The inventory is not read here (resolving needs no host
    file): drills.hosts.placement reads it and places the nodes."""

    inventory: Path | None  # `hosts.inventory`, relative to the scenario's directory; None: not given
    placement: str  # "given" (every node names its host) or "auto"
    vxlan_port: int


@dataclass(frozen=True)
class Scenario:
    """A scenario ready to run. `steps` and `probes` are the timeline and the probes resolved
    (drills.scenario.steps, drills.scenario.probes); `source` is the parsed file, kept for the
    parts later stages still read directly (objectives, the raw timeline for some checks)."""

    path: Path
    name: str
    description: str
    seed: int | None
    topology: Topology
    profiles: dict[str, model.Profile] = field(hash=False)
    source: model.ScenarioFile = field(hash=False, repr=False)
    duration_s: float = 0.0
    located: Located | None = field(default=None, hash=False, repr=False, compare=False)
    steps: tuple[Step, ...] = field(default=(), hash=False, repr=False)  # the timeline, resolved
    probes: tuple[Spec, ...] = field(default=(), hash=False, repr=False)  # the probes, resolved
    objectives: tuple[Objective, ...] = field(default=(), hash=False, repr=False)  # `expect`, resolved
    duration_given: bool = False  # False: `duration_s` is the default, the last step's end + 10 s
    hosts: HostsSpec | None = None  # several machines: `hosts:` and the nodes' `host:`; None: this machine
    known: tuple[KnownAnswer, ...] = field(default=(), hash=False, repr=False)  # `expect_known`, resolved
    cues: tuple[Cue, ...] = field(default=(), hash=False, repr=False)  # per step: how it is delivered in play
    exercise: Exercise | None = field(default=None, hash=False, repr=False)  # `exercise:`, resolved

    def cue(self, step_index: int) -> Cue:
        """How step `step_index` is delivered in play (as planned, when nothing says otherwise)."""
        return self.cues[step_index] if step_index < len(self.cues) else PLANNED

    def problem(self, path: tuple[str | int, ...], message: str) -> Problem:
        """A problem found after loading (a capability, an engine limit), still located at the
        key it is about, so later checks speak like the loader does."""
        mark = self.located.mark(path) if self.located is not None else None
        text = path_text(path)
        if mark is None:
            return Problem(str(self.path), 0, 0, text, message)
        return Problem(mark.file, mark.line, mark.column, text, message)

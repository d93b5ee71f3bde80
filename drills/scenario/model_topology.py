"""The parsed model of a testbed: link profiles (impairments), nodes, links and addressing.

Part of the parsed model (drills.scenario.model re-exports all of it); references between these
(a link's nodes, its profile) are checked by the resolver.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from drills.scenario import limits, values
from drills.scenario.fields import (
    Command,
    Endpoint,
    Environment,
    HostName,
    IPv4Iface,
    IPv6Iface,
    Name,
    Percent,
    Period,
    Prefix,
    RateBps,
    Seconds,
    Strict,
    Timeout,
)
from drills.scenario.values import validator

# --------------------------------------------------------------------------- impairments


class GilbertElliott(Strict):
    """Bursty loss (netem's `loss gemodel p r 1-h 1-k`)."""

    p: Percent = Field(description="Chance of moving from the good state to the bad state, per packet.")
    r: Percent = Field(description="Chance of moving from the bad state back to the good state, per packet.")
    h: Percent = Field(100.0, description="Loss in the bad state (netem's 1-h: tc's third gemodel argument).")
    k: Percent = Field(
        0.0, description="Loss in the good state... expressed as 1-k: chance a packet is lost in the good state."
    )


class Impairment(Strict):
    """Impairments of one direction of a link. All optional; omitted means untouched."""

    delay: Seconds | None = Field(None, description="One-way added delay.")
    jitter: Seconds | None = Field(None, description="Delay variation (needs delay).")
    distribution: Literal["uniform", "normal", "pareto", "paretonormal"] | None = Field(
        None, description="Shape of the jitter."
    )
    correlation: Percent | None = Field(None, description="Correlation of successive delays.")
    loss: Percent | None = Field(None, description="Random loss.")
    loss_bursts: GilbertElliott | None = Field(None, description="Bursty (Gilbert-Elliott) loss.")
    duplicate: Percent | None = Field(None, description="Duplicated packets.")
    corrupt: Percent | None = Field(None, description="Corrupted packets.")
    reorder: Percent | None = Field(None, description="Packets sent out of order (needs delay).")
    rate: RateBps | None = Field(None, description="Bandwidth limit.")


class Handover(Strict):
    """A periodic event on a link: a LEO satellite reassignment, an LTE handover."""

    every: Period = Field(description="Period between handovers.")
    delay_spike: Seconds = Field(0.0, description="Extra delay during the handover.")
    loss_burst: Seconds = Field(0.0, description="Time during which every packet is lost.")
    spike_length: Seconds = Field(1.0, description="How long the delay spike lasts.")


class Profile(Impairment):
    """A named link profile: impairments for both directions, optionally asymmetric."""

    description: str = Field("", description="What this profile stands for.")
    reverse: Impairment | None = Field(
        None, description="Overrides for the b→a direction (a link's second endpoint towards its first)."
    )
    handover: Handover | None = Field(None, description="A periodic event making the profile time-varying.")


# --------------------------------------------------------------------------- topology


class Addressing(Strict):
    """Where automatic addresses come from."""

    ipv4: Prefix = Field("198.18.0.0/16", description="Pool for point-to-point /30 link subnets.")
    loopbacks: Prefix = Field("198.19.0.0/16", description="Pool for node loopback /32 addresses.")
    ipv6: Prefix | None = Field(
        None, description="Optional ULA pool (such as fd00:d811::/48): each link gets a /64 from it."
    )


class InterfaceConfig(Strict):
    """Per-interface overrides of automatic addressing."""

    ipv4: IPv4Iface | None = Field(None, description="Address with prefix, replacing the automatic one.")
    ipv6: IPv6Iface | None = Field(None, description="IPv6 address with prefix.")
    mtu: int | None = Field(None, ge=68, le=65535, description="MTU in bytes.")


class Route(Strict):
    """A static route in one node."""

    to: str = Field(
        description="Destination: a prefix (198.18.9.0/24), `default`, a node name (its loopback) "
        "or an endpoint `node:iface` (that link's subnet)."
    )
    via: str | None = Field(
        None, description="Next hop: an address, or an endpoint `node:iface` (that interface's address)."
    )
    dev: str | None = Field(None, description="Outgoing interface of this node.")
    metric: int = Field(0, ge=0, le=2**32 - 1, description="Route metric; lower wins.")


class Readiness(Strict):
    """How to tell a service is ready. One of `tcp` or `command`."""

    tcp: int | None = Field(None, ge=1, le=65535, description="Ready when this TCP port accepts connections.")
    command: Command | None = Field(None, description="Ready when this command exits 0 (run in the node).")
    timeout: Timeout = Field(10.0, description="Give up after this long.")


class Service(Strict):
    """A command started in the node at deploy and stopped at teardown."""

    name: Name
    command: Command = Field(description="Shell command run in the node's namespace.")
    env: Environment = Field(default_factory=dict, description="Extra environment variables.")
    ready: Readiness | None = Field(None, description="Readiness check; deploy waits for it.")


FrrDaemon = Literal["zebra", "ospfd", "bfdd", "staticd"]


def _zebra_ospfd() -> list[FrrDaemon]:
    return ["zebra", "ospfd"]


class Frr(Strict):
    """FRR's daemons in one namespace node, each with its own paths (drills.scenario.daemons)."""

    config: Command = Field(
        description="The integrated configuration (frr.conf): a path relative to the file that names it, "
        "or the text itself (several lines, `config: |`)."
    )
    daemons: list[FrrDaemon] = Field(
        default_factory=_zebra_ospfd,
        max_length=4,
        description="Daemons to run (zebra always runs, first): zebra, ospfd, bfdd, staticd.",
    )
    ospf_neighbors: int = Field(
        0,
        ge=0,
        le=64,
        description="Deploy waits until ospfd has this many neighbours in state Full (the drill starts converged).",
    )
    ospf_routes: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Deploy waits until zebra has installed this many OSPF routes in the kernel (`O>*`): "
        "Full adjacencies are not yet routes (a router-LSA waits up to 5 s, MinLSInterval).",
    )
    ready_timeout: Timeout = Field(15.0, description="How long each daemon may take to be ready.")


class Keepalived(Strict):
    """keepalived (VRRP only) in one namespace node, with its own pid files and config id."""

    config: Command = Field(
        description="keepalived.conf: a path relative to the file that names it, or the text itself (`config: |`)."
    )
    ready_timeout: Timeout = Field(10.0, description="How long keepalived may take to write its VRRP pid file.")
    master: bool = Field(
        False,
        description="Deploy waits until this node's keepalived entered MASTER state (a VRRPv3 router below "
        "priority 255 starts as backup and takes over only after Master_Down_Interval, about 3 s), so the "
        "drill's clock starts with the virtual address answering. Set it on the node meant to hold it.",
    )


class Daemons(Strict):
    """Routing and failover daemons from the host's packages, run as the node's services."""

    frr: Frr | None = Field(None, description="FRR (zebra, ospfd, bfdd, staticd).")
    keepalived: Keepalived | None = Field(None, description="keepalived's VRRP.")


Label = Annotated[str, AfterValidator(validator(values.command_text)), Field(max_length=200)]


class Node(Strict):
    """A node of the testbed."""

    label: Label | None = Field(
        None,
        description="What the node stands for, such as its city or site (an imported graph's original "
        "label, kept beside the name drills could use); shown, never used.",
    )
    kind: Literal["netns", "container"] = Field(
        "netns", description="Substrate: `netns` (a network namespace) or `container` (a Docker container)."
    )
    loopback: Literal["auto", "none"] | IPv4Iface = Field(
        "auto", description="Loopback address: `auto` (from the loopbacks pool), `none`, or an address/32."
    )
    interfaces: dict[str, InterfaceConfig] = Field(default_factory=dict, description="Per-interface settings.")
    routes: list[Route] = Field(default_factory=list, description="Static routes.")
    sysctls: Annotated[dict[str, str | int], AfterValidator(validator(values.sysctls))] = Field(
        default_factory=dict, description="Namespace sysctls, such as net.ipv4.tcp_syncookies: 0."
    )
    services: list[Service] = Field(default_factory=list, description="Processes started in the node.")
    daemons: Daemons | None = Field(
        None,
        description="FRR and keepalived run in the node (namespace nodes), each instance with private "
        "config, pid, socket and log paths in the run directory; started after the node's services.",
    )
    # Container nodes only (`kind: container`).
    image: Annotated[str, AfterValidator(validator(values.image))] | None = Field(
        None, description="Container image (built locally: `drill image build`)."
    )
    command: Command | list[Command] | None = Field(
        None, description="The container's main process (default: the image's); a string runs through /bin/sh -c."
    )
    environment: Environment = Field(default_factory=dict, description="Environment of the container.")
    volumes: list[Command] = Field(
        default_factory=list,
        description="Bind mounts `host:container[:ro]`; a relative host path is relative to the file that names it.",
    )
    capabilities: list[Annotated[str, AfterValidator(validator(values.capability))]] = Field(
        default_factory=lambda: ["NET_ADMIN"], description="Linux capabilities added to the container (cap_add)."
    )
    privileged: bool = Field(False, description="Run the container privileged (off by default).")
    exec: list[Command] = Field(
        default_factory=list,
        description="Commands run in the container, in order, once its links are wired (containerlab's `exec`).",
    )
    ready: Readiness | None = Field(
        None,
        description="Container nodes: deploy waits until this passes (a command run in the container, or a TCP port), "
        "such as a routing daemon's adjacencies being up.",
    )
    attach: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)] | None = Field(
        None,
        description="Name of a running container to use as this node, never created nor removed "
        "(a lab deployed by containerlab); its links to other attached nodes must exist already.",
    )
    host: HostName | None = Field(
        None,
        description="Inventory host that runs this node (several machines: see `hosts:`); "
        "without it, `placement: auto` chooses.",
    )


class Link(Strict):
    """A point-to-point link (a veth pair) between two endpoints."""

    endpoints: list[Endpoint] = Field(min_length=2, max_length=2, description="Two endpoints `node:iface`.")
    name: Name | None = Field(None, description="Name to refer to this link; defaults to its first endpoint.")
    profile: Name | None = Field(None, description="Named link profile (fibre, geo-satellite, ...).")
    delay: Seconds | None = Field(
        None,
        description="One-way delay of this link in both directions (its propagation delay), replacing its "
        "profile's delay; `drill import zoo` derives it from the distance between the two sites.",
    )
    rate: RateBps | None = Field(
        None, description="Capacity of this link in both directions, replacing its profile's rate."
    )
    engine: Literal["kernel", "userspace", "auto"] = Field(
        "auto",
        description="What realises the link: `kernel` (veth pair, netem/tbf qdiscs), `userspace` (TAP pair "
        "joined by a relay process that impairs frames itself), or `auto` (the kernel when it has netem; "
        "otherwise userspace for links whose profile or degrade steps need netem parameters).",
    )


class Segment(Strict):
    """A LAN segment: one L2 broadcast domain (a switch) joining any number of node interfaces."""

    name: Name = Field(description="Name to refer to this segment; unique among links and segments.")
    members: list[Endpoint] = Field(
        min_length=2,
        max_length=limits.MAX_SEGMENT_MEMBERS,
        description="Endpoints `node:iface` on the segment; addressed in this order from `subnet` (.1, .2, ...). "
        "A virtual address (a VRRP VIP) is any other free address of the subnet, such as its last host address.",
    )
    subnet: Prefix | None = Field(
        None,
        description="IPv4 subnet of the segment (such as 198.18.50.0/24); default: the smallest subnet holding "
        "every member, from `addressing.ipv4`.",
    )
    ipv6: Prefix | None = Field(
        None, description="IPv6 subnet of the segment; default: a /64 from `addressing.ipv6` when that is set."
    )
    mtu: int | None = Field(None, ge=68, le=65535, description="MTU in bytes of every member interface.")


class RoutingTimers(Strict):
    """OSPF timers of `routing: ospf` (FRR's defaults when omitted: hello 10 s, dead 40 s)."""

    hello: Seconds | None = Field(None, description="OSPF HelloInterval on every link interface (whole seconds).")
    dead: Seconds | None = Field(None, description="OSPF RouterDeadInterval (whole seconds, above `hello`).")
    converge_timeout: Timeout = Field(
        30.0, description="How long deploy waits for each router's adjacencies and OSPF routes (drills.scenario.routing_ospf)."
    )


class TopologyBody(Strict):
    """Nodes, links, LAN segments and addressing: what a topology file holds."""

    addressing: Addressing = Field(default_factory=lambda: Addressing())
    nodes: dict[Name, Node] = Field(max_length=limits.MAX_NODES, description="Nodes by name.")
    links: list[Link] = Field(default_factory=list, max_length=limits.MAX_LINKS)
    segments: list[Segment] = Field(
        default_factory=list,
        max_length=limits.MAX_SEGMENTS,
        description="LAN segments (multi-access: a switch joining several nodes); a `link-down` naming one "
        "fails the whole segment, naming a member `node:iface` cuts that member's port only.",
    )
    routing: Literal["static-shortest-path", "ospf"] | None = Field(
        None,
        description="Automatic routing: `static-shortest-path` (drills computes every node's routes to every other "
        "node along delay-weighted shortest paths, with loop-free backups by metric) or `ospf` (FRR's ospfd in "
        "every namespace node, configuration generated); omitted: only the routes written under each node.",
    )
    routing_timers: RoutingTimers | None = Field(None, description="OSPF timers and convergence wait of `routing: ospf`.")


class Topology(TopologyBody):
    """A scenario's topology: a body of its own, plus topology files joined into it."""

    include: list[str] = Field(
        default_factory=list,
        max_length=limits.MAX_TOPOLOGY_INCLUDES,
        description="Topology files (paths relative to this file) joined into this topology: their nodes, links "
        "and segments are added to the ones written here (names must not collide); `addressing`, `routing` and "
        "`routing_timers` written here win over the files' own. Joins two imported backbones with cables between.",
    )

"""The scenario format, version 1, as parsed data (the "parse" half of parse-then-resolve).

These pydantic models check shape, types and units only. Cross-references (node and link names,
profile names, addresses) are checked later by `resolve`, once the whole file is known. Every
model forbids unknown keys. Field docstrings become descriptions in `drill schema`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, WithJsonSchema

from drills.scenario import limits, units, values
from drills.scenario.values import validator

FORMAT_VERSION = 1
_T = TypeVar("_T")


def _parsed(parse: Callable[[object], _T], value: object) -> _T:
    try:
        return parse(value)
    except units.UnitError as exc:
        raise ValueError(str(exc)) from None


def _duration(value: object) -> float:
    seconds = _parsed(units.parse_duration_s, value)
    if seconds > limits.MAX_DRILL_DURATION_S:
        raise ValueError(f"{_shown(value)} is longer than the longest drill (7 days); write a shorter duration")
    return seconds


def _rate(value: object) -> int:
    rate_bps = _parsed(units.parse_rate_bps, value)
    if rate_bps < limits.MIN_RATE_BPS:
        raise ValueError(f"{_shown(value)} is below the smallest rate tc can set, 8bit (1 byte per second)")
    if rate_bps > limits.MAX_RATE_BPS:
        raise ValueError(
            f"{_shown(value)} is above the largest rate limit, 400gbit (tbf's queue of 50 ms would not fit its "
            "32-bit byte count); leave `rate` out for an unlimited link"
        )
    return rate_bps


def _percent(value: object) -> float:
    return _parsed(units.parse_percent, value)


def _shown(value: object) -> str:
    return values.shown(value) if isinstance(value, str) else values.number(value)


def _seconds_within(what: str, low_s: float, high_s: float, *, low_included: bool = True) -> AfterValidator:
    """A bound on a parsed duration, worded for `what` (such as "a probe's interval")."""

    def check(seconds: float) -> float:
        too_low = seconds < low_s if low_included else seconds <= low_s
        if too_low:
            floor = units.format_duration_s(low_s) if low_s else "0"
            least = "at least" if low_included else "more than"
            given = units.format_duration_s(seconds) if seconds else "0"
            raise ValueError(f"{what} is {given}; it must be {least} {floor}")
        if seconds > high_s:
            raise ValueError(
                f"{what} is {units.format_duration_s(seconds)}; it must be at most {units.format_duration_s(high_s)}"
            )
        return seconds

    return AfterValidator(check)


def _interface_checker(version: int, example: str, prefix: int) -> Callable[[str], str]:
    """A validator of `address/prefix` text for one IP version (the prefix is required)."""
    parse = ipaddress.IPv4Interface if version == 4 else ipaddress.IPv6Interface

    def check(value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(
                f"'{value}' is not an IPv{version} address with prefix length, such as {example}"
            ) from None
        if "/" not in value:
            raise ValueError(f"'{value}' needs a prefix length, such as {value}/{prefix}")
        return validator(values.interface_address)(value)

    return check


_interface4 = _interface_checker(4, "198.18.0.1/30", 30)
_interface6 = _interface_checker(6, "fd00:d::1/64", 64)


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_interface(value).network
        except ValueError:
            example = "fd00:d811::/48" if ":" in value else "198.18.0.0/15"
            raise ValueError(f"'{value}' is not a network prefix ({exc}); write it as {example}") from None
        raise ValueError(f"'{value}' has host bits set; did you mean {fixed}?") from None
    return validator(values.address_pool)(value)


# What editors see (`drill schema`): the YAML forms people write, not the parsed numbers.
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(T\+)?[0-9.:]+\s*$|^\s*([0-9.]+\s*(us|µs|ms|s|min|m|h)\s*)+$"},
    ],
    "description": "A duration: 500ms, 2s, 1m30s, seconds as a number, or a clock time T+01:30.",
}
_RATE_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": r"(?i)^\s*[0-9.]+\s*[a-z]+\s*$"},
    ],
    "description": "A rate: 512kbit, 10mbit, 1gbit (bits per second) or 5mbps (bytes per second, as tc writes it).",
}
_PERCENT_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0, "maximum": 100}, {"type": "string", "pattern": r"^\s*[0-9.]+\s*%\s*$"}],
    "description": "A percentage: 0.5% or 0.5.",
}

Seconds = Annotated[float, BeforeValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]
"""A duration: `500ms`, `2s`, `1m30s`, a number of seconds, or a clock time `T+01:30`."""
RateBps = Annotated[int, BeforeValidator(_rate), WithJsonSchema(_RATE_SCHEMA)]
"""A rate: `512kbit`, `10mbit`, `1gbit`, or `5mbps` (bytes per second, as tc writes it)."""
Period = Annotated[Seconds, _seconds_within("this period", limits.MIN_FAULT_PERIOD_S, limits.MAX_DRILL_DURATION_S)]
"""The period of something repeated in the kernel (repeats, flaps, handovers): at least 10 ms."""
Timeout = Annotated[Seconds, _seconds_within("this timeout", 0.0, limits.MAX_TIMEOUT_S, low_included=False)]
"""A timeout: above 0 and at most `limits.MAX_TIMEOUT_S`."""
Command = Annotated[str, AfterValidator(validator(values.command_text))]
"""Text handed to a process (a shell command, an argument): no NUL or control characters."""
Environment = Annotated[dict[str, str], AfterValidator(validator(values.environment))]
"""Environment variables: names without '=' or NUL, values without NUL."""
Percent = Annotated[float, BeforeValidator(_percent), WithJsonSchema(_PERCENT_SCHEMA)]
"""A percentage, `0.5%` or `0.5`."""
IPv4Iface = Annotated[str, AfterValidator(_interface4)]
IPv6Iface = Annotated[str, AfterValidator(_interface6)]
Prefix = Annotated[str, AfterValidator(_network)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=limits.MAX_NAME_BYTES)]
"""A name: letters, digits, `_`, `.`, `-`; starts with a letter or digit."""
Endpoint = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*:[^\s:/]+$")]
"""A link endpoint `node:interface`, such as `core:eth1`."""


class Strict(BaseModel):
    """Base: unknown keys are errors, values are immutable after parsing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


class Node(Strict):
    """A node of the testbed."""

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


class Link(Strict):
    """A point-to-point link (a veth pair) between two endpoints."""

    endpoints: list[Endpoint] = Field(min_length=2, max_length=2, description="Two endpoints `node:iface`.")
    name: Name | None = Field(None, description="Name to refer to this link; defaults to its first endpoint.")
    profile: Name | None = Field(None, description="Named link profile (fibre, geo-satellite, ...).")
    engine: Literal["kernel", "userspace", "auto"] = Field(
        "auto",
        description="What realises the link: `kernel` (veth pair, netem/tbf qdiscs), `userspace` (TAP pair "
        "joined by a relay process that impairs frames itself), or `auto` (the kernel when it has netem; "
        "otherwise userspace for links whose profile or degrade steps need netem parameters).",
    )


class Topology(Strict):
    """Nodes, links and addressing."""

    addressing: Addressing = Field(default_factory=lambda: Addressing())
    nodes: dict[Name, Node] = Field(max_length=limits.MAX_NODES, description="Nodes by name.")
    links: list[Link] = Field(default_factory=list, max_length=limits.MAX_LINKS)


# --------------------------------------------------------------------------- probes


class _Probe(Strict):
    name: Name
    source: Name = Field(alias="from", description="Node the probe runs in.")
    interval: Annotated[
        Seconds,
        _seconds_within("a probe's interval", limits.MIN_APP_PROBE_INTERVAL_S, limits.MAX_PROBE_INTERVAL_S),
    ] = Field(1.0, description="Sampling interval (application probes), 10 ms to 1 h.")
    timeout: Timeout = Field(1.0, description="A sample not answered within this is a failure.")


class UdpStreamProbe(_Probe):
    """Constant-rate, sequence-numbered UDP stream: the accurate outage meter."""

    type: Literal["udp-stream"]
    to: str = Field(description="Destination: a node (its loopback), an endpoint, or an address.")
    rate_pps: int = Field(1000, ge=1, le=limits.MAX_STREAM_RATE_PPS, description="Packets per second.")
    size_bytes: int = Field(64, ge=32, le=9000, description="UDP payload size.")
    dscp: int = Field(0, ge=0, le=63)
    echo: bool = Field(True, description="Echo back to the sender (round trip) or one-way.")
    late_after: Timeout = Field(2.0, description="A packet later than this counts as lost (RFC 2544).")
    tolerated_loss: Percent = Field(
        0.0,
        description="Random loss the path has by design (a satellite or radio profile): the baseline, and the "
        "sustained stretch that marks recovery, may lose up to this share and still count as clean.",
    )


class IcmpProbe(_Probe):
    """ICMP echo."""

    type: Literal["icmp"]
    to: str


class TcpConnectProbe(_Probe):
    """TCP connection establishment."""

    type: Literal["tcp-connect"]
    to: str
    port: int = Field(ge=1, le=65535)


class HttpProbe(_Probe):
    """HTTP GET with status and optional body check."""

    type: Literal["http"]
    to: str
    port: int = Field(80, ge=1, le=65535)
    path: Annotated[str, AfterValidator(validator(values.http_path))] = "/"
    status: int = Field(200, ge=100, le=599)
    body_contains: str | None = None


class DnsProbe(_Probe):
    """DNS query."""

    type: Literal["dns"]
    to: str = Field(description="DNS server.")
    query: Annotated[str, AfterValidator(validator(values.dns_name))]
    record: Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA"] = "A"


class CommandProbe(_Probe):
    """A command in the node; exit status 0 is success."""

    type: Literal["command"]
    command: Command


Probe = Annotated[
    UdpStreamProbe | IcmpProbe | TcpConnectProbe | HttpProbe | DnsProbe | CommandProbe,
    Field(discriminator="type"),
]

PROBE_TYPES: dict[str, type[_Probe]] = {
    "udp-stream": UdpStreamProbe,
    "icmp": IcmpProbe,
    "tcp-connect": TcpConnectProbe,
    "http": HttpProbe,
    "dns": DnsProbe,
    "command": CommandProbe,
}


# --------------------------------------------------------------------------- timeline


class Repeat(Strict):
    """Repeat a step."""

    every: Period
    count: int = Field(ge=1, le=100_000)


class _Step(Strict):
    id: Name | None = Field(None, description="Name to refer to this step (restore, expect).")
    at: Seconds = Field(description="Offset from the start of the drill.")
    duration: Seconds | None = Field(None, alias="for", description="Revert automatically after this long.")
    repeat: Repeat | None = None


class LinkDown(_Step):
    """Carrier loss on a link (both ends, or one)."""

    fault: Literal["link-down"]
    link: str = Field(description="Link name or one of its endpoints.")
    end: str | None = Field(None, description="Only this endpoint goes down.")


class LinkFlap(_Step):
    """A link that goes down and up repeatedly."""

    fault: Literal["link-flap"]
    link: str
    period: Period
    duty: Percent = Field(50.0, description="Share of each period spent down.")
    count: int = Field(ge=1, le=10_000)
    jitter: Seconds = 0.0


class Ramp(Strict):
    """Change a delay from one value to another over time."""

    delay_from: Seconds = Field(alias="from")
    delay_to: Seconds = Field(alias="to")
    over: Seconds


class Degrade(_Step, Impairment):
    """Impair a link: netem-style parameters, a named profile, or a ramp."""

    fault: Literal["degrade"]
    link: str
    direction: Literal["both", "a-to-b", "b-to-a"] = "both"
    profile: Name | None = None
    ramp: Ramp | None = None


class Blackhole(_Step):
    """Gray failure: carrier stays up, every packet is dropped."""

    fault: Literal["blackhole"]
    link: str


class Partition(_Step):
    """Cut groups of nodes from each other."""

    fault: Literal["partition"]
    groups: list[list[Name]] = Field(min_length=2)
    one_way: bool = False


class NodeLoss(_Step):
    """A node crashes or loses power: processes killed, interfaces dark."""

    fault: Literal["node-loss"]
    node: Name


class NodeFreeze(_Step):
    """A node hangs: its processes are stopped, not killed."""

    fault: Literal["node-freeze"]
    node: Name


class ServiceStop(_Step):
    """Stop one named service."""

    fault: Literal["service-stop"]
    node: Name
    service: Name


class ExecStep(_Step):
    """Run a command on a node (a configuration change as an inject)."""

    fault: Literal["exec"]
    node: Name
    command: Command


class NoteStep(_Step):
    """An exercise message written to the run's log."""

    fault: Literal["note"]
    text: str


class RestoreStep(Strict):
    """Revert an earlier step by its id."""

    at: Seconds
    restore: Name


FAULT_KINDS: dict[str, type[Strict]] = {
    "link-down": LinkDown,
    "link-flap": LinkFlap,
    "degrade": Degrade,
    "blackhole": Blackhole,
    "partition": Partition,
    "node-loss": NodeLoss,
    "node-freeze": NodeFreeze,
    "service-stop": ServiceStop,
    "exec": ExecStep,
    "note": NoteStep,
}


def _step_kind(value: object) -> str | None:
    """Which model reads a timeline step: `restore` steps, else the `fault` key."""
    if isinstance(value, dict):
        if "restore" in value and "fault" not in value:
            return "restore"
        kind = value.get("fault")
        return kind if isinstance(kind, str) else None
    return "restore" if isinstance(value, RestoreStep) else getattr(value, "fault", None)


Step = Annotated[
    Annotated[LinkDown, Tag("link-down")]
    | Annotated[LinkFlap, Tag("link-flap")]
    | Annotated[Degrade, Tag("degrade")]
    | Annotated[Blackhole, Tag("blackhole")]
    | Annotated[Partition, Tag("partition")]
    | Annotated[NodeLoss, Tag("node-loss")]
    | Annotated[NodeFreeze, Tag("node-freeze")]
    | Annotated[ServiceStop, Tag("service-stop")]
    | Annotated[ExecStep, Tag("exec")]
    | Annotated[NoteStep, Tag("note")]
    | Annotated[RestoreStep, Tag("restore")],
    Discriminator(_step_kind),
]


# --------------------------------------------------------------------------- objectives


class LatencyBound(Strict):
    """Latency percentile bounds."""

    p50: Seconds | None = None
    p95: Seconds | None = None
    p99: Seconds | None = None


class Objective(Strict):
    """A stated objective; omitted scope means every probe / every fault."""

    name: Name | None = None
    template: Literal["carrier-grade", "fast", "vrrp-default", "routing-default", "mcptt", "g114-voice"] | None = None
    probe: Name | None = None
    step: Name | None = Field(None, description="Timeline step id this objective is about.")
    event: Literal["apply", "revert"] = Field(
        "apply",
        description="With `step`: judge the step being applied (default) or being lifted (reversion: how the network came back).",
    )
    max_outage: Seconds | None = None
    max_recovery: Seconds | None = None
    max_loss: Percent | None = None
    latency: LatencyBound | None = None
    availability: Percent | None = None


# --------------------------------------------------------------------------- the file


class ScenarioFile(Strict):
    """A drills scenario, format version 1."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="drills scenario (version 1)")

    version: Literal[1] = Field(description="Format version; always 1 for now.")
    name: Name = Field(description="Short name of the drill.")
    description: str = ""
    seed: int | None = Field(None, ge=0, le=2**64 - 1, description="Seed for every random choice; recorded in results.")
    profiles: dict[Name, Profile] = Field(
        default_factory=dict, description="Extra link profiles, or overrides of the built-in ones."
    )
    topology: Annotated[
        Annotated[Topology, Tag("inline")] | Annotated[str, Tag("file")],
        Discriminator(lambda v: "file" if isinstance(v, str) else "inline"),
    ] = Field(description="The testbed, inline or a path (relative to this file) to a topology file.")
    probes: list[Probe] = Field(default_factory=list, max_length=limits.MAX_PROBES)
    timeline: list[Step] = Field(default_factory=list, max_length=limits.MAX_STEPS)
    expect: list[Objective] = Field(default_factory=list)
    duration: Seconds | None = Field(None, description="Total drill length; default: last step + 10 s.")


class TopologyFile(Topology):
    """A topology file, referenced from a scenario's `topology:` key."""


class ProfilesFile(Strict):
    """A file of named link profiles."""

    profiles: dict[Name, Profile]

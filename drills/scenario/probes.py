"""Probes, resolved: each scenario probe as a typed record with its ends looked up once, here.

The engine starts probes from these (drills.engine.probe_start), `drill plan` shows them, and
the analysis reads their thresholds (`late_after_s`, `tolerated_loss_pct`): nothing after load
reads the parsed YAML model of a probe or looks a probe's node or target up again.
`resolve_probes` runs once the topology is resolved and the loader has checked every reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from drills.scenario import model
from drills.scenario.resolved import Topology

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class ProbeSpec:
    """What every probe has: its name and kind, the node it runs in (`source`) with the address
    its sockets bind to (the node's primary address; None: the kernel picks), `to` as written
    (None for `command`), its sampling interval and sample timeout."""

    name: str
    kind: str  # udp-stream, icmp, tcp-connect, http, dns, command
    source: str
    source_address: IPAddress | None
    to: str | None
    interval_s: float
    timeout_s: float
    # Application probes: the share of an event's samples that may fail in isolation on a path
    # with random loss by design (`tolerated_loss`; drills.measure_samples.tolerated_failures).
    tolerated_failures_pct: float = field(default=0.0, kw_only=True)


@dataclass(frozen=True)
class UdpStreamSpec(ProbeSpec):
    """A constant-rate stream echoed back by `target_node` (the node holding `target_address`;
    the loader refuses a stream whose target no node holds)."""

    target_node: str | None
    target_address: IPAddress | None
    rate_pps: int
    size_bytes: int
    dscp: int
    echo: bool
    late_after_s: float  # an echo later than this counts as lost
    tolerated_loss_pct: float  # random loss the path has by design


@dataclass(frozen=True)
class TargetedSpec(ProbeSpec):
    """An application probe aimed at an address (None: `to` resolved to no address)."""

    target_address: IPAddress | None


@dataclass(frozen=True)
class IcmpSpec(TargetedSpec):
    pass


@dataclass(frozen=True)
class TcpConnectSpec(TargetedSpec):
    port: int


@dataclass(frozen=True)
class HttpSpec(TargetedSpec):
    port: int
    path: str
    status: int
    body_contains: str | None


@dataclass(frozen=True)
class DnsSpec(TargetedSpec):
    """A query to the server at `target_address`, port 53."""

    query: str
    record: str


@dataclass(frozen=True)
class CommandSpec(ProbeSpec):
    command: str


AppSpec = IcmpSpec | TcpConnectSpec | HttpSpec | DnsSpec | CommandSpec
Spec = UdpStreamSpec | AppSpec


def resolve_probes(probes: Sequence[model.Probe], topology: Topology) -> tuple[Spec, ...]:
    """Every probe of the scenario as its resolved record, in file order."""
    found = []
    for probe in probes:
        source = topology.node(probe.source).primary_address
        if isinstance(probe, model.CommandProbe):
            found.append(probe_spec(probe, source, None))
        else:
            found.append(probe_spec(probe, source, *topology.probe_target(probe.to)))
    return tuple(found)


def probe_spec(
    probe: model.Probe,
    source_address: IPAddress | None,
    target_address: IPAddress | None,
    target_node: str | None = None,
) -> Spec:
    """The record of one parsed probe whose ends are already known (tests resolve them against a
    testbed of their own)."""
    common = (
        probe.name,
        probe.type,
        probe.source,
        source_address,
        getattr(probe, "to", None),
        probe.interval,
        probe.timeout,
    )
    if isinstance(probe, model.UdpStreamProbe):
        return UdpStreamSpec(
            *common, target_node, target_address, probe.rate_pps, probe.size_bytes, probe.dscp, probe.echo,
            float(probe.late_after), float(probe.tolerated_loss),
        )  # fmt: skip
    tolerated = float(probe.tolerated_loss)
    if isinstance(probe, model.IcmpProbe):
        return IcmpSpec(*common, target_address, tolerated_failures_pct=tolerated)
    if isinstance(probe, model.TcpConnectProbe):
        return TcpConnectSpec(*common, target_address, probe.port, tolerated_failures_pct=tolerated)
    if isinstance(probe, model.HttpProbe):
        return HttpSpec(*common, target_address, probe.port, probe.path, probe.status, probe.body_contains, tolerated_failures_pct=tolerated)
    if isinstance(probe, model.DnsProbe):
        return DnsSpec(*common, target_address, probe.query, probe.record, tolerated_failures_pct=tolerated)
    return CommandSpec(*common, probe.command, tolerated_failures_pct=tolerated)

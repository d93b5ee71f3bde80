"""The parsed model of probes: what each kind of probe measures and how often.

Part of the parsed model (drills.scenario.model re-exports all of it); a probe's node and target
are checked by the resolver.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from drills.scenario import limits, values
from drills.scenario.fields import Command, Name, Percent, Seconds, Strict, Timeout, seconds_within
from drills.scenario.values import validator

# --------------------------------------------------------------------------- probes


class _Probe(Strict):
    name: Name
    source: Name = Field(alias="from", description="Node the probe runs in.")
    interval: Annotated[
        Seconds,
        seconds_within("a probe's interval", limits.MIN_APP_PROBE_INTERVAL_S, limits.MAX_PROBE_INTERVAL_S),
    ] = Field(1.0, description="Sampling interval (application probes), 10 ms to 1 h.")
    timeout: Timeout = Field(1.0, description="A sample not answered within this is a failure.")
    tolerated_loss: Percent = Field(
        0.0,
        description="Random loss the path has by design (a satellite or radio profile). A stream's baseline, and "
        "the sustained stretch that marks recovery, may lose up to this share and still count as clean; an "
        "application probe's baseline likewise, and up to this share of an event's samples may fail in isolation "
        "(each between two successes) without counting as an outage.",
    )


class UdpStreamProbe(_Probe):
    """Constant-rate, sequence-numbered UDP stream: the accurate outage meter."""

    type: Literal["udp-stream"]
    to: str = Field(description="Destination: a node (its loopback), an endpoint, or an address.")
    rate_pps: int = Field(1000, ge=1, le=limits.MAX_STREAM_RATE_PPS, description="Packets per second.")
    size_bytes: int = Field(64, ge=32, le=9000, description="UDP payload size.")
    dscp: int = Field(0, ge=0, le=63)
    echo: bool = Field(True, description="Echo back to the sender (round trip) or one-way.")
    late_after: Timeout = Field(2.0, description="A packet later than this counts as lost (RFC 2544).")


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

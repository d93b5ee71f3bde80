"""The scenario format, version 1, as parsed data (the "parse" half of parse-then-resolve).

These pydantic models check shape, types and units only. Cross-references (node and link names,
profile names, addresses) are checked later by `resolve`, once the whole file is known. Every
model forbids unknown keys. Field docstrings become descriptions in `drill schema`.

The models live by subject (value types in drills.scenario.fields, the testbed in
model_topology, probes in model_probes, the timeline in model_timeline); objectives and the
files themselves are here, and this module re-exports the rest, so `model.X` names any of them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from drills.scenario import limits, values
from drills.scenario.fields import (
    Command,
    Endpoint,
    Environment,
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
from drills.scenario.model_exercise import (
    After,
    CapabilityTarget,
    Cued,
    ExerciseObjective,
    ExerciseSection,
    InjectInfo,
    Participant,
)
from drills.scenario.model_probes import (
    PROBE_TYPES,
    CommandProbe,
    DnsProbe,
    HttpProbe,
    IcmpProbe,
    Probe,
    TcpConnectProbe,
    UdpStreamProbe,
)
from drills.scenario.model_timeline import (
    FAULT_KINDS,
    Blackhole,
    Degrade,
    ExecStep,
    LinkDown,
    LinkFlap,
    NodeFreeze,
    NodeLoss,
    NoteStep,
    Partition,
    Ramp,
    Repeat,
    RestoreStep,
    ServiceStop,
    Step,
)
from drills.scenario.model_topology import (
    Addressing,
    GilbertElliott,
    Handover,
    Impairment,
    InterfaceConfig,
    Link,
    Node,
    Profile,
    Readiness,
    Route,
    RoutingTimers,
    Segment,
    Service,
    Topology,
    TopologyBody,
)
from drills.scenario.values import validator

__all__ = [
    "FAULT_KINDS",
    "FORMAT_VERSION",
    "PROBE_TYPES",
    "Addressing",
    "After",
    "Blackhole",
    "CapabilityTarget",
    "Command",
    "CommandProbe",
    "Cued",
    "Degrade",
    "DnsProbe",
    "Endpoint",
    "Environment",
    "ExecStep",
    "ExerciseObjective",
    "ExerciseSection",
    "GilbertElliott",
    "Handover",
    "HostsSection",
    "HttpProbe",
    "IPv4Iface",
    "IPv6Iface",
    "IcmpProbe",
    "Impairment",
    "InjectInfo",
    "InterfaceConfig",
    "KnownAnswer",
    "LatencyBound",
    "Link",
    "LinkDown",
    "LinkFlap",
    "Name",
    "Node",
    "NodeFreeze",
    "NodeLoss",
    "NoteStep",
    "Objective",
    "Participant",
    "Partition",
    "Percent",
    "Period",
    "Prefix",
    "Probe",
    "Profile",
    "ProfilesFile",
    "Ramp",
    "RateBps",
    "Readiness",
    "Repeat",
    "RestoreStep",
    "Route",
    "RoutingTimers",
    "ScenarioFile",
    "Seconds",
    "Segment",
    "Service",
    "ServiceStop",
    "Step",
    "Strict",
    "TcpConnectProbe",
    "Timeout",
    "Topology",
    "TopologyBody",
    "TopologyFile",
    "UdpStreamProbe",
]

FORMAT_VERSION = 1


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


def _two_durations(value: object) -> object:
    """A known answer's window is a list of exactly two durations (pydantic would name a missing
    tuple item by its index)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        count = f"{len(value)} item(s)" if isinstance(value, list | tuple) else "one value"
        raise ValueError(f"a window is two durations, [low, high], such as [3.4s, 3.9s]; got {count}")
    return value


def _source(text: str) -> str:
    if not text.strip():
        raise ValueError("a known answer names its source: the standard and its section, or the derivation")
    return validator(values.command_text)(text)


class KnownAnswer(Strict):
    """A known answer (`expect_known:`): the figure a mechanism is known to give, with its
    tolerance and its source. It passes when the measured figure, its accuracy counted both ways,
    lies inside the known value's window; it is the validation table's row."""

    name: Name = Field(description="Unique name of this known answer (the validation table's mechanism).")
    probe: Name = Field(description="The probe whose figure is judged.")
    step: Name = Field(description="Timeline step id of the event judged.")
    event: Literal["apply", "revert"] = Field(
        "apply", description="Judge the step being applied (default) or being lifted."
    )
    figure: Literal["outage", "time_to_recover", "max_loss_period"] = Field(
        description="Which figure of that event: the loss-derived outage, the time to recover, or the longest loss period."
    )
    value: Seconds = Field(description="The known answer.")
    tolerance: Seconds | None = Field(None, description="The answer holds within value ± tolerance (or give `window`).")
    window: Annotated[tuple[Seconds, Seconds], BeforeValidator(_two_durations)] | None = Field(
        None, description="The answer holds within [low, high] (instead of `tolerance`)."
    )
    source: Annotated[str, Field(max_length=limits.MAX_SOURCE_BYTES), AfterValidator(_source)] = Field(
        description="Where the answer comes from: the standard and section, or the derivation."
    )


# --------------------------------------------------------------------------- several machines

DEFAULT_VXLAN_PORT = 14789  # drills.hosts.records.VXLAN_PORT (the scenario room cannot import it)


class HostsSection(Strict):
    """Several machines: the Ansible inventory of hosts and how nodes are placed on them."""

    inventory: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        None,
        description="Ansible inventory file (INI or YAML), relative to this file; `--inventory FILE` overrides it.",
    )
    placement: Literal["auto", "given"] | None = Field(
        None,
        description="`given`: every node names its `host:`; `auto`: balance nodes over the hosts with the fewest "
        "cross-host links (nodes naming a host stay there). Default: given when any node names a host, else auto.",
    )
    vxlan_port: int = Field(
        DEFAULT_VXLAN_PORT, ge=1, le=65535, description="UDP port of the cross-host VXLAN tunnels."
    )


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
    expect_known: list[KnownAnswer] = Field(
        default_factory=list,
        max_length=limits.MAX_KNOWN_ANSWERS,
        description="Known answers: figures a mechanism is known to give, each with its tolerance and source.",
    )
    duration: Seconds | None = Field(None, description="Total drill length; default: last step + 10 s.")
    hosts: HostsSection | None = Field(None, description="Spread the testbed over several machines.")
    exercise: ExerciseSection | None = Field(
        None, description="An exercise: participants, objectives with capability targets, the scenario clock."
    )


class TopologyFile(TopologyBody):
    """A topology file, referenced from a scenario's `topology:` key."""


class ProfilesFile(Strict):
    """A file of named link profiles."""

    profiles: dict[Name, Profile]

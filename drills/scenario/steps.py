"""Timeline steps, resolved: every name looked up once, here, into the topology's own records.

The engine builds its faults from these and never looks a name up again, nor reads the parsed
YAML model: a link-down carries its link and the ends that go down, a degrade its directions
with their merged settings (the step over its profile over the link's profile), a partition its
groups and the name of the rule tables it owns. `resolve_steps` runs after the topology is
resolved and the loader has checked every reference, so a lookup here cannot miss.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drills.impairment import Direction, plan
from drills.scenario import model
from drills.scenario.resolved import Interface, Link, Node, Route, Segment, Service, Topology


@dataclass(frozen=True)
class Timing:
    """When a step happens: at `at_s`, reverted after `for_s` (None: held until a `restore` or
    the end), repeated `repeat_count` times every `repeat_every_s`."""

    at_s: float
    for_s: float | None = None
    repeat_count: int = 1
    repeat_every_s: float = 0.0


@dataclass(frozen=True)
class Flap:
    """A link-flap's own schedule: `count` periods, down for `duty_pct` of each, each start
    shifted by up to `jitter_s` (seeded)."""

    period_s: float
    duty_pct: float
    count: int
    jitter_s: float


@dataclass(frozen=True)
class Step:
    """What every resolved step has: its position in the timeline, its id, its fault kind (the
    registry's key), and its timing."""

    index: int
    id: str | None
    kind: str
    timing: Timing

    @property
    def name(self) -> str:
        return self.id or f"step{self.index}"


@dataclass(frozen=True)
class LinkDownStep(Step):
    """`link-down` and `link-flap`: `ends` go administratively down (both, or the one named)."""

    link: Link
    ends: tuple[Interface, ...]
    # Per downed end, the static routes of its node through it: the kernel drops them when the
    # interface goes down, and the revert installs them again, as a router's configuration does.
    routes: tuple[tuple[Interface, tuple[Route, ...]], ...]
    flap: Flap | None = None


@dataclass(frozen=True)
class SegmentDownStep(Step):
    """`link-down` and `link-flap` of a LAN segment: `ends` (every member: the switch failed; or
    one: that member's port) go administratively down; the other members keep their carrier."""

    segment: Segment
    ends: tuple[Interface, ...]
    routes: tuple[tuple[Interface, tuple[Route, ...]], ...]  # as LinkDownStep's
    flap: Flap | None = None


@dataclass(frozen=True)
class DegradeStep(Step):
    """`degrade`: each direction with its merged settings; `profile` as the step named it."""

    link: Link
    directions: tuple[Direction, ...]
    profile: str | None


@dataclass(frozen=True)
class BlackholeStep(Step):
    link: Link
    table: str  # the rule tables this step owns are named so, in every node they touch


@dataclass(frozen=True)
class PartitionStep(Step):
    groups: tuple[tuple[str, ...], ...]
    one_way: bool
    table: str
    # Every node named in a group, resolved (their addresses are what a cut drops), and every
    # link with an end on one of them (which of a node's interfaces face a node it must not hear).
    members: tuple[Node, ...] = ()
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class NodeLossStep(Step):
    node: Node
    links: tuple[tuple[Interface, Interface], ...]  # (the node's end, the peer's end) of each link; a segment port: (port, port)


@dataclass(frozen=True)
class NodeFreezeStep(Step):
    node: Node


@dataclass(frozen=True)
class ServiceStopStep(Step):
    node: Node
    service: Service


@dataclass(frozen=True)
class ExecStep(Step):
    node: str
    command: str


@dataclass(frozen=True)
class NoteStep(Step):
    text: str


@dataclass(frozen=True)
class RestoreStep(Step):
    """Revert the first occurrence of step `target` (an index into the timeline) at `timing.at_s`."""

    target: int


def table_name(step: Any) -> str:
    """The rule tables of a step: its id (or fault kind), sanitised for nft, and a short hash of
    the whole step, so two steps never share a table even when their ids sanitise alike."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", getattr(step, "id", None) or str(step.fault))
    digest = hashlib.sha256(repr(step).encode()).hexdigest()[:6]
    return f"drills_{base}_{digest}"


def routes_through(node: Node, end: Interface) -> list[Route]:
    """The static routes of `node` whose next hop is out of interface `end`: named with
    `dev`, or with a gateway on one of its subnets."""
    subnets = [a.network for a in (end.ipv4, end.ipv6) if a is not None]
    return [
        route
        for route in node.routes
        if route.device == end.name
        or (route.device is None and route.gateway is not None and any(route.gateway in net for net in subnets))
    ]


def _timing(step: Any) -> Timing:
    repeat = getattr(step, "repeat", None)
    return Timing(
        float(step.at),
        float(step.duration) if getattr(step, "duration", None) is not None else None,
        repeat.count if repeat is not None else 1,
        float(repeat.every) if repeat is not None else 0.0,
    )


def _links_of(topology: Topology, node: str) -> tuple[tuple[Interface, Interface], ...]:
    found = []
    for link in topology.links:
        if link.a.node == node:
            found.append((link.a, link.b))
        if link.b.node == node:
            found.append((link.b, link.a))
    # A segment port's "peer" is itself: set down, the member has no carrier, and the other
    # members keep theirs (a switch port, not a wire, is all the lost node took down).
    for segment in topology.segments:
        found += [(member, member) for member in segment.members if member.node == node]
    return tuple(found)


def _segment_down(index: int, step: Any, topology: Topology) -> SegmentDownStep:
    segment = topology.segment(step.link)
    end = getattr(step, "end", None) or (step.link if step.link != segment.name else None)
    ends = segment.members if end is None else (segment.member(end),)
    flap = None
    if isinstance(step, model.LinkFlap):
        flap = Flap(float(step.period), float(step.duty), step.count, float(step.jitter))
    routes = tuple((e, tuple(routes_through(topology.node(e.node), e))) for e in ends)
    return SegmentDownStep(index, step.id, step.fault, _timing(step), segment, ends, routes, flap)


def resolve_step(index: int, step: Any, topology: Topology, profiles: Mapping[str, model.Profile], ids: Mapping[str, int]) -> Step:
    """One parsed step as its resolved record (references already checked by the loader)."""
    if isinstance(step, model.RestoreStep):
        return RestoreStep(index, step.id, "restore", Timing(float(step.at)), ids[step.restore])
    base = (index, step.id, step.fault, _timing(step))
    if isinstance(step, model.LinkDown | model.LinkFlap) and step.link in topology.segment_refs:
        return _segment_down(index, step, topology)
    if isinstance(step, model.LinkDown | model.LinkFlap):
        link = topology.link(step.link)
        end = getattr(step, "end", None)
        ends = (link.a, link.b) if end is None else ((link.a,) if end == link.a.endpoint else (link.b,))
        flap = None
        if isinstance(step, model.LinkFlap):
            flap = Flap(float(step.period), float(step.duty), step.count, float(step.jitter))
        routes = tuple((e, tuple(routes_through(topology.node(e.node), e))) for e in ends)
        return LinkDownStep(*base, link, ends, routes, flap)
    if isinstance(step, model.Degrade):
        # A segment member's port is degraded as a link: member -> segment is a-to-b.
        in_segment = step.link in topology.segment_refs
        link = topology.segment(step.link).port(step.link) if in_segment else topology.link(step.link)
        return DegradeStep(*base, link, plan(link, step, profiles), step.profile)
    if isinstance(step, model.Blackhole):
        return BlackholeStep(*base, topology.link(step.link), table_name(step))
    if isinstance(step, model.Partition):
        groups = tuple(tuple(g) for g in step.groups)
        names = {name for group in groups for name in group}
        members = tuple(topology.node(name) for name in sorted(names))
        links = tuple(link for link in topology.links if {link.a.node, link.b.node} & names)
        return PartitionStep(*base, groups, bool(step.one_way), table_name(step), members, links)
    if isinstance(step, model.NodeLoss):
        return NodeLossStep(*base, topology.node(step.node), _links_of(topology, step.node))
    if isinstance(step, model.NodeFreeze):
        return NodeFreezeStep(*base, topology.node(step.node))
    if isinstance(step, model.ServiceStop):
        node = topology.node(step.node)
        service = next(s for s in node.services if s.name == step.service)
        return ServiceStopStep(*base, node, service)
    if isinstance(step, model.ExecStep):
        return ExecStep(*base, step.node, step.command)
    if isinstance(step, model.NoteStep):
        return NoteStep(*base, step.text)
    raise AssertionError(f"no resolved record for timeline step {type(step).__name__}")


def resolve_steps(timeline: Sequence[Any], topology: Topology, profiles: Mapping[str, model.Profile]) -> tuple[Step, ...]:
    """Every timeline step as its resolved record, in file order."""
    ids: dict[str, int] = {}
    resolved = []
    for index, step in enumerate(timeline):
        resolved.append(resolve_step(index, step, topology, profiles, ids))
        if getattr(step, "id", None) is not None:
            ids[step.id] = index
    return tuple(resolved)

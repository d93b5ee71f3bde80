"""Which timeline faults may overlap in time, and which may not (used by the resolver).

Two steps in effect at the same moment conflict when they claim one thing in the kernel and either
needs it alone: the revert of one would undo the other, or the other's apply could not be
confirmed. `claims` says what each fault kind changes or relies on; `occurrences` when a step is
in effect, as timeline.expand plays it; the rest finds the first shared moment and words it.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from drills.scenario import model
from drills.scenario.resolved import Interface, Link, Node, Topology

# One thing in the kernel a fault changes or relies on: ("admin" | "qdisc", link, endpoint) is an
# interface's up/down state or its egress root qdisc; ("port", segment, endpoint) a LAN segment
# member's up/down state; ("procs", node) the processes of a node;
# ("service", node, service) one service's processes.
Aspect = tuple[str, ...]
ONE_SHOT_FAULTS = ("note", "exec")  # nothing to revert: they never overlap anything

# Why two claims of one aspect conflict, said in the problem.
CONFLICT_REASON = {
    "admin": "a link may not be set down by two faults at once, nor while a blackhole needs it up",
    "qdisc": "one direction of a link takes one degrade at a time",
    "port": "a segment's port may not be set down by two faults at once",
    "procs": "a node's processes may not be stopped, killed or restarted by two faults at once",
    "service": "a service may not be stopped by two faults at once",
}


def claims(step: Any, nodes: dict[str, Node], links: dict[str, Link], topology: Topology) -> dict[Aspect, bool]:
    """What a step changes (True: it needs it alone) or relies on (False: it can share it).

    Two steps overlapping in time conflict when they claim one aspect and either needs it alone:
    the revert of one would undo the other, or the other's apply could not be confirmed. What the
    faults do in the kernel decides it (drills/engine): `link-down` and `link-flap` set both ends of
    a link down and confirm carrier on both; `node-loss` sets its own ends down (its revert allows
    a peer that is down), kills every process of its node and starts its services again; `blackhole` keeps
    carrier and checks it; `degrade` owns the egress root qdisc of each direction it impairs;
    `node-freeze` stops and continues every process of its node; `service-stop` stops and restarts
    one service; `partition` and `blackhole` add nftables tables of their own, which nothing else
    touches. So these compose and are allowed: `degrade` with faults of other kinds, and degrades of
    opposite directions of one link (the qdisc stays across down and up: the link comes back still
    degraded); `partition` with anything, another partition included (the drops add up); two
    blackholes; `node-freeze` with link faults (the kernel keeps forwarding); `service-stop` of two
    services of one node; `node-loss` of two neighbours. Refused: two of `link-down`, `link-flap`,
    `node-loss` on one link end, either of them with a `blackhole` of that link; two degrades of
    one direction; two of `node-loss`, `node-freeze`, `service-stop` in one node, but for stops of
    different services. `note` and `exec` claim nothing. A step whose references did not resolve
    claims nothing (its problems are reported already).
    """
    kind = getattr(step, "fault", None)
    node = getattr(step, "node", None)
    link = links.get(step.link) if kind in ("link-down", "link-flap", "degrade", "blackhole") else None
    if kind == "degrade" and link is None and step.link in topology.segment_refs and ":" in step.link:
        link = topology.segment(step.link).port(step.link)
    if link is not None:
        ends: tuple[Interface, ...] = (link.a, link.b)
        if kind == "degrade":
            ends = {"both": ends, "a-to-b": (link.a,), "b-to-a": (link.b,)}[step.direction]
            return {("qdisc", link.name, end.endpoint): True for end in ends}
        return {("admin", link.name, end.endpoint): kind != "blackhole" for end in ends}
    if kind in ("link-down", "link-flap") and step.link in topology.segment_refs:
        segment = topology.segment(step.link)
        end = getattr(step, "end", None) or (step.link if step.link != segment.name else None)
        downed = [m for m in segment.members if end is None or m.endpoint == end]
        return {("port", segment.name, m.endpoint): True for m in downed}
    if kind == "node-loss" and node in nodes:
        claims: dict[Aspect, bool] = {("procs", node): True}
        for segment in topology.segments:
            for member in segment.members:
                if member.node == node:
                    claims[("port", segment.name, member.endpoint)] = True
        for link in topology.links:
            for end in (link.a, link.b):
                if end.node == node:
                    claims[("admin", link.name, end.endpoint)] = True
        return claims
    if kind == "node-freeze" and node in nodes:
        return {("procs", node): True}
    if kind == "service-stop" and node in nodes:
        return {("service", node, step.service): True, ("procs", node): False}
    return {}


def occurrences(step: Any, restores: list[float]) -> list[tuple[float, float]]:
    """When a step is in effect, as timeline.expand plays it: each repetition from its start for
    `for:`, the first one only until a later `restore:`, and without either until the end of the
    drill (inf); a link-flap from its first down period to the end of its last, latest jitter."""
    if isinstance(step, model.LinkFlap):
        down_s = step.period * step.duty / 100.0
        return [(step.at, step.at + (step.count - 1) * step.period + step.jitter + down_s)]
    count = step.repeat.count if step.repeat else 1
    every = step.repeat.every if step.repeat else 0.0
    out = []
    for n in range(count):
        start = step.at + n * every
        end = start + step.duration if step.duration is not None else math.inf
        # expand() reverts the first occurrence at a restore; at the same instant it reverts first.
        later = [t for t in restores if t > start] if n == 0 else []
        out.append((start, min([end, *later])))
    return out


def flap_runs_over(step: Any) -> bool:
    """A down period, late by the whole jitter, can last past the next one's earliest start."""
    if not isinstance(step, model.LinkFlap) or step.count < 2:
        return False
    return bool(step.jitter + step.period * step.duty / 100.0 > step.period)


def union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted spans with the overlapping ones merged (spans that only touch stay apart)."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def first_overlap(
    a: list[tuple[float, float]], b: list[tuple[float, float]]
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The first pair of spans, one from each sorted list, that share a moment; touching is not
    overlapping (a revert and an apply at one instant: expand plays the revert first)."""
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][0] < b[j][1] and b[j][0] < a[i][1]:
            return a[i], b[j]
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return None


def candidate_pairs(claims: list[dict[Aspect, bool]], spans: list[list[tuple[float, float]]]) -> list[tuple[int, int]]:
    """Pairs (x, y), x < y, sorted, of positions in `claims`/`spans` that may conflict: they claim
    one aspect, one of them alone, and a span of one meets a span of the other (touching spans
    count: the caller decides exactly). A sweep over each aspect's spans in time order pairs a
    span only with those still open when it starts, so a timeline of n steps that do not overlap
    costs n log n, where comparing every pair of steps cost n²."""
    by_aspect: dict[Aspect, list[tuple[float, float, int, bool]]] = {}
    for x, (claimed, own) in enumerate(zip(claims, spans, strict=True)):
        for aspect, alone in claimed.items():
            by_aspect.setdefault(aspect, []).extend((start, end, x, alone) for start, end in own)
    pairs: set[tuple[int, int]] = set()
    for items in by_aspect.values():
        items.sort(key=lambda item: item[0])
        open_alone: list[tuple[float, int]] = []  # heaps of (end, position) of spans still open
        open_shared: list[tuple[float, int]] = []
        for start, end, x, alone in items:
            for heap in (open_alone, open_shared):
                while heap and heap[0][0] < start:
                    heapq.heappop(heap)
            # A shared claim conflicts only with one that needs the aspect alone.
            for _, other in open_alone + open_shared if alone else open_alone:
                if other != x:
                    pairs.add((min(x, other), max(x, other)))
            heapq.heappush(open_alone if alone else open_shared, (end, x))
    return sorted(pairs)


def aspect_text(aspect: Aspect) -> str:
    if aspect[0] in ("admin", "qdisc"):
        return f"link {aspect[1]}"
    if aspect[0] == "port":
        return f"segment {aspect[1]}"
    if aspect[0] == "service":
        return f"service {aspect[1]}/{aspect[2]}"
    return f"node {aspect[1]}"


def step_name(step: Any) -> str:
    return f"{step.fault} '{step.id}'" if step.id else str(step.fault)


def clock_text(seconds: float) -> str:
    """Exercise clock time as written in scenarios: T+00:10, T+01:02.5."""
    minutes, rest = divmod(seconds, 60.0)
    return f"T+{int(minutes):02d}:{rest:06.3f}".rstrip("0").rstrip(".")


def shorten_hint(step: Any, end_s: float) -> str:
    if isinstance(step, model.LinkFlap):
        return "give the flap a smaller `count:`"
    if math.isinf(end_s):
        return "end the first with `for:` or `restore:`"
    if step.duration is None or end_s < step.at + step.duration:
        return "restore the first earlier"
    return "shorten the first one's `for:`"

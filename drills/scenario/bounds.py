"""Resource bounds and checks across values, run by `resolve` (so `validate` and `plan` agree).

`check_sizes` runs first, on the pieces that parsed: a timeline that would expand to more events than
the engine should schedule, or run past the longest drill, is refused before any further work
(the overlap checks expand every repetition). `check_resolved` runs on a scenario whose references all
resolved: probe targets a stream can be echoed from, the probe traffic the drill offers this
host, and the partition pair mesh's cap. Every bound is a constant of drills.scenario.limits.
"""

from __future__ import annotations

from typing import Any

from drills.errors import Problem
from drills.scenario import limits, model
from drills.scenario.diagnostics import problem_at
from drills.scenario.resolved import Node, Scenario
from drills.scenario.yamlpos import Located

_WEEK = "7 days"
IPV6_MIN_MTU = 1280  # RFC 8200


def step_end_s(step: Any) -> float:
    """When a timeline step is over: its last repetition's end, a flap's last period (latest
    jitter) included; a step without `for:` ends as it starts (it lasts until the drill ends)."""
    end = step.at + (step.duration or 0.0)
    if step.repeat is not None:
        end += step.repeat.every * (step.repeat.count - 1)
    if isinstance(step, model.LinkFlap):
        end += step.period * step.count + step.jitter * step.count
    return float(end)


def _events(step: Any) -> int:
    """Fault events the engine schedules for a step: apply and revert of each repetition, each
    down and up of a flap."""
    count = step.repeat.count if getattr(step, "repeat", None) is not None else 1
    return 2 * count * (step.count if isinstance(step, model.LinkFlap) else 1)


def check_sizes(located: Located, parts: Any) -> list[Problem] | None:
    """None when the timeline is within bounds; else its problems (possibly none: a count the
    shape check already refused), and the resolver stops there."""
    if len(parts.steps) > limits.MAX_STEPS or len(parts.probes) > limits.MAX_PROBES:
        return []  # reported by the shape check (max_length); resolving them could take long
    problems: list[Problem] = []
    total = 0
    for i, step in parts.steps:
        if isinstance(step, model.RestoreStep):
            continue
        end_s = step_end_s(step)
        if end_s > limits.MAX_DRILL_DURATION_S:
            problems.append(
                problem_at(
                    located,
                    ("timeline", i),
                    f"this step runs until {end_s / 86400:,.1f} days (at, plus for, repeats and flaps), past the "
                    f"longest drill ({_WEEK}); start it earlier, or make it shorter or repeat it less",
                )
            )
        total += _events(step)
        if total > limits.MAX_TIMELINE_EVENTS:
            problems.append(
                problem_at(
                    located,
                    ("timeline", i),
                    f"the timeline up to this step expands to {total:,} fault events (each repetition and flap "
                    f"counts), more than the {limits.MAX_TIMELINE_EVENTS:,} a drill may schedule; lower `count`s",
                )
            )
            break
    return problems or None


def check_resolved(scenario: Scenario) -> list[Problem]:
    """Checks that need the resolved testbed: probe targets, offered traffic, the pair mesh."""
    nodes = {node.name: node for node in scenario.topology.nodes}
    problems = _targets(scenario, nodes) + _ipv6_mtus(scenario)
    pairs = _mesh_pairs(scenario, nodes, problems)
    mesh_pps = _mesh_rate_pps(pairs)
    offered: list[tuple[float, str]] = [(float(mesh_pps), "the partition pair mesh")] if mesh_pps else []
    for probe in scenario.source.probes:
        if isinstance(probe, model.UdpStreamProbe):
            offered.append((probe.rate_pps * (2.0 if probe.echo else 1.0), f"probe {probe.name}"))
        else:
            offered.append((1.0 / probe.interval, f"probe {probe.name}"))
    total_pps = sum(pps for pps, _ in offered)
    if total_pps > limits.MAX_PROBE_PPS_PER_HOST:
        top = ", ".join(f"{name} {pps:,.0f}" for pps, name in sorted(offered, reverse=True)[:3])
        problems.append(
            scenario.problem(
                ("probes",),
                f"the probes offer {total_pps:,.0f} packets/s in all (largest: {top}; an echoed stream counts "
                f"twice), above the cap of {limits.MAX_PROBE_PPS_PER_HOST:,} per host: lower `rate_pps`, "
                "lengthen `interval`s or use fewer probes",
            )
        )
    return problems


def _targets(scenario: Scenario, nodes: dict[str, Node]) -> list[Problem]:
    """A udp-stream is echoed by the node holding its target and sent from its source's primary
    address: both must exist. Another probe aimed at an address nothing holds can never be
    answered in a testbed of static routes only (no daemon or container adds an address)."""
    from drills.scenario.reachability import applies_to

    static = applies_to(scenario.topology)
    problems = []
    for i, probe in enumerate(scenario.source.probes):
        ref = getattr(probe, "to", None)
        stream = isinstance(probe, model.UdpStreamProbe)
        if stream and nodes[probe.source].primary_address is None:
            problems.append(
                scenario.problem(
                    ("probes", i, "from"),
                    f"node '{probe.source}' has no address to send the stream from; give it a loopback or a link",
                )
            )
        if ref is None or ref in nodes or (":" in ref and ref.count(":") == 1):
            continue  # a node or an endpoint: resolve checked it has an address
        address, owner = scenario.topology.probe_target(ref)
        if owner is not None or not (stream or static):
            continue
        who = "echoes a stream" if stream else "could answer"
        choices = ", ".join(sorted(nodes)[:8]) + (", ..." if len(nodes) > 8 else "")
        problems.append(
            scenario.problem(
                ("probes", i, "to"),
                f"no node of the testbed holds {address}, so nothing {who}: aim at a node ({choices}), an "
                "endpoint node:interface, or an address a node holds (`drill plan` lists them)",
            )
        )
    return problems


def _ipv6_mtus(scenario: Scenario) -> list[Problem]:
    """An interface below IPv6's minimum MTU loses IPv6: the kernel refuses its address (EINVAL)
    when the testbed is built."""
    return [
        scenario.problem(
            ("topology", "nodes", end.node, "interfaces", end.name, "mtu"),
            f"MTU {end.mtu} is below IPv6's minimum of {IPV6_MIN_MTU}, and {end.endpoint} has IPv6 address "
            f"{end.ipv6}: give it an MTU of {IPV6_MIN_MTU} or more",
        )
        for link in scenario.topology.links
        for end in (link.a, link.b)
        if end.ipv6 is not None and end.mtu is not None and end.mtu < IPV6_MIN_MTU
    ]


def _mesh_pairs(scenario: Scenario, nodes: dict[str, Node], problems: list[Problem]) -> int:
    """Distinct ordered node pairs the pair mesh would probe (pairs with an address of one family
    at both ends, as drills.probes.pair_mesh.mesh_ends); a partition over the cap is a problem.
    Counted per group, so a partition of thousands of nodes costs no pair list."""
    seen: set[tuple[str, str]] = set()
    for i, step in enumerate(scenario.source.timeline):
        if not isinstance(step, model.Partition):
            continue
        families = [[_family(nodes[n]) for n in group] for group in step.groups]
        per_group = [(fam.count(4), fam.count(6)) for fam in families]
        v4, v6 = sum(n[0] for n in per_group), sum(n[1] for n in per_group)
        count = v4 * v4 - sum(n[0] ** 2 for n in per_group) + v6 * v6 - sum(n[1] ** 2 for n in per_group)
        if count > limits.MAX_MESH_PAIRS:
            problems.append(_mesh_problem(scenario, i, count, "this partition's groups make"))
            return limits.MAX_MESH_PAIRS
        seen |= {
            (a, b)
            for g, group in enumerate(step.groups)
            for h, other in enumerate(step.groups)
            if g != h
            for a in group
            for b in other
            if _family(nodes[a]) is not None and _family(nodes[a]) == _family(nodes[b])
        }
        if len(seen) > limits.MAX_MESH_PAIRS:
            problems.append(_mesh_problem(scenario, i, len(seen), "the partitions up to this one make"))
            return limits.MAX_MESH_PAIRS
    return len(seen)


def _family(node: Node) -> int | None:
    address = node.primary_address
    return address.version if address is not None else None


def _mesh_problem(scenario: Scenario, index: int, pairs: int, whose: str) -> Problem:
    floor = limits.MIN_PAIR_RATE_PPS
    return scenario.problem(
        ("timeline", index, "groups"),
        f"{whose} {pairs:,} ordered node pairs; the pair mesh probes each at {floor} packets/s or more, "
        f"{pairs:,} × {floor} = {pairs * floor:,} packets/s, above its cap of {limits.MAX_PAIR_MESH_PPS:,} "
        f"(at most {limits.MAX_MESH_PAIRS} pairs): partition fewer nodes, or cut with fewer, smaller "
        "groups (a `blackhole` or `link-down` of the links between them cuts a large network too)",
    )


def _mesh_rate_pps(pairs: int) -> int:
    return limits.pair_rate_pps(pairs) * pairs if pairs else 0

"""Resolve a parsed scenario: check every reference and assign every address.

Runs after shape validation and before anything touches the kernel. Each check appends a located
problem and carries on, so one pass reports everything. The checks live by subject, one class
each, all sharing one `Reporter`: the testbed's links, routes and node settings
(resolve_topology), its addresses (resolve_addresses), the probes and the timeline, with the faults
that would act on one object at the same time (resolve_timeline), and the objectives (here).
Once nothing is wrong, the drill parts become resolved records: the timeline's steps
(drills.scenario.steps) and the objectives (drills.scenario.expect).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from drills.errors import Problem
from drills.impairment import degraded_with_netem
from drills.scenario import model
from drills.scenario.bounds import check_resolved, check_sizes
from drills.scenario.diagnostics import suggest
from drills.scenario.exercise import exercise_refs, resolve_cues, resolve_exercise
from drills.scenario.expect import resolve_known, resolve_objectives
from drills.scenario.known import known_refs
from drills.scenario.probes import resolve_probes
from drills.scenario.resolve_addresses import AddressResolver
from drills.scenario.resolve_timeline import DrillResolver, link_index
from drills.scenario.resolve_topology import TopologyResolver
from drills.scenario.resolved import HostsSpec, Scenario, Topology
from drills.scenario.steps import resolve_steps
from drills.scenario.yamlpos import KeyPath, Located

DEFAULT_TAIL_S = 10.0  # a drill runs this long past its last step unless `duration` says otherwise


@dataclass
class Parts:
    """The pieces of a scenario that passed shape validation, with their list indices."""

    topology: model.Topology | None = None
    profiles: dict[str, model.Profile] = field(default_factory=dict)
    probes: list[tuple[int, Any]] = field(default_factory=list)
    steps: list[tuple[int, Any]] = field(default_factory=list)
    objectives: list[tuple[int, model.Objective]] = field(default_factory=list)
    known: list[tuple[int, model.KnownAnswer]] = field(default_factory=list)  # `expect_known`
    # When the topology has shape errors: its node names and the links valid on their own, so
    # that link references are still checked in the same pass.
    node_names: set[str] | None = None
    links: list[tuple[int, model.Link]] = field(default_factory=list)
    # Names defined by pieces that have shape errors (already reported): a reference to one of
    # them is not "unknown".
    invalid_profiles: set[str] = field(default_factory=set)
    invalid_probes: set[str] = field(default_factory=set)
    invalid_steps: set[str] = field(default_factory=set)

    @classmethod
    def from_model(cls, whole: model.ScenarioFile) -> Parts:
        topology = whole.topology if isinstance(whole.topology, model.Topology) else None
        return cls(
            topology=topology,
            profiles=dict(whole.profiles),
            probes=list(enumerate(whole.probes)),
            steps=list(enumerate(whole.timeline)),
            objectives=list(enumerate(whole.expect)),
            known=list(enumerate(whole.expect_known)),
        )


class _Resolver(TopologyResolver, AddressResolver, DrillResolver):
    """Every check of a scenario, in the order its problems are reported: the topology, then the
    probes, the timeline and the objectives."""

    def topology(self, topo: model.Topology) -> Topology | None:
        base: KeyPath = ("topology",)
        before = len(self.problems)
        ends, link_names, link_ends = self.links(topo.nodes, list(enumerate(topo.links)))
        segments = self.segment_refs(topo.nodes, topo.segments, ends, link_names)
        for node_name, node in topo.nodes.items():
            for iface in node.interfaces:
                if (node_name, iface) not in ends:
                    self.err(
                        (*base, "nodes", node_name, "interfaces", iface),
                        f"interface '{iface}' of node '{node_name}' is on no link or segment; add a link with endpoint {node_name}:{iface}",
                        key=True,
                    )
        if len(self.problems) > before:
            return None
        addressed = self.assign_addresses(topo, link_ends, link_names, segments)
        if addressed is None:
            return None
        nodes = self.nodes(topo, addressed.loopbacks, addressed.interfaces)
        if self.problems:
            return None
        return Topology(nodes, addressed.links, addressed.segments)

    def drill(self, parts: Parts, topology: Topology | None) -> float:
        """Check the references of probes, timeline and objectives; return the drill's end time."""
        nodes = {n.name: n for n in topology.nodes} if topology else {}
        links = link_index(topology) if topology else {}
        probe_names = self.probe_refs(parts.probes, topology, nodes, links)
        step_ids, end_s = self.timeline_refs(parts.steps, parts.invalid_steps, topology, nodes, links)
        self.objective_refs(parts, probe_names, step_ids)
        known_refs(self, parts.known, probe_names | parts.invalid_probes, step_ids.keys() | parts.invalid_steps, parts.steps)
        return end_s

    def objective_refs(self, parts: Parts, probe_names: set[str], step_ids: dict[str, float]) -> None:
        """Check what each objective names (a probe, a step) and that it bounds something."""
        for i, objective in parts.objectives:
            opath: KeyPath = ("expect", i)
            if objective.probe is not None and objective.probe not in probe_names | parts.invalid_probes:
                self.err((*opath, "probe"), f"unknown probe '{objective.probe}'{suggest(objective.probe, probe_names)}")
            if objective.step is not None and objective.step not in step_ids.keys() | parts.invalid_steps:
                self.err(
                    (*opath, "step"), f"no timeline step has id '{objective.step}'{suggest(objective.step, step_ids)}"
                )
            bounds = (
                objective.max_outage,
                objective.max_recovery,
                objective.max_loss,
                objective.latency,
                objective.availability,
            )
            if objective.template is None and all(b is None for b in bounds):
                self.err(
                    opath,
                    "an objective needs a `template` or a bound (max_outage, max_recovery, max_loss, latency, availability)",
                )


def resolve(
    path: Path,
    located: Located,
    whole: model.ScenarioFile | None,
    parts: Parts,
    profiles: dict[str, model.Profile],
) -> tuple[Scenario | None, list[Problem]]:
    """Resolve every reference; a Scenario only when nothing is wrong."""
    resolver = _Resolver(located, profiles, parts.invalid_profiles)
    too_large = check_sizes(located, parts)
    if too_large is not None:  # checking further could take long: stop here
        return None, too_large
    topology = resolver.topology(parts.topology) if parts.topology is not None else None
    if parts.topology is None and parts.node_names is not None:
        resolver.links(parts.node_names, parts.links)
    end_s = resolver.drill(parts, topology)
    if whole is None or topology is None or resolver.problems:
        return None, resolver.problems
    duration_s = whole.duration if whole.duration is not None else end_s + DEFAULT_TAIL_S
    if whole.duration is not None and end_s > whole.duration:
        resolver.err(
            ("duration",),
            f"the timeline runs until {end_s:g} s, past the drill's duration of {whole.duration:g} s; lengthen `duration`",
        )
        return None, resolver.problems
    hosts = _hosts_spec(resolver, path, whole, topology)
    exercise_refs(resolver, whole)
    if resolver.problems:
        return None, resolver.problems
    topology = _mark_degraded_links(topology, whole, profiles)
    scenario = Scenario(
        path,
        whole.name,
        whole.description,
        whole.seed,
        topology,
        profiles,
        whole,
        duration_s,
        located,
        duration_given=whole.duration is not None,
        hosts=hosts,
    )
    problems = check_resolved(scenario)
    if problems:
        return None, problems
    resolved = replace(
        scenario,
        steps=resolve_steps(whole.timeline, topology, profiles),
        probes=resolve_probes(whole.probes, topology),
        objectives=resolve_objectives(whole.expect),
        known=resolve_known(whole.expect_known),
        cues=resolve_cues(whole.timeline),
        exercise=resolve_exercise(whole),
    )
    return resolved, []


def _hosts_spec(resolver: _Resolver, path: Path, whole: model.ScenarioFile, topology: Topology) -> HostsSpec | None:
    """The `hosts:` section resolved (several machines), None when neither it nor any `host:` is
    written. With `placement: given` every node must name its host; whether the inventory has
    those hosts is placement's check (resolving reads no inventory)."""
    section = whole.hosts
    named = [node.name for node in topology.nodes if node.host is not None]
    if section is None and not named:
        return None
    section = section or model.HostsSection()
    placement = section.placement or ("given" if named else "auto")
    if placement == "given" and len(named) < len(topology.nodes):
        missing = [node.name for node in topology.nodes if node.host is None]
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        where: KeyPath = ("hosts", "placement") if section.placement else ("topology", "nodes", missing[0])
        resolver.err(
            where,
            f"placement is given, but node{'s' if len(missing) > 1 else ''} {listed} name{'' if len(missing) > 1 else 's'} "
            "no host; add `host:` to each, or write `placement: auto` under `hosts:` to place the rest",
        )
        return None
    inventory = Path(os.path.normpath(path.parent / section.inventory)) if section.inventory else None
    return HostsSpec(inventory, placement, section.vxlan_port)


def _mark_degraded_links(topology: Topology, whole: model.ScenarioFile, profiles: dict[str, model.Profile]) -> Topology:
    """Mark the links a degrade step impairs with netem parameters: `auto` engine selection needs it."""
    # Each link looks only at the degrade steps naming it, not at the whole timeline.
    by_ref: dict[str, list[Any]] = {}
    for step in whole.timeline:
        if isinstance(step, model.Degrade):
            by_ref.setdefault(step.link, []).append(step)

    def naming(refs: set[str]) -> list[Any]:
        return [step for ref in refs for step in by_ref.get(ref, ())]

    links = tuple(
        replace(link, degraded_netem=True)
        if degraded_with_netem(naming(refs := {link.name, link.a.endpoint, link.b.endpoint}), profiles, refs)
        else link
        for link in topology.links
    )
    return replace(topology, links=links)

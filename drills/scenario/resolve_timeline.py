"""The drill's references: probes (their nodes and targets) and the timeline (links, ends,
nodes, services, profiles, partition groups, restores), and faults that would act on one object
at the same time (see `DrillResolver._overlaps` and drills.scenario.overlap), refused so that no
fault silently undoes another."""

from __future__ import annotations

import ipaddress
import itertools
import math
from typing import Any

from drills.scenario import model, overlap
from drills.scenario.bounds import step_end_s
from drills.scenario.diagnostics import suggest
from drills.scenario.reporter import Reporter
from drills.scenario.resolved import Link, Node, Segment, Topology
from drills.scenario.yamlpos import KeyPath


class DrillResolver(Reporter):
    def probe_refs(
        self, probes: list[tuple[int, Any]], topology: Topology | None, nodes: dict[str, Node], links: dict[str, Link]
    ) -> set[str]:
        """Check the probes' names, nodes and targets; return their names."""
        probe_names: set[str] = set()
        for i, probe in probes:
            ppath: KeyPath = ("probes", i)
            if probe.name in probe_names:
                self.err((*ppath, "name"), f"probe name '{probe.name}' is used twice; give each probe its own name")
            probe_names.add(probe.name)
            if topology is None:
                continue
            if probe.source not in nodes:
                self.err((*ppath, "from"), f"unknown node '{probe.source}'{suggest(probe.source, nodes)}")
            target = getattr(probe, "to", None)
            if target is not None:
                self._target(target, (*ppath, "to"), nodes, links, topology)
        return probe_names

    def timeline_refs(
        self,
        steps: list[tuple[int, Any]],
        invalid_steps: set[str],
        topology: Topology | None,
        nodes: dict[str, Node],
        links: dict[str, Link],
    ) -> tuple[dict[str, float], float]:
        """Check every step's references and refuse overlapping faults; return the step ids (with
        when each starts) and the time the last step is over."""
        step_ids: dict[str, float] = {}
        restores: dict[str, list[float]] = {}
        claimed: list[tuple[int, Any, dict[overlap.Aspect, bool]]] = []
        end_s = 0.0
        for i, step in steps:
            spath: KeyPath = ("timeline", i)
            if isinstance(step, model.RestoreStep):
                if step.restore not in step_ids:
                    if step.restore not in invalid_steps:  # else its problems are reported
                        self.err(
                            (*spath, "restore"),
                            f"no earlier step has id '{step.restore}'{suggest(step.restore, step_ids)}",
                        )
                elif step_ids[step.restore] > step.at:
                    self.err(
                        (*spath, "at"),
                        f"restores '{step.restore}' before that step happens (at {step_ids[step.restore]:g} s); restore it later",
                    )
                else:
                    restores.setdefault(step.restore, []).append(step.at)
                end_s = max(end_s, step.at)
                continue
            if step.id is not None:
                if step.id in step_ids:
                    self.err((*spath, "id"), f"step id '{step.id}' is used twice; give each step its own id")
                step_ids.setdefault(step.id, step.at)
            end_s = max(end_s, step_end_s(step))
            if topology is None:
                continue
            link_ref = getattr(step, "link", None)
            link = None
            if link_ref is not None:
                link = links.get(link_ref)
                if link is None and link_ref in topology.segment_refs:
                    self._segment_step(step, spath, topology.segment(link_ref))
                elif link is None:
                    self.err(
                        (*spath, "link"),
                        f"unknown link '{link_ref}' (name a link or one of its endpoints node:interface){suggest(link_ref, links)}",
                    )
            end = getattr(step, "end", None)
            if end is not None and link is not None and end not in (link.a.endpoint, link.b.endpoint):
                self.err(
                    (*spath, "end"),
                    f"'{end}' is not an end of link {link.name} ({link.a.endpoint} or {link.b.endpoint})",
                )
            node_ref = getattr(step, "node", None)
            if node_ref is not None and node_ref not in nodes:
                self.err((*spath, "node"), f"unknown node '{node_ref}'{suggest(node_ref, nodes)}")
            service = getattr(step, "service", None)
            if service is not None and node_ref in nodes:
                names = [s.name for s in nodes[node_ref].services]
                if service not in names:
                    self.err(
                        (*spath, "service"), f"node '{node_ref}' has no service '{service}'{suggest(service, names)}"
                    )
            profile = getattr(step, "profile", None)
            if profile is not None and profile not in self.profiles and profile not in self.invalid_profiles:
                self.err((*spath, "profile"), self.unknown_profile(profile))
            if isinstance(step, model.Partition):
                seen: dict[str, int] = {}
                for g, group in enumerate(step.groups):
                    for n, member in enumerate(group):
                        mpath = (*spath, "groups", g, n)
                        if member not in nodes:
                            self.err(mpath, f"unknown node '{member}'{suggest(member, nodes)}")
                        elif member in seen:
                            self.err(
                                mpath,
                                f"node '{member}' is in group {seen[member] + 1} already; groups of a partition do not overlap",
                            )
                        seen.setdefault(member, g)
            if step.fault not in overlap.ONE_SHOT_FAULTS:
                claimed.append((i, step, overlap.claims(step, nodes, links, topology)))
        self._overlaps(claimed, restores)

        return step_ids, end_s

    def _overlaps(
        self, claimed: list[tuple[int, Any, dict[overlap.Aspect, bool]]], restores: dict[str, list[float]]
    ) -> None:
        """Refuse a fault whose repetitions overlap each other (a revert would end the next one
        early), and two faults that claim one aspect at overlapping times (see `overlap.claims` for
        what composes). One problem per pair of steps, located at the one that starts later."""
        spans = self._spans(claimed, restores)
        # Only pairs that claim one thing at about the same time are compared (in the order a
        # comparison of every pair would report them).
        candidates = overlap.candidate_pairs([c for _, _, c in claimed], [spans[i] for i, _, _ in claimed])
        for x, y in candidates:
            self._conflict(claimed[x], claimed[y], spans)

    def _spans(
        self, claimed: list[tuple[int, Any, dict[overlap.Aspect, bool]]], restores: dict[str, list[float]]
    ) -> dict[int, list[tuple[float, float]]]:
        """When each step is in effect, by timeline index; a step overlapping itself is refused."""
        spans: dict[int, list[tuple[float, float]]] = {}
        for i, step, _ in claimed:
            occurrences = overlap.occurrences(step, restores.get(step.id, []) if step.id else [])
            if any(a[1] > b[0] for a, b in itertools.pairwise(occurrences)) or overlap.flap_runs_over(step):
                self._self_overlap(i, step)
            spans[i] = overlap.union(occurrences)
        return spans

    def _conflict(
        self,
        earlier: tuple[int, Any, dict[overlap.Aspect, bool]],
        later_in_file: tuple[int, Any, dict[overlap.Aspect, bool]],
        spans: dict[int, list[tuple[float, float]]],
    ) -> None:
        """The problem of two steps (in file order) that claim one aspect at one moment, if they do."""
        (i, step_i, claims_i), (j, step_j, claims_j) = earlier, later_in_file
        shared = [a for a in claims_j if a in claims_i and (claims_i[a] or claims_j[a])]
        hit = overlap.first_overlap(spans[i], spans[j]) if shared else None
        if hit is None:
            return
        # The one that starts later (in file order at the same instant) gets the problem.
        first, later = sorted([(hit[0], i, step_i), (hit[1], j, step_j)], key=lambda t: (t[0][0], t[1]))
        (from_s, to_s), first_index, first_step = first
        until = "the end of the drill" if math.isinf(to_s) else overlap.clock_text(to_s)
        self.err(
            ("timeline", later[1]),
            f"{overlap.step_name(later[2])} at {overlap.clock_text(later[0][0])} overlaps {overlap.step_name(first_step)} on "
            f"{overlap.aspect_text(shared[0])} ({self.line_of(('timeline', first_index))}) from {overlap.clock_text(from_s)} "
            f"to {until}; {overlap.CONFLICT_REASON[shared[0][0]]}: move one, or {overlap.shorten_hint(first_step, to_s)}",
        )

    def _self_overlap(self, i: int, step: Any) -> None:
        if isinstance(step, model.LinkFlap):
            down_s = step.period * step.duty / 100.0
            self.err(
                ("timeline", i, "jitter"),
                f"down periods of {down_s:g} s, each up to {step.jitter:g} s late, can run into the next one (every {step.period:g} s); keep `jitter` at most {step.period - down_s:g} s",
            )
        elif step.duration is None:
            self.err(
                ("timeline", i, "repeat"),
                "each repetition lasts until the end of the drill, so they overlap; give the step a `for:` shorter than `repeat.every`",
            )
        else:
            self.err(
                ("timeline", i, "repeat"),
                f"each repetition lasts {step.duration:g} s but one starts every {step.repeat.every:g} s, so they overlap; make `repeat.every` longer than `for`",
            )

    def _segment_step(self, step: Any, spath: KeyPath, segment: Segment) -> None:
        """A step naming a segment (`link: lan`) or a member of one (`link: gw1:lan0`): a
        link-down or link-flap of the whole segment or of one member's port (`end` names that
        member too), or a degrade of one member's port; no other fault takes a segment."""
        kind = step.fault
        if kind == "degrade" and step.link == segment.name:
            self.err(
                (*spath, "link"),
                f"'{step.link}' is a LAN segment; degrade one member's port: `link: NODE:IFACE` "
                f"(one of {', '.join(m.endpoint for m in segment.members)}; a-to-b is member -> segment)",
            )
            return
        if kind not in ("link-down", "link-flap", "degrade"):
            self.err(
                (*spath, "link"),
                f"'{step.link}' is on LAN segment {segment.name}; {kind} applies to point-to-point links only: "
                "cut the nodes apart with a `partition`, or blackhole a point-to-point link",
            )
            return
        end = getattr(step, "end", None)
        members = [member.endpoint for member in segment.members]
        if end is not None and end not in members:
            self.err((*spath, "end"), f"'{end}' is not a member of segment {segment.name} ({', '.join(members)})")
        elif end is not None and step.link != segment.name and end != step.link:
            self.err((*spath, "end"), f"'{end}' is not the member '{step.link}' this step names; drop `end` or name the segment")

    def _target(
        self, text: str, path: KeyPath, nodes: dict[str, Node], links: dict[str, Link], topology: Topology | None = None
    ) -> None:
        if text in nodes:
            if nodes[text].primary_address is None:
                self.err(path, f"node '{text}' has no address to aim at; give it a loopback or name an endpoint")
            return
        if text in links and ":" in text:
            return
        if topology is not None and ":" in text and text in topology.segment_refs:  # a segment member
            return
        try:
            ipaddress.ip_address(text)
            return
        except ValueError:
            pass
        self.err(
            path,
            f"unknown target '{text}' (name a node, an endpoint node:interface or an address){suggest(text, list(nodes) + list(links))}",
        )


def link_index(topology: Topology) -> dict[str, Link]:
    """Links by name and by each endpoint, the two ways a step can name a link."""
    index: dict[str, Link] = {}
    for link in topology.links:
        index[link.name] = link
        index[link.a.endpoint] = link
        index[link.b.endpoint] = link
    return index

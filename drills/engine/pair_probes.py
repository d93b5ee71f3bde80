"""Per-pair results of partitions inside a drill: which pairs each partition means to cut, the
one-way probe mesh across them, and the judgement of every pair once the drill is over.

`run_drill` starts the mesh (drills.probes.pair_mesh) beside the scenario's own probes when the
timeline has a `partition`, and stops it with them; the figures come from
drills.measure.pair_result, so they follow the same definitions and bounds as every probe's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from drills.clock import Clock
from drills.engine.faults import Fault
from drills.engine.filter_faults import Partition, blocked_pairs
from drills.measure import PairResult, Window, lost_flags, pair_result
from drills.probes.pair_mesh import PAIR_RATE_PPS, PairEnd, PairMesh, pair_name
from drills.probes.udp_stream import StreamRecord
from drills.scenario.resolved import Topology

if TYPE_CHECKING:
    from drills.engine.drill import StepRecord

LATE_AFTER_S = 2.0  # forwarding-delay threshold of the pair probes (RFC 2544's suggestion)


def partition_pairs(faults: Mapping[str, Fault]) -> dict[str, list[tuple[str, str, bool]]]:
    """Per partition step: every ordered (source, destination) node pair across its groups, and
    whether the partition is meant to cut it."""
    found: dict[str, list[tuple[str, str, bool]]] = {}
    for label, fault in faults.items():
        if not isinstance(fault, Partition):
            continue
        blocked = set(blocked_pairs(fault.groups, fault.one_way))
        found[label] = [
            (source, target, (i, j) in blocked)
            for i, sources in enumerate(fault.groups)
            for j, targets in enumerate(fault.groups)
            if i != j
            for source in sources
            for target in targets
            if source != target
        ]
    return found


def start_mesh(
    topology: Topology, faults: Mapping[str, Fault], namespaces: dict[str, str], clock: Clock, seed: int
) -> PairMesh | None:
    """The one-way probe mesh across every partition of the timeline, started; None without
    partitions. A pair whose nodes have no address of one family is left out (and reported
    as unreachable)."""
    wanted: list[tuple[str, str]] = []
    for pairs in partition_pairs(faults).values():
        wanted += [(s, t) for s, t, _cut in pairs if (s, t) not in wanted]
    ends: list[tuple[PairEnd, PairEnd]] = []
    for source, target in wanted:
        a, b = topology.node(source).primary_address, topology.node(target).primary_address
        if a is None or b is None or a.version != b.version:
            continue
        ends.append((PairEnd(source, namespaces[source], a), PairEnd(target, namespaces[target], b)))
    if not ends:
        return None
    mesh = PairMesh(ends, clock, tag=(seed ^ 0x9A15) & 0xFFFFFFFF)
    mesh.start()
    return mesh


def analyse(
    steps: Sequence[StepRecord],
    faults: Mapping[str, Fault],
    records: list[StreamRecord],
    t0: float,
    duration_s: float,
    warmup_s: float,
    sustain_s: float,
) -> list[PairResult]:
    """Every pair of every partition step that was applied, from the mesh's one-way records.
    The baseline is the drill's (after the warm-up, before the first fault); recovery from a
    lift is judged until the next fault event, as for the probes."""
    by_name = {r.name: r for r in records}
    fault_steps = [s for s in steps if s.fault != "note"]
    first_fault_s = fault_steps[0].issued_s if fault_steps else duration_s
    results: list[PairResult] = []
    for label, pairs in partition_pairs(faults).items():
        applied = next((s for s in steps if s.label == label and s.kind == "apply"), None)
        if applied is None:
            continue  # the drill stopped before this step
        lifted = next((s for s in steps if s.label == label and s.kind == "revert"), None)
        end_s = t0 + (lifted.issued_s if lifted is not None else duration_s)
        after_s = t0 + next(
            (s.issued_s for s in fault_steps if lifted is not None and s.issued_s > lifted.issued_s), duration_s
        )
        for source, target, cut in pairs:
            name = pair_name(source, target)
            record = by_name.get(name) or StreamRecord(name, PAIR_RATE_PPS, 0)  # no address: nothing sent
            results.append(
                pair_result(
                    record, lost_flags(record, LATE_AFTER_S), step=label, source=source, target=target,
                    expected_cut=cut, baseline_span=(t0 + warmup_s, t0 + first_fault_s),
                    applied=Window(label, "apply", t0 + applied.issued_s, end_s),
                    apply_confirmed_s=t0 + applied.confirmed_s,
                    lifted=None if lifted is None else Window(label, "revert", end_s, after_s),
                    lift_confirmed_s=None if lifted is None else t0 + lifted.confirmed_s,
                    sustain_s=sustain_s,
                )
            )  # fmt: skip
    return results

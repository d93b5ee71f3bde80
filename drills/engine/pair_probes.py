"""Per-pair results of partitions inside a drill: which pairs each partition means to cut, the
one-way probe mesh across them, and the judgement of every pair once the drill is over.

drills.engine.probe_start starts the mesh (drills.probes.pair_mesh) beside the scenario's own
probes when the timeline has a `partition`, and stops it with them; the figures come from
drills.measure.pair_result, so they follow the same definitions and bounds as every probe's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from drills.drill_result import LATE_AFTER_S
from drills.engine.faults import Fault
from drills.engine.filter_faults import Partition, blocked_pairs
from drills.measure import PairResult, Window, lost_flags, pair_result
from drills.probes.pair_mesh import PAIR_RATE_PPS, pair_name
from drills.records import StreamRecord

if TYPE_CHECKING:
    from drills.engine.drill import StepRecord



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

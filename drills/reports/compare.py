"""Compare the recovery figures of two runs of a drill: the regression check for CI.

A figure regressed when run B is worse than run A by more than the two accuracy bounds
together, so noise within the stated accuracy never fails a build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FIGURES = ("outage_s", "max_loss_period_s", "time_to_recover_s")


@dataclass(frozen=True)
class Difference:
    probe: str
    event: str
    figure: str
    a_s: float | None  # None: never recovered
    b_s: float | None
    tolerance_s: float  # sum of both accuracy bounds
    regressed: bool
    improved: bool


@dataclass(frozen=True)
class Comparison:
    scenario_a: str
    scenario_b: str
    differences: list[Difference]
    only_in_a: list[str]
    only_in_b: list[str]
    # Partition pairs judged as intended in A and not in B ("step: a->b: cut in A, open in B").
    pair_regressions: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(d.regressed for d in self.differences) or bool(self.pair_regressions)

    def nothing_in_common(self) -> str | None:
        """Why the two runs cannot be compared (no figure measured by both), else None: a
        comparison of nothing must never read as "no regression"."""
        if self.differences:
            return None
        measured = "; ".join(
            f"{side} ({scenario}) measured {', '.join(only[:3]) + (', ...' if len(only) > 3 else '') if only else 'nothing'}"
            for side, scenario, only in (("A", self.scenario_a, self.only_in_a), ("B", self.scenario_b, self.only_in_b))
        )
        return f"the two runs have no figure in common ({measured}): nothing to compare; compare two runs of the same scenario"


def _key(metric: dict[str, Any]) -> tuple[str, str, str]:
    return (metric["probe"], metric["event"], metric["kind"])


def _worse(a: float | None, b: float | None, tolerance: float) -> bool:
    if b is None:
        return a is not None  # B never recovered where A did
    return a is not None and b > a + tolerance


def compare(a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    """Every figure of every (probe, event) both runs measured."""
    metrics_a = {_key(m): m for m in a["metrics"]}
    metrics_b = {_key(m): m for m in b["metrics"]}
    differences = []
    for key in sorted(metrics_a.keys() & metrics_b.keys()):
        ma, mb = metrics_a[key], metrics_b[key]
        tolerance = float(ma["accuracy_s"]) + float(mb["accuracy_s"])
        for figure in FIGURES:
            va, vb = ma[figure], mb[figure]
            differences.append(
                Difference(
                    probe=key[0],
                    event=f"{key[1]} ({key[2]})",
                    figure=figure,
                    a_s=va,
                    b_s=vb,
                    tolerance_s=tolerance,
                    regressed=_worse(va, vb, tolerance),
                    improved=_worse(vb, va, tolerance),
                )
            )

    pair_regressions = _pairs(a.get("partition_pairs", []), b.get("partition_pairs", []), differences)

    def label(key: tuple[str, str, str]) -> str:
        return f"{key[0]} / {key[1]} ({key[2]})"

    return Comparison(
        scenario_a=a["scenario"]["name"],
        scenario_b=b["scenario"]["name"],
        differences=differences,
        only_in_a=[label(k) for k in sorted(metrics_a.keys() - metrics_b.keys())],
        only_in_b=[label(k) for k in sorted(metrics_b.keys() - metrics_a.keys())],
        pair_regressions=pair_regressions,
    )


def _pairs(a: list[dict[str, Any]], b: list[dict[str, Any]], differences: list[Difference]) -> list[str]:
    """Partition pairs both runs judged: recovery after the lift compared like any figure (added
    to `differences`); a pair as intended in A and not in B is returned as a regression."""
    pairs_a = {(p["step"], p["source"], p["target"]): p for p in a}
    pairs_b = {(p["step"], p["source"], p["target"]): p for p in b}
    flips = []
    for key in sorted(pairs_a.keys() & pairs_b.keys()):
        pa, pb = pairs_a[key], pairs_b[key]
        tolerance = float(pa["recover_accuracy_s"]) + float(pb["recover_accuracy_s"])
        va, vb = pa["time_to_recover_s"], pb["time_to_recover_s"]
        differences.append(
            Difference(
                probe=f"{key[1]}->{key[2]}", event=f"{key[0]} (partition pair, after the lift)",
                figure="time_to_recover_s", a_s=va, b_s=vb, tolerance_s=tolerance,
                regressed=_worse(va, vb, tolerance), improved=_worse(vb, va, tolerance),
            )
        )  # fmt: skip
        if pa["matches"] is True and pb["matches"] is not True:
            flips.append(f"{key[0]}: {key[1]}->{key[2]}: {pa['observed']} in A, {pb['observed']} in B (intended {pb['expected']})")
    return flips

"""Compare the recovery figures of two runs of a drill: the regression check for CI.

A figure regressed when run B is worse than run A by more than the two accuracy bounds
together, so noise within the stated accuracy never fails a build.
"""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def regressed(self) -> bool:
        return any(d.regressed for d in self.differences)


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

    def label(key: tuple[str, str, str]) -> str:
        return f"{key[0]} / {key[1]} ({key[2]})"

    return Comparison(
        scenario_a=a["scenario"]["name"],
        scenario_b=b["scenario"]["name"],
        differences=differences,
        only_in_a=[label(k) for k in sorted(metrics_a.keys() - metrics_b.keys())],
        only_in_b=[label(k) for k in sorted(metrics_b.keys() - metrics_a.keys())],
    )

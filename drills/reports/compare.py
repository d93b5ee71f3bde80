"""Compare the figures of two runs of a drill: the regression check for CI.

A figure regressed when run B is worse than run A by more than the two accuracy bounds
together, so noise within the stated accuracy never fails a build. The figures:
- recovery figures (outage, longest loss period, recovery time) per probe and event, and each
  partition pair's recovery after the lift: the accuracy each run states;
- round-trip percentiles (p50, p95, p99) per probe and phase: a percentile's accuracy is taken
  as its run's spread in that phase (p99 - p50: a tail estimated from a few hundred packets
  moves that much between runs), with a floor of RTT_FLOOR_S (a shared machine's scheduling
  moves a round trip by that much): a shift of the whole distribution is a regression, a
  noisier tail is not;
- availability per probe: one window of each run (100 / windows %);
- loss per probe and phase: one packet of each run (100 / sent %) plus the sampling error of a
  loss share at one in a million (4.9 binomial standard deviations), so random loss by design
  (a satellite link) does not read as a regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

FIGURES = ("outage_s", "max_loss_period_s", "time_to_recover_s")
RTT_FIGURES = ("rtt_p50_s", "rtt_p95_s", "rtt_p99_s")
PHASES = ("baseline", "fault", "recovery", "all")
RTT_FLOOR_S = 0.0005  # per run: a round trip's scheduling noise on a busy host (see _latencies)
Z_ONE_IN_A_MILLION = 4.89  # normal quantile, two-sided 1e-6: the loss share's sampling error


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
class ShareDifference:
    """A share (availability, loss) of one probe in both runs, in percent."""

    probe: str
    scope: str  # "whole drill" or the phase
    figure: str  # "availability" | "loss"
    a_pct: float
    b_pct: float
    tolerance_pct: float
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
    shares: list[ShareDifference] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(d.regressed for d in self.differences) or bool(self.pair_regressions) or any(d.regressed for d in self.shares)

    def nothing_in_common(self) -> str | None:
        """Why the two runs cannot be compared (no figure measured by both), else None: a
        comparison of nothing must never read as "no regression"."""
        if self.differences or self.shares:
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
    differences += _latencies(a, b)

    def label(key: tuple[str, str, str]) -> str:
        return f"{key[0]} / {key[1]} ({key[2]})"

    return Comparison(
        scenario_a=a["scenario"]["name"],
        scenario_b=b["scenario"]["name"],
        differences=differences,
        only_in_a=[label(k) for k in sorted(metrics_a.keys() - metrics_b.keys())],
        only_in_b=[label(k) for k in sorted(metrics_b.keys() - metrics_a.keys())],
        pair_regressions=pair_regressions,
        shares=_availability(a, b) + _losses(a, b),
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


def _phases(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(probe, p["phase"]): p for probe, phases in results.get("phases", {}).items() for p in phases}


def _spread_s(phase: dict[str, Any]) -> float:
    """A run's round-trip spread in a phase (p99 - p50), at least RTT_FLOOR_S: its percentiles' accuracy."""
    p50, p99 = phase.get("rtt_p50_s"), phase.get("rtt_p99_s")
    spread = float(p99) - float(p50) if p50 is not None and p99 is not None else 0.0
    return max(spread, RTT_FLOOR_S)


def _latencies(a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    """Round-trip percentiles of every (probe, phase) both runs measured."""
    phases_a, phases_b = _phases(a), _phases(b)
    out = []
    for key in sorted(phases_a.keys() & phases_b.keys(), key=lambda k: (k[0], PHASES.index(k[1]) if k[1] in PHASES else 9)):
        pa, pb = phases_a[key], phases_b[key]
        tolerance = _spread_s(pa) + _spread_s(pb)
        for figure in RTT_FIGURES:
            va, vb = pa.get(figure), pb.get(figure)
            if va is None and vb is None:
                continue  # nothing came back in either run: no percentile to compare
            out.append(
                Difference(
                    probe=key[0], event=f"{key[1]} phase", figure=figure, a_s=va, b_s=vb, tolerance_s=tolerance,
                    regressed=_worse(va, vb, tolerance), improved=_worse(vb, va, tolerance),
                )
            )  # fmt: skip
    return out


def _availability(a: dict[str, Any], b: dict[str, Any]) -> list[ShareDifference]:
    avail_a, avail_b = a.get("availability", {}), b.get("availability", {})
    out = []
    for probe in sorted(avail_a.keys() & avail_b.keys()):
        fa, fb = avail_a[probe], avail_b[probe]
        if not fa["windows"] or not fb["windows"]:
            continue
        tolerance = 100.0 / fa["windows"] + 100.0 / fb["windows"]  # one window of each
        va, vb = float(fa["pct"]), float(fb["pct"])
        out.append(ShareDifference(probe, "whole drill", "availability", va, vb, tolerance, vb < va - tolerance, vb > va + tolerance))
    return out


def _loss_error_pct(phase: dict[str, Any]) -> float:
    """One packet of the phase plus its loss share's sampling error at one in a million."""
    sent = int(phase["sent"])
    share = float(phase["loss_pct"]) / 100.0
    return 100.0 / sent + 100.0 * Z_ONE_IN_A_MILLION * math.sqrt(share * (1.0 - share) / sent)


def _losses(a: dict[str, Any], b: dict[str, Any]) -> list[ShareDifference]:
    phases_a, phases_b = _phases(a), _phases(b)
    out = []
    for key in sorted(phases_a.keys() & phases_b.keys()):
        pa, pb = phases_a[key], phases_b[key]
        if not pa["sent"] or not pb["sent"]:
            continue
        tolerance = _loss_error_pct(pa) + _loss_error_pct(pb)
        va, vb = float(pa["loss_pct"]), float(pb["loss_pct"])
        out.append(ShareDifference(key[0], f"{key[1]} phase", "loss", va, vb, tolerance, vb > va + tolerance, vb < va - tolerance))
    return out

"""compare.html (`drill compare A B --html FILE`, `drill run --baseline`) and trials.html
(`drill run --trials N`): the same self-contained page as report.html, for two runs and for a set.

compare.html: the verdict (REGRESSED / NO REGRESSION / NOTHING TO COMPARE) and which figures
regressed, then every figure both runs measured with A, B, their difference and the tolerance
(both accuracy bounds), each drawn as a small bar (A's tolerance band, A and B marked), the
availability and loss shares, the partition pairs that flipped, and what only one run measured.

trials.html: the outcome over the trials and why, the validation table of the known answers
(when the scenario states any), and every figure's min / median / max over the trials drawn as
a range (± the largest accuracy shaded), then the partition pairs over the trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drills.known import expected_text
from drills.reports.compare import Comparison
from drills.reports.fmt import ms
from drills.reports.html_page import (
    FAIL,
    INCONCLUSIVE,
    OUTCOME_CLASS,
    PASS,
    Cell,
    Row,
    bullets,
    esc,
    mark,
    page,
    paragraph,
    section,
    table,
    verdict_header,
)
from drills.reports.validation import VALIDATION_COLUMNS, measured_spread

BAR_W, BAR_H = 160, 16


def never(value_s: float | None) -> str:
    """A recovery figure: `12.3 ms`, or `never` (B never recovered where A did)."""
    return ms(value_s, none="never")


def _bar(low: float, high: float, marks: Sequence[tuple[float, str, str]], scale: float) -> Cell:
    """A small inline SVG: a shaded span [low, high] and a tick per mark (value, colour, tooltip),
    on a common scale (`scale` is the right edge), so rows of one figure compare by eye."""
    scale = scale or 1.0

    def x(v: float) -> float:
        return 2 + (BAR_W - 4) * min(max(v / scale, 0.0), 1.0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_W}" height="{BAR_H}" viewBox="0 0 {BAR_W} {BAR_H}">',
        f'<line x1="2" y1="{BAR_H / 2}" x2="{BAR_W - 2}" y2="{BAR_H / 2}" stroke="#d0d7de"/>',
        f'<rect x="{x(low):.1f}" y="3" width="{max(x(high) - x(low), 1):.1f}" height="{BAR_H - 6}" fill="#8ab4f8" fill-opacity="0.45"/>',
    ]
    parts += [
        f'<line x1="{x(v):.1f}" y1="1" x2="{x(v):.1f}" y2="{BAR_H - 1}" stroke="{colour}" stroke-width="2"><title>{esc(tip)}</title></line>'
        for v, colour, tip in marks
    ]
    return Cell("".join(parts) + "</svg>", "range", markup=True) if marks else Cell("", "range")


# --------------------------------------------------------------------------- compare.html


def _change(d: Any) -> str:
    if d.a_s is None or d.b_s is None:
        return "-"
    return f"{(d.b_s - d.a_s) * 1e3:+.1f} ms"


def render_compare_html(comparison: Comparison, run_a: str, run_b: str) -> str:
    """compare.html of `drill compare RUN_A RUN_B`."""
    nothing = comparison.nothing_in_common()
    if nothing is not None:
        cls, outcome = INCONCLUSIVE, "NOTHING TO COMPARE"
    else:
        cls, outcome = (FAIL, "REGRESSED") if comparison.regressed else (PASS, "NO REGRESSION")
    reasons = [f"{nothing[0].upper()}{nothing[1:]}."] if nothing else []
    reasons += [
        f"{d.probe}, {d.event}: {d.figure.removesuffix('_s')} {never(d.a_s)} in A, {never(d.b_s)} in B "
        f"(tolerance ± {d.tolerance_s * 1e3:.1f} ms)."
        for d in comparison.differences
        if d.regressed
    ]
    reasons += [
        f"{d.probe}, {d.scope}: {d.figure} {d.a_pct:.3f} % in A, {d.b_pct:.3f} % in B (tolerance ± {d.tolerance_pct:.3f} %)."
        for d in comparison.shares
        if d.regressed
    ]
    reasons += [f"Partition pair {flip}." for flip in comparison.pair_regressions]
    if not reasons:
        reasons = [f"{len(comparison.differences) + len(comparison.shares)} figures compared: none worse beyond both accuracy bounds."]
    scenarios = comparison.scenario_a if comparison.scenario_a == comparison.scenario_b else f"{comparison.scenario_a} / {comparison.scenario_b}"
    facts = f"A (reference): {run_a} · B (checked): {run_b}"
    body = [verdict_header(f"Compare: {scenarios}", cls, outcome, facts, reasons)]
    scale: dict[str, float] = {}  # per figure: rows of one figure compare by eye, RTTs are not drowned by outages
    for d in comparison.differences:
        for v in (d.a_s, d.b_s):
            if v is not None:
                scale[d.figure] = max(scale.get(d.figure, 0.0), v + d.tolerance_s)
    rows = []
    for d in comparison.differences:
        tag = "REGRESSED" if d.regressed else "improved" if d.improved else "same"
        marks = [(v, colour, f"{side} {never(v)}") for v, colour, side in ((d.a_s, "#57606a", "A"), (d.b_s, "#b3261e" if d.regressed else "#1e7d32", "B")) if v is not None]
        band = (d.a_s - d.tolerance_s, d.a_s + d.tolerance_s) if d.a_s is not None else (0.0, 0.0)
        rows.append(Row([
            mark(tag), d.probe, d.event, d.figure.removesuffix("_s"), Cell(never(d.a_s), "num"), Cell(never(d.b_s), "num"),
            Cell(_change(d), "num"), Cell(f"± {d.tolerance_s * 1e3:.1f} ms", "num"), _bar(*band, marks, scale.get(d.figure, 0.0) * 1.15),
        ], FAIL if d.regressed else PASS if d.improved else ""))  # fmt: skip
    note = paragraph("B regressed on a figure when it is worse than A by more than both runs' accuracy bounds "
                     "together. The bar: A's tolerance shaded, A grey, B green (or red when it regressed).")  # fmt: skip
    header = ["", "probe", "event", "figure", "A", "B", "B - A", "tolerance", "A and B"]
    body.append(section("figures", "Recovery and latency figures", note, table(header, rows, "differences"), keep=True))
    if comparison.shares:
        share_rows = [
            Row([
                mark("REGRESSED" if d.regressed else "improved" if d.improved else "same"), d.probe, d.scope, d.figure,
                Cell(f"{d.a_pct:.3f} %", "num"), Cell(f"{d.b_pct:.3f} %", "num"), Cell(f"± {d.tolerance_pct:.3f} %", "num"),
            ], FAIL if d.regressed else PASS if d.improved else "")
            for d in comparison.shares
        ]  # fmt: skip
        body.append(section("shares", "Availability and loss", table(["", "probe", "scope", "figure", "A", "B", "tolerance"], share_rows, "shares")))
    if comparison.pair_regressions:
        body.append(section("pairs", "Partition pairs as intended in A, not in B", bullets(comparison.pair_regressions, "pair-regressions")))
    if comparison.only_in_a or comparison.only_in_b:
        only = [f"only in A: {label}" for label in comparison.only_in_a] + [f"only in B: {label}" for label in comparison.only_in_b]
        body.append(section("only", "Measured by one run only (not compared)", bullets(only, "only")))
    return page(f"Compare: {scenarios}", body)


# --------------------------------------------------------------------------- trials.html

VERDICT_CLASS = {"PASS": PASS, "FAIL": FAIL, "INCONCLUSIVE": INCONCLUSIVE}


def _trials_reasons(summary: dict[str, Any]) -> list[str]:
    out = [f"Trial {k}: {outcome}." for k, outcome in enumerate(summary["outcomes"], 1) if outcome != "passed"]
    out += [
        f"Known answer {row['verdict']}: {row['name']} ({row['event']}): {row['passed']} of {row['trials']} trials passed."
        for row in summary.get("validation", [])
        if row["verdict"] != "PASS"
    ]
    for p in summary.get("pair_spreads", []):
        pair = f"Partition pair {p['step']}: {p['source']} → {p['target']}"
        if p["mismatched"]:
            out.append(f"{pair} not as intended ({p['expected']}) in {p['mismatched']} of {p['trials']} trials.")
        if p["unjudged"]:
            out.append(f"{pair} could not be judged in {p['unjudged']} of {p['trials']} trials.")
    return out or [f"Every trial passed ({summary['trials']})."]


def _validation(rows: list[dict[str, Any]]) -> str:
    with_scenario = any("scenario" in row for row in rows)
    table_rows = [
        Row([
            *([row.get("scenario", "")] if with_scenario else []), row["name"] if row["event"].rsplit(" (", 1)[0] == row["step"]
            else f"{row['name']} ({row['event']})", row["figure"],
            Cell(expected_text(row["value_s"], row["low_s"], row["high_s"], row["tolerance_s"]), "num"), row["source"],
            Cell(measured_spread(row["measured"]), "num"), Cell(f"{row['passed']} of {row['trials']}", "num"),
            mark(row["verdict"]),
        ], VERDICT_CLASS.get(row["verdict"], INCONCLUSIVE))
        for row in rows
    ]  # fmt: skip
    note = paragraph("A trial passes a known answer when the measured figure ± its accuracy lies wholly inside the "
                     "expected window. PASS: every trial passed; FAIL: some trial failed; INCONCLUSIVE: the rest.")  # fmt: skip
    header = (["scenario"] if with_scenario else []) + VALIDATION_COLUMNS
    return section("validation", "Validation: known answers", note, table(header, table_rows, "validation"), keep=True)


def _spreads(spreads: list[dict[str, Any]]) -> str:
    scale: dict[str, float] = {}
    for s in spreads:
        if s["max_s"] is not None:
            scale[s["figure"]] = max(scale.get(s["figure"], 0.0), (s["max_s"] + s["accuracy_s"]) * 1.1)
    rows = []
    for s in spreads:
        bar = (
            _bar(s["min_s"] - s["accuracy_s"], s["max_s"] + s["accuracy_s"],
                 [(s["min_s"], "#57606a", "min"), (s["median_s"], "#1f2328", "median"), (s["max_s"], "#57606a", "max")],
                 scale.get(s["figure"], 1.0))
            if s["min_s"] is not None else Cell("")
        )  # fmt: skip
        never = s["never"] if s["figure"] == "time_to_recover_s" else ""
        rows.append(Row([
            s["probe"], s["event"], s["figure"].removesuffix("_s"), *(Cell(ms(s[k]), "num") for k in ("min_s", "median_s", "max_s")),
            bar, Cell(never, "num"), Cell(f"± {s['accuracy_s'] * 1e3:.1f} ms", "num"),
        ], FAIL if never else ""))  # fmt: skip
    header = ["probe", "event", "figure", "min", "median", "max", "range (± accuracy shaded)", "never recovered", "accuracy"]
    return section("spreads", "Every figure: min / median / max over the trials", table(header, rows, "spreads"))


def _pair_spreads(pairs: list[dict[str, Any]]) -> str:
    if not pairs:
        return ""

    def spread(f: dict[str, Any]) -> str:
        return "-" if f["min_s"] is None else f"{never(f['min_s'])} / {never(f['median_s'])} / {never(f['max_s'])}"

    rows = [
        Row([
            mark("PASS" if p["consistent"] else "FAIL"), p["step"], Cell(f"{p['source']} → {p['target']}", "nowrap"), p["expected"],
            ", ".join(o or "-" for o in p["observed"]), Cell(f"{p['matched']} / {p['mismatched']} / {p['unjudged']}", "num"),
            Cell(spread(p["time_to_detect_s"]), "num"), Cell(spread(p["time_to_recover_s"]), "num"),
        ], PASS if p["consistent"] else FAIL)
        for p in pairs
    ]  # fmt: skip
    header = ["", "step", "pair", "intended", "observed per trial", "matched / not / unjudged", "detect", "recover after lift"]
    return section("pair-spreads", "Partition pairs over the trials", table(header, rows, "pair-spreads"))


def render_trials_html(summary: dict[str, Any], title: str) -> str:
    """trials.html from trials.json's summary (`drill run --trials N`)."""
    outcome = str(summary["outcome"])
    facts = f"{summary['trials']} trials: {', '.join(summary['outcomes'])}"
    body = [verdict_header(f"Trials: {title}", OUTCOME_CLASS.get(outcome, INCONCLUSIVE), outcome.upper(), facts, _trials_reasons(summary))]
    if summary.get("validation"):
        body.append(_validation(summary["validation"]))
    body.append(_spreads(summary.get("spreads", [])))
    body.append(_pair_spreads(summary.get("pair_spreads", [])))
    return page(f"Trials: {title}", body)

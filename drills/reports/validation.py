"""The validation table (`drill run --trials N` on a scenario with `expect_known:`) and trials.md.

Rendered from trials.json (never live objects), like every report. One row per known answer
and event: the mechanism (the answer's name), the expected figure (value ± tolerance, or its
window) with its source, the measured figure's min / median / max over the trials ± the
largest accuracy of any trial, the count of trials that passed, and the verdict (PASS only when
every trial passed; FAIL when any failed; else INCONCLUSIVE). Every cell is escaped as in
report.md.
"""

from __future__ import annotations

from typing import Any

from drills.known import expected_text
from drills.reports.markdown import Escape, md_text

VALIDATION_COLUMNS = ["mechanism", "figure", "expected", "source", "measured min / median / max", "trials passed", "verdict"]


def measured_spread(measured: dict[str, Any]) -> str:
    """`2000.1 / 2000.9 / 2001.8 ± 2.4 ms`, with the trials that measured nothing said."""
    if measured["min_s"] is None:
        return "not measured" if not measured["missing"] else "never recovered"
    text = (
        f"{measured['min_s'] * 1e3:.1f} / {measured['median_s'] * 1e3:.1f} / {measured['max_s'] * 1e3:.1f} "
        f"± {measured['accuracy_s'] * 1e3:.1f} ms"
    )
    return text + (f" (never recovered: {measured['missing']})" if measured["missing"] else "")


def validation_lines(rows: list[dict[str, Any]], esc: Escape = md_text) -> list[str]:
    """The validation table in Markdown; rows are trials.json `validation` entries, each with
    an optional `scenario` (a column of its own when any row has one)."""
    with_scenario = any("scenario" in row for row in rows)
    header = (["scenario"] if with_scenario else []) + VALIDATION_COLUMNS
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [
            *([row.get("scenario", "")] if with_scenario else []),
            _mechanism(row),
            row["figure"],
            expected_text(row["value_s"], row["low_s"], row["high_s"], row["tolerance_s"]),
            row["source"],
            measured_spread(row["measured"]),
            f"{row['passed']} of {row['trials']}",
            row["verdict"],
        ]
        lines.append("| " + " | ".join(esc(cell) for cell in cells) + " |")
    return lines


def _mechanism(row: dict[str, Any]) -> str:
    """The known answer's name; with the event when it is one repetition of a repeated step (an
    unrepeated step's event is labelled with the step's id)."""
    label = str(row["event"]).rsplit(" (", 1)[0]
    return str(row["name"]) if label == row["step"] else f"{row['name']} ({row['event']})"


def render_trials_markdown(summary: dict[str, Any], title: str, esc: Escape = md_text) -> str:
    """trials.md: the outcome, the validation table (when the scenario states known answers) and
    the spread of every figure over the trials."""
    lines = [
        f"# Trials: {esc(title)}",
        "",
        f"**Outcome: {esc(str(summary['outcome']).upper())}** over {summary['trials']} trials "
        f"({esc(', '.join(summary['outcomes']))})",
        "",
    ]
    if summary.get("validation"):
        lines += [
            "## Validation: known answers",
            "",
            "A trial passes a known answer when the measured figure ± its accuracy lies wholly inside the expected "
            "window. PASS: every trial passed; FAIL: some trial failed; INCONCLUSIVE: the rest (a figure missing, a "
            "dirty baseline).",
            "",
            *validation_lines(summary["validation"], esc),
            "",
        ]
    lines += ["## Every figure: min / median / max over the trials", ""]
    header = ["probe", "event", "figure", "min", "median", "max", "never recovered", "accuracy"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for s in summary.get("spreads", []):
        cells = [
            s["probe"], s["event"], s["figure"].removesuffix("_s"), *(_ms(s[k]) for k in ("min_s", "median_s", "max_s")),
            str(s["never"]) if s["figure"] == "time_to_recover_s" else "", f"± {s['accuracy_s'] * 1e3:.1f} ms",
        ]  # fmt: skip
        lines.append("| " + " | ".join(esc(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _ms(value_s: float | None) -> str:
    return "-" if value_s is None else f"{value_s * 1e3:.1f} ms"

"""report.html: the drill's report as one self-contained page a manager can open.

No script, no network, no other file: inline CSS (with print rules: no clipped table, a page
per section), inline SVG. From the top: the verdict (PASSED / FAILED / INCONCLUSIVE in its colour,
and why: the objectives missed, the known answers failed, the pairs not as intended, the baseline
that was not clean), the objectives, the known answers, recovery per fault event, one plot per
probe (drills.reports.html_plots), the partition pair grid, loss and latency per phase,
availability, the timeline with its skews, the method and the environment
(drills.reports.html_detail).

Every piece of scenario text goes through html.escape; the page as a whole through `visible`,
so a control character from a scenario shows as its escape (`\\x1b`) rather than raw.
"""

from __future__ import annotations

from typing import Any

from drills.known import expected_text, measured_text
from drills.reports.fmt import ms, recovery, wholly_inconclusive
from drills.reports.html_detail import environment_section, method_section, pairs_section, timeline_section
from drills.reports.html_page import (
    FAIL,
    INCONCLUSIVE,
    OUTCOME_CLASS,
    PASS,
    Cell,
    Row,
    bullets,
    mark,
    page,
    paragraph,
    section,
    table,
    verdict_header,
)
from drills.reports.html_plots import plots
from drills.reports.markdown import KNOWN_COLUMNS

KNOWN_CLASS = {"pass": PASS, "fail": FAIL, "inconclusive": INCONCLUSIVE}


def reasons(results: dict[str, Any]) -> list[str]:
    """Why the drill ended as it did, one line each: what failed, or what kept it from passing."""
    out = []
    if wholly_inconclusive(results):
        baselines = results.get("baselines", {})
        if not baselines:
            out.append("No probe measured a baseline: nothing can be concluded.")
        for probe, b in baselines.items():
            if not b.get("clean", True):
                out.append(
                    f"The baseline of {probe} was not clean: {b.get('lost')} of {b.get('sent')} lost before the "
                    "first fault (loss, or no traffic): nothing can be concluded."
                )
    for v in results["verdicts"]:
        if not v["passed"]:
            out.append(f"Objective missed: {v['objective']} ({v['probe']}, {v['event']}): measured {v['measured']}, bound {v['bound']}.")
    for k in results.get("known_answers", []):
        if k["verdict"] != "pass":
            word = "failed" if k["verdict"] == "fail" else "could not be judged"
            out.append(
                f"Known answer {word}: {k['name']} ({k['probe']}, {k['event']}): measured "
                f"{measured_text(k['measured_s'], k['accuracy_s'])}, expected "
                f"{expected_text(k['value_s'], k['low_s'], k['high_s'], k['tolerance_s'])}: {k['reason']}."
            )
    for p in results.get("partition_pairs", []):
        if p["matches"] is not True:
            why = "not as intended" if p["matches"] is False else "could not be judged"
            out.append(f"Partition pair {why}: {p['step']}: {p['source']} → {p['target']} observed {p['observed']}, intended {p['expected']}.")
    if not out and results["outcome"] == "passed":
        counts = [f"{len(results['verdicts'])} objectives met"]
        if results.get("known_answers"):
            counts.append(f"{len(results['known_answers'])} known answers inside their windows")
        if results.get("partition_pairs"):
            counts.append(f"{len(results['partition_pairs'])} partition pairs as intended")
        out.append(", ".join(counts) + ".")
    return out


def _header(results: dict[str, Any]) -> str:
    outcome = str(results["outcome"])
    facts = (
        f"run {results['run_id']} · seed {results['seed']} · {results['duration_s']:g} s · "
        f"finished {results.get('finished_at', '?')} · drills {results['drills_version']}"
        + (f" · {results['scenario']['path']}" if results["scenario"].get("path") else "")
    )
    head = verdict_header(
        f"Drill report: {results['scenario']['name']}", OUTCOME_CLASS.get(outcome, INCONCLUSIVE), outcome.upper(), facts, reasons(results)
    )
    notes = []
    if results["revert_failures"]:
        notes.append(paragraph("Reverts that failed (the teardown removed what they left):", "note")
                     + bullets(results["revert_failures"], "revert-failures"))  # fmt: skip
    userspace = sorted(link for link, engine in results.get("link_engines", {}).items() if engine == "userspace")
    if userspace:
        notes.append(paragraph(
            f"Userspace link emulation: {', '.join(userspace)} ran on the userspace engine (a TAP pair joined by a "
            "relay process that emulates netem), not on kernel qdiscs: their delay, loss and rate are the relay's.",
            "note",
        ))  # fmt: skip
    return head + "".join(notes)


def _objectives(results: dict[str, Any]) -> str:
    if not results["verdicts"]:
        return section("objectives", "Objectives", paragraph("No objectives were stated."), keep=True)
    rows = [
        Row([mark("PASS" if v["passed"] else "FAIL"), v["objective"], v["probe"], v["event"], Cell(v["measured"], "num"), v["bound"]],
            PASS if v["passed"] else FAIL)
        for v in results["verdicts"]
    ]  # fmt: skip
    return section("objectives", "Objectives", table(["", "objective", "probe", "event", "measured", "bound"], rows, "objectives"), keep=True)


def _known(results: dict[str, Any]) -> str:
    known = results.get("known_answers", [])
    if not known:
        return ""
    rows = [
        Row([
            mark(k["verdict"].upper()), k["name"], k["probe"], k["event"], k["figure"],
            Cell(expected_text(k["value_s"], k["low_s"], k["high_s"], k["tolerance_s"]), "num"),
            Cell(measured_text(k["measured_s"], k["accuracy_s"]), "num"), k["source"], k["reason"],
        ], KNOWN_CLASS.get(k["verdict"], INCONCLUSIVE))
        for k in known
    ]  # fmt: skip
    note = paragraph("A known answer passes only when all of measured ± accuracy lies inside the expected window.")
    return section("known-answers", "Known answers", note, table(KNOWN_COLUMNS, rows, "known"), keep=True)


def _recovery(results: dict[str, Any]) -> str:
    judged: dict[tuple[str, str], list[bool]] = {}
    for v in results["verdicts"]:
        judged.setdefault((v["probe"], v["event"]), []).append(bool(v["passed"]))
    rows = []
    for m in results["metrics"]:
        verdicts = judged.get((m["probe"], f"{m['event']} ({m['kind']})"), [])
        cls = "" if not verdicts else (PASS if all(verdicts) else FAIL)
        rows.append(Row([
            m["probe"], m["event"], m["kind"],
            Cell(ms(m["outage_s"], m["accuracy_s"]), "num"), Cell(ms(m["max_loss_period_s"], m["accuracy_s"]), "num"),
            Cell(ms(m["time_to_detect_s"], m["accuracy_s"]), "num"), Cell(recovery(m), "num"),
            Cell(f"{m['lost']} of {m['sent']}", "num"), Cell(m.get("impaired", m["lost"]), "num"),
        ], cls))  # fmt: skip
    header = ["probe", "event", "kind", "outage", "longest loss period", "detect", "recovery", "lost / sent", "impaired"]
    body = table(header, rows, "recovery") if rows else paragraph("No fault event was measured.")
    note = paragraph("Every figure ± its accuracy (method below). Recovery \"when lifted\": traffic came back only when "
                     "the fault was lifted; \"never recovered\": not within the drill.")  # fmt: skip
    return section("recovery", "Recovery per fault event", note, body)


def _phases(results: dict[str, Any]) -> str:
    rows = [
        [probe, p["phase"], Cell(p["sent"], "num"), Cell(f"{p['loss_pct']:.3f} %", "num"),
         Cell(ms(p["rtt_p50_s"]), "num"), Cell(ms(p["rtt_p95_s"]), "num"), Cell(ms(p["rtt_p99_s"]), "num")]
        for probe, phases in results["phases"].items()
        for p in phases
    ]  # fmt: skip
    parts = [table(["probe", "phase", "sent", "loss", "RTT p50", "RTT p95", "RTT p99"], rows, "phases")]
    availability = results.get("availability", {})
    if availability:
        avail = [
            [probe, Cell(f"{a['pct']:.3f} %", "num"), Cell(f"{a['windows'] - a['unavailable']} of {a['windows']}", "num"),
             f"{a['window_s']:g} s", f"> {a['threshold'] * 100:g} % lost"]
            for probe, a in availability.items()
        ]  # fmt: skip
        parts += ["<h3>Availability</h3>",
                  table(["probe", "availability", "available windows", "window", "unavailable when"], avail, "availability")]  # fmt: skip
    return section("phases", "Loss and latency per phase", *parts)


def render_html(results: dict[str, Any], samples: dict[str, Any]) -> str:
    """report.html from results.json and its samples (per probe: `sent_ms`, `rtt_us`)."""
    title = f"Drill report: {results['scenario']['name']}"
    return page(
        title,
        [
            _header(results),
            _objectives(results),
            _known(results),
            _recovery(results),
            section("plots", "Per probe", plots(results, samples)),
            pairs_section(results.get("partition_pairs", [])),
            _phases(results),
            timeline_section(results),
            method_section(results),
            environment_section(results),
        ],
    )



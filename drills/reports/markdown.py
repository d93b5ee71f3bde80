"""report.md: the drill's after-action summary, readable in any Git forge or chat.

Scenario text (names, notes, commands, messages) is escaped before it goes in (`md_text`): a
note cannot add a table column, a link, an image, emphasis or raw HTML such as `<script>`, and
its control characters show as escapes. Every table cell is escaped, our own figures included
(escaping them changes nothing they show).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drills.known import expected_text, measured_text
from drills.reports.fmt import ms, recovery, steal_text, wholly_inconclusive
from drills.textsafe import visible

Escape = Callable[[object], str]

# CommonMark shows any backslash-escaped ASCII punctuation as itself, and GitHub's tables honour
# `\|` inside a cell: escaping these makes the text inert (no emphasis, code, link, image,
# heading, strike-through, entity or HTML tag) whatever its position.
_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_[]<>&|#~!"})


def md_text(value: object) -> str:
    """`value` as inert Markdown on one line: control characters (newlines too) escaped
    visibly, then every Markdown and HTML metacharacter backslash-escaped."""
    return visible(value, one_line=True).translate(_MARKDOWN)


def _table(header: list[str], rows: list[list[str]], esc: Escape) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(cell) for cell in row) + " |" for row in rows]
    return lines


def render_markdown(results: dict[str, Any], esc: Escape = md_text) -> str:
    """report.md from results.json; `esc` makes scenario text inert (`md_text` for Markdown)."""
    scenario = esc(results["scenario"]["name"])
    method = results["method"]
    outcome = esc(results["outcome"].upper())

    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        return _table(header, rows, esc)

    lines = [
        f"# Drill report: {scenario}",
        "",
        f"**Outcome: {outcome}** · run {esc(results['run_id'])} · seed {esc(results['seed'])} · "
        f"{results['duration_s']:g} s · finished {esc(results.get('finished_at', '?'))} · drills {esc(results['drills_version'])}",
        "",
    ]
    if wholly_inconclusive(results):
        lines += [
            "> The baseline was not clean (loss, or no traffic, before the first fault): nothing can be concluded.",
            "",
        ]
    elif results["outcome"] == "inconclusive":
        lines += ["> A known answer could not be judged (see Known answers): the drill cannot pass.", ""]
    if results["revert_failures"]:
        lines += ["> **Reverts that failed** (the teardown removed what they left):", ""]
        lines += [f"> - {esc(failure)}" for failure in results["revert_failures"]] + [""]
    userspace = sorted(link for link, engine in results.get("link_engines", {}).items() if engine == "userspace")
    if userspace:
        lines += [
            f"> **Userspace link emulation:** {', '.join(esc(link) for link in userspace)} ran on the userspace "
            "engine (a TAP pair joined by a relay process that emulates netem), not on kernel qdiscs: their delay, "
            "loss and rate are the relay's.",
            "",
        ]
    lines += ["## Objectives", ""]
    if results["verdicts"]:
        rows = [
            [("PASS" if v["passed"] else "FAIL"), v["objective"], v["probe"], v["event"], v["measured"], v["bound"]]
            for v in results["verdicts"]
        ]
        lines += table(["", "objective", "probe", "event", "measured", "bound"], rows)
    else:
        lines.append("No objectives were stated.")
    lines += _known(results.get("known_answers", []), esc)
    lines += ["", "## Recovery per fault event", ""]
    rows = [
        [
            m["probe"], f"{m['event']} ({m['kind']})", str(m["sent"]), str(m["lost"]),
            ms(m["outage_s"], m["accuracy_s"]), ms(m["max_loss_period_s"], m["accuracy_s"]),
            ms(m["time_to_detect_s"], m["accuracy_s"]), recovery(m), str(m.get("impaired", m["lost"])),
        ]
        for m in results["metrics"]
    ]  # fmt: skip
    lines += table(["probe", "event", "sent", "lost", "outage", "longest loss", "detect", "recover", "impaired"], rows)
    lines += _pairs(results.get("partition_pairs", []), esc)
    lines += ["", "## Loss and latency per phase", ""]
    rows = []
    for probe, phases in results["phases"].items():
        for p in phases:
            rows.append(
                [
                    probe,
                    p["phase"],
                    str(p["sent"]),
                    f"{p['loss_pct']:.3f} %",
                    ms(p["rtt_p50_s"]),
                    ms(p["rtt_p95_s"]),
                    ms(p["rtt_p99_s"]),
                ]
            )
    lines += table(["probe", "phase", "sent", "loss", "RTT p50", "RTT p95", "RTT p99"], rows)
    availability = results.get("availability", {})
    if availability:
        lines += ["", "## Availability", ""]
        rows = [
            [
                probe,
                f"{a['pct']:.3f} %",
                f"{a['windows'] - a['unavailable']} of {a['windows']}",
                f"{a['window_s']:g} s",
                f"> {a['threshold'] * 100:g} % lost",
            ]
            for probe, a in availability.items()
        ]
        lines += table(["probe", "availability", "available windows", "window", "unavailable when"], rows)
    lines += ["", "## Timeline", ""]
    rows = [
        [f"T+{s['scheduled_s']:.3f}", s["kind"], s["label"], s["detail"], f"{s['skew_s'] * 1e3:.2f} ms"]
        for s in results["timeline"]
    ]
    lines += table(["scheduled", "", "step", "what", "confirmed after"], rows)
    rates = esc(", ".join(f"{name} {rate} packets/s" for name, rate in method["offered_rate_pps"].items()))
    thresholds = esc(", ".join(f"{k} {v:g} s" for k, v in method["forwarding_delay_threshold_s"].items()))
    environment = results["environment"]
    lines += [
        "",
        "## Method",
        "",
        f"- Outage: {esc(method['outage'])}. Accuracy of every figure: {esc(method['accuracy'])}.",
        f"- Offered rate: {rates or 'no stream'}; sustained validation {method['sustained_validation_s']:g} s; "
        f"forwarding-delay threshold {thresholds}.",
        f"- Environment: kernel {esc(environment.get('kernel'))}, Python {esc(environment.get('python'))}.",
        *([f"- {esc(steal)}"] if (steal := steal_text(method.get("host_steal_s"))) else []),
        "",
    ]
    return "\n".join(lines)


KNOWN_COLUMNS = ["", "known answer", "probe", "event", "figure", "expected", "measured", "source", "why"]


def _known(known: list[dict[str, Any]], esc: Escape) -> list[str]:
    """Each known answer (`expect_known:`) at each event of its step: its window, the measured
    figure ± accuracy, and the verdict (PASS only when all of measured ± accuracy is inside)."""
    if not known:
        return []
    rows = [
        [
            k["verdict"].upper(), k["name"], k["probe"], k["event"], k["figure"],
            expected_text(k["value_s"], k["low_s"], k["high_s"], k["tolerance_s"]),
            measured_text(k["measured_s"], k["accuracy_s"]), k["source"], k["reason"],
        ]
        for k in known
    ]  # fmt: skip
    return ["", "## Known answers", "", *_table(KNOWN_COLUMNS, rows, esc)]


PAIR_COLUMNS = [
    "", "step", "pair", "intended", "observed", "delivered", "reachable before", "detect", "first after lift",
    "recovered after lift",
]  # fmt: skip


def pair_mark(pair: dict[str, Any]) -> str:
    """PASS (observed as intended), FAIL (the reverse), ERROR (could not be judged)."""
    return {True: "PASS", False: "FAIL"}.get(pair["matches"], "ERROR")


def _pairs(pairs: list[dict[str, Any]], esc: Escape) -> list[str]:
    """Per (source, target) pair across each partition: intended against observed, one way."""
    if not pairs:
        return []
    rows = [
        [
            pair_mark(p), p["step"], f"{p['source']} → {p['target']}", p["expected"], p["observed"],
            f"{p['fault_delivered']} of {p['fault_sent']}",
            "yes" if p["reachable_in_baseline"] else f"no ({p['baseline_lost']} of {p['baseline_sent']} lost)",
            ms(p["time_to_detect_s"], p["detect_accuracy_s"]),
            ms(p.get("first_delivery_after_lift_s"), p["recover_accuracy_s"], none="never"),
            ms(p["time_to_recover_s"], p["recover_accuracy_s"], none="never"),
        ]
        for p in pairs
    ]  # fmt: skip
    rate = pairs[0]["rate_pps"]
    return [
        "",
        "## Partition: per pair",
        "",
        f"Each ordered pair across the partition is probed one way at {esc(rate)} packets/s. A pair is cut when "
        "nothing sent while the partition held arrived, open when it lost no more than before (twice its baseline "
        "loss share + 1 point), partial in between. Detection counts from the partition's issue; the first packet "
        "through and the recovery (a sustained loss-free run) from the lift's.",
        "",
        *_table(PAIR_COLUMNS, rows, esc),
    ]

"""report.html's reference sections: the partition pair grid, the timeline, method and environment.

The pair grid shows each partition step as a source × target matrix: a cell is what the pair
observed, with what the partition intended under it, coloured by whether they agree (green),
disagree (red) or could not be judged (amber: unreachable before the partition, or nothing sent
while it held). The full per-pair table (delivered, detect, first packet and recovery after the
lift) follows the grids.
"""

from __future__ import annotations

from typing import Any

from drills.reports.fmt import ms, steal_text
from drills.reports.html_page import ERROR, FAIL, PASS, Cell, Row, bullets, esc, mark, paragraph, section, table
from drills.reports.markdown import PAIR_COLUMNS, pair_mark

PAIR_CLASS = {True: PASS, False: FAIL, None: ERROR}


def _grid(step: str, pairs: list[dict[str, Any]]) -> str:
    nodes: list[str] = []
    for pair in pairs:
        nodes += [n for n in (pair["source"], pair["target"]) if n not in nodes]
    by_pair = {(p["source"], p["target"]): p for p in pairs}
    head = "".join(f'<th scope="col">{esc(n)}</th>' for n in nodes)
    rows = []
    for source in nodes:
        cells = []
        for target in nodes:
            p = by_pair.get((source, target))
            if source == target:
                cells.append('<td class="self">·</td>')
            elif p is None:
                cells.append('<td class="none">not probed</td>')
            else:
                tip = (
                    f"{source} → {target}: intended {p['expected']}, observed {p['observed']}; "
                    f"{p['fault_delivered']} of {p['fault_sent']} delivered while it held"
                )
                cls = PAIR_CLASS[p["matches"]]
                cells.append(
                    f'<td class="pair {cls}" title="{esc(tip)}" data-source="{esc(source)}" data-target="{esc(target)}">'
                    f'{esc(p["observed"])}<span class="want">intended {esc(p["expected"])}</span></td>'
                )
        rows.append(f'<tr><th scope="row">{esc(source)}</th>{"".join(cells)}</tr>')
    return (
        f'<h3>{esc(step)}</h3><div class="table-wrap"><table class="pair-grid" data-step="{esc(step)}">'
        f'<thead><tr><th>from \\ to</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def pairs_section(pairs: list[dict[str, Any]]) -> str:
    """Each partition step's grid, then every pair in a table; empty without partitions."""
    if not pairs:
        return ""
    steps: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        steps.setdefault(p["step"], []).append(p)
    rows = [
        Row([
            mark(pair_mark(p)), p["step"], Cell(f"{p['source']} → {p['target']}", "nowrap"), p["expected"], p["observed"],
            Cell(f"{p['fault_delivered']} of {p['fault_sent']}", "num"),
            "yes" if p["reachable_in_baseline"] else f"no ({p['baseline_lost']} of {p['baseline_sent']} lost)",
            Cell(ms(p["time_to_detect_s"], p["detect_accuracy_s"]), "num"),
            Cell(ms(p.get("first_delivery_after_lift_s"), p["recover_accuracy_s"], none="never"), "num"),
            Cell(ms(p["time_to_recover_s"], p["recover_accuracy_s"], none="never"), "num"),
        ], PAIR_CLASS[p["matches"]])
        for p in pairs
    ]  # fmt: skip
    return section(
        "pairs",
        "Partition: per pair",
        paragraph(
            f"Each ordered pair across a partition is probed one way at {pairs[0]['rate_pps']} packets/s. A pair is "
            "cut when nothing sent while the partition held arrived, open when it lost no more than before (twice "
            "its baseline loss share + 1 point), partial in between. Rows: source; columns: target."
        ),
        *(_grid(step, step_pairs) for step, step_pairs in steps.items()),
        table(PAIR_COLUMNS, rows, "pairs"),
    )


def _t(value_s: float | None) -> str:
    return "-" if value_s is None else f"T+{value_s:.4f}"


def timeline_section(results: dict[str, Any]) -> str:
    """Every step: scheduled, issued, confirmed, in force (when a host stamped it), and the skew
    (confirmed - scheduled); then the changes time-varying faults played, if any."""
    rows = [
        [
            Cell(_t(s["scheduled_s"]), "num"), s["kind"], s["label"], s["fault"], s["detail"],
            Cell(_t(s["issued_s"]), "num"), Cell(_t(s["confirmed_s"]), "num"), Cell(_t(s.get("in_force_s")), "num"),
            Cell(f"{s['skew_s'] * 1e3:.2f} ms", "num"),
        ]
        for s in results["timeline"]
    ]  # fmt: skip
    parts = [
        paragraph("Instants in drill seconds. Skew: confirmed - scheduled. In force: when a host stamped the fault "
                  "certainly in force, ahead of the confirmation (else the confirmation)."),
        table(["scheduled", "", "step", "fault", "what", "issued", "confirmed", "in force", "skew"], rows, "timeline"),
    ]  # fmt: skip
    changes = results.get("timeline_changes") or []
    if changes:
        change_rows = [
            Row([
                c["label"], c["direction"], Cell(_t(c["scheduled_s"]), "num"), Cell(_t(c["issued_s"]), "num"),
                Cell(_t(c["confirmed_s"]), "num"), Cell(f"{(c['confirmed_s'] - c['scheduled_s']) * 1e3:.2f} ms", "num"),
                c["detail"], c.get("error") or "",
            ], FAIL if c.get("error") else "")
            for c in changes
        ]  # fmt: skip
        parts += [
            "<h3>Changes played by time-varying faults</h3>",
            table(["step", "direction", "scheduled", "issued", "confirmed", "skew", "what", "error"], change_rows, "changes"),
        ]
    return section("timeline", "Timeline", *parts)


def _pairs_text(values: dict[str, Any], unit: str) -> str:
    """`voice 1000 packets/s, web 5 packets/s`: a figure per probe."""
    return ", ".join(f"{name} {value:g} {unit}".rstrip() if isinstance(value, int | float) else f"{name} {value} {unit}".rstrip()
                     for name, value in values.items())  # fmt: skip


def method_section(results: dict[str, Any]) -> str:
    method = results["method"]
    items = [
        f"Outage: {str(method['outage']).removesuffix('.')}.",
        f"Accuracy of every figure: {str(method['accuracy']).removesuffix('.')}.",
        f"Offered rate: {_pairs_text(method.get('offered_rate_pps', {}), 'packets/s') or 'no stream'}.",
    ]
    if method.get("packet_size_bytes"):
        items.append(f"Packet size: {_pairs_text(method['packet_size_bytes'], 'bytes')}.")
    if method.get("sample_interval_s"):
        items.append(f"Application probes' sample interval: {_pairs_text(method['sample_interval_s'], 's')}.")
    items.append(f"Recovery: a sustained loss-free run of {method['sustained_validation_s']:g} s.")
    if method.get("forwarding_delay_threshold_s"):
        items.append(f"A packet later than the forwarding-delay threshold counts as lost: "
                     f"{_pairs_text(method['forwarding_delay_threshold_s'], 's')}.")  # fmt: skip
    if method.get("application_outage"):
        items.append(f"Application probes' outage: {str(method['application_outage']).removesuffix('.')}.")
    if method.get("tolerated_loss_pct"):
        items.append(f"Tolerated loss (random loss by design): {_pairs_text(method['tolerated_loss_pct'], '%')}: "
                     f"{str(method.get('tolerated_loss', '')).removesuffix('.')}.")  # fmt: skip
    steal = steal_text(method.get("host_steal_s"))
    if steal:
        items.append(steal)
    mesh = method.get("pair_mesh")
    if mesh:
        items.append(f"Partition pair mesh: {mesh.get('pairs')} pairs at {mesh.get('rate_pps')} packets/s, one way.")
    known = [k for k in method if k not in _METHOD_SHOWN]
    # A field this page does not know yet still shows.
    items += [f"{k}: {_pairs_text(method[k], '') if isinstance(method[k], dict) else method[k]}" for k in known]
    return section("method", "Method and accuracy", bullets(items))


_METHOD_SHOWN = {
    "outage", "accuracy", "offered_rate_pps", "packet_size_bytes", "sample_interval_s", "sustained_validation_s",
    "forwarding_delay_threshold_s", "pair_mesh", "application_outage", "tolerated_loss_pct", "tolerated_loss",
    "host_steal_s",
}  # fmt: skip


def environment_section(results: dict[str, Any]) -> str:
    env = results.get("environment", {})
    items = [f"{key}: {env[key]}" for key in ("kernel", "machine", "python", "cpus") if key in env]
    parts = [bullets(items)]
    capabilities = env.get("capabilities", {})
    if capabilities:
        rows = [Row([name, mark("yes" if ok else "no")], PASS if ok else "") for name, ok in capabilities.items()]
        parts += ["<h3>Capabilities the backend declared</h3>", table(["capability", "present"], rows, "capabilities")]
    engines = results.get("link_engines", {})
    if engines:
        parts += ["<h3>Link engines</h3>", table(["link", "engine"], [[k, v] for k, v in engines.items()], "engines")]
    hosts = results.get("hosts", [])
    if hosts:
        clocks = [
            [h.get("host"), Cell(ms(h.get("offset_s")), "num"), Cell(ms(h.get("bound_s")), "num"), Cell(ms(h.get("rtt_s")), "num")]
            for h in hosts
        ]
        parts += [
            "<h3>Hosts' clocks against the controller's</h3>",
            table(["host", "offset", "bound", "round trip"], clocks, "hosts"),
        ]
    return section("environment", "Environment", *parts, keep=True)

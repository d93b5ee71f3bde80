"""Per-probe plots for report.html: one compact inline SVG per probe, so a drill with 50 probes
reads as 50 small plots rather than one giant one.

Each plot draws the probe's round-trip time over the drill (the largest per horizontal pixel, the
line broken where a pixel's packets were all lost), lost packets as red ticks under the axis, the
fault periods as shaded bands (each labelled, its label also its tooltip), one-shot steps (a note,
an exec) as dotted lines, and each recovery instant measured for this probe as a green dashed
line. Samples are bucketed to one per pixel, so a plot's size does not grow with the drill.
"""

from __future__ import annotations

import math
from typing import Any

from drills.reports.html_page import esc

WIDTH = 960
HEIGHT = 132
LEFT = 64
RIGHT = 14
TOP = 20  # room for the bands' labels
BOTTOM = 26  # loss ticks and the time axis
ONE_SHOT = ("note", "exec")  # drawn as markers: nothing is applied for a while
BAND_FILL = "#f5a623"
RTT_STROKE = "#2b6cb0"
LOSS_STROKE = "#d0021b"
RECOVERED_STROKE = "#2e7d32"

LEGEND = (
    '<p class="legend"><span style="color:#2b6cb0">━ round-trip time (largest per pixel)</span>'
    '<span style="color:#d0021b">| lost packets</span><span style="color:#a35f00">▇ fault in force</span>'
    '<span style="color:#2e7d32">┆ recovered</span><span style="color:#777">┊ note / exec</span></p>'
)


def time_ticks(duration_s: float, most: int = 8) -> list[float]:
    """Round instants for the time axis: a step of 1, 2 or 5 × 10^k seconds, at most `most` + 1 ticks."""
    raw = duration_s / most
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [round(i * step, 9) for i in range(int(duration_s / step + 1e-9) + 1)]


def fault_bands(results: dict[str, Any]) -> list[tuple[float, float, str]]:
    """(start, end, label) of every applied fault: from its issue to its revert's confirmation
    (to the drill's end when never reverted)."""
    opened: dict[str, float] = {}
    bands = []
    for step in results["timeline"]:
        if step["fault"] in ONE_SHOT:
            continue
        if step["kind"] == "apply":
            opened[step["label"]] = step["issued_s"]
        elif step["label"] in opened:
            bands.append((opened.pop(step["label"]), step["confirmed_s"], step["label"]))
    bands += [(start, results["duration_s"], label) for label, start in opened.items()]
    return bands


def plot_probes(results: dict[str, Any], samples: dict[str, Any]) -> list[str]:
    """The probes to plot, in the samples' order, then any the results name without samples."""
    names = [name for name in samples if isinstance(samples[name], dict)]
    for name in [*results.get("baselines", {}), *(m["probe"] for m in results["metrics"])]:
        if name not in names:
            names.append(name)
    return names


def _buckets(data: dict[str, Any], duration_s: float) -> dict[int, tuple[int, bool, bool]]:
    """Per pixel: the largest round trip (µs), whether any packet was lost, whether any arrived.
    One pass, arithmetic inlined: a minute at 1000 packets/s is 60 000 samples a probe."""
    worst: dict[int, int] = {}
    lost: set[int] = set()
    per_ms = (WIDTH - LEFT - RIGHT) / (duration_s * 1e3)
    last = WIDTH - RIGHT
    for sent_ms, rtt_us in zip(data.get("sent_ms", []), data.get("rtt_us", []), strict=False):
        pixel = min(max(int(LEFT + sent_ms * per_ms), LEFT), last)
        if rtt_us < 0:
            lost.add(pixel)
        elif rtt_us > worst.get(pixel, -1):
            worst[pixel] = int(rtt_us)
    return {pixel: (worst.get(pixel, -1), pixel in lost, pixel in worst) for pixel in worst.keys() | lost}


def _polylines(buckets: dict[int, tuple[int, bool, bool]], y: Any) -> list[str]:
    """The round-trip line, broken at every pixel where nothing arrived."""
    lines, run = [], []
    for pixel, (rtt, _lost, arrived) in sorted(buckets.items()):
        if arrived:
            run.append(f"{pixel},{y(rtt):.1f}")
            continue
        if run:
            lines.append(run)
        run = []
    if run:
        lines.append(run)
    return [
        f'<polyline class="rtt" points="{" ".join(points)}" fill="none" stroke="{RTT_STROKE}" stroke-width="1.2"/>'
        if len(points) > 1
        else f'<circle class="rtt" cx="{points[0].split(",")[0]}" cy="{points[0].split(",")[1]}" r="1.2" fill="{RTT_STROKE}"/>'
        for points in lines
    ]


def probe_svg(probe: str, results: dict[str, Any], samples: dict[str, Any]) -> str:
    """One probe's plot: its own SVG, scaled to the page's width."""
    duration = max(float(results["duration_s"]), 1e-3)
    plot_w = WIDTH - LEFT - RIGHT
    top, bottom = TOP, HEIGHT - BOTTOM

    def x(t: float) -> float:
        return LEFT + plot_w * min(max(t / duration, 0.0), 1.0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="11" role="img" aria-label="{esc(probe)}">'
    ]
    for start, end, label in fault_bands(results):
        out.append(
            f'<rect class="band" x="{x(start):.1f}" y="{top - 4}" width="{max(x(end) - x(start), 1):.1f}" '
            f'height="{bottom - top + 4}" fill="{BAND_FILL}" fill-opacity="0.18"><title>{esc(label)}</title></rect>'
            f'<text x="{x(start) + 2:.1f}" y="{top - 7}" fill="#a35f00">{esc(label)}</text>'
        )
    for step in results["timeline"]:
        if step["fault"] in ONE_SHOT:
            at = x(step["issued_s"])
            out.append(
                f'<line class="marker" x1="{at:.1f}" y1="{top - 4}" x2="{at:.1f}" y2="{bottom}" stroke="#777" '
                f'stroke-dasharray="1,3"><title>{esc(step["detail"])}</title></line>'
            )
    out.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#999"/>')
    data = samples.get(probe)
    if not isinstance(data, dict) or not data.get("sent_ms"):
        out.append(f'<text x="{LEFT + 6}" y="{bottom - 6}" fill="#999">no samples</text>')
    else:
        buckets = _buckets(data, duration)
        peak = max((rtt for rtt, _, arrived in buckets.values() if arrived), default=0) or 1

        def y(rtt_us: float) -> float:
            return bottom - (bottom - top - 2) * rtt_us / peak

        out.append(f'<text x="{LEFT - 4}" y="{top + 8}" text-anchor="end" fill="#555">{peak / 1e3:.2f} ms</text>')
        out.append(f'<text x="{LEFT - 4}" y="{bottom}" text-anchor="end" fill="#555">0</text>')
        out += _polylines(buckets, y)
        ticks = [pixel for pixel, (_, lost, _a) in sorted(buckets.items()) if lost]
        if ticks:
            path = "".join(f"M{pixel} {bottom + 1}v7" for pixel in ticks)
            out.append(f'<path class="loss" d="{path}" stroke="{LOSS_STROKE}" stroke-width="1"/>')
    out += _recoveries(probe, results, x, top, bottom)
    for t in time_ticks(duration):
        at = x(t)
        anchor = "start" if t == 0 else "end" if at > WIDTH - RIGHT - 24 else "middle"  # the ends stay inside
        out.append(f'<line x1="{at:.1f}" y1="{bottom}" x2="{at:.1f}" y2="{bottom + 3}" stroke="#999"/>')
        out.append(f'<text x="{at:.1f}" y="{HEIGHT - 4}" text-anchor="{anchor}" fill="#555">T+{t:g}s</text>')
    out.append("</svg>")
    return "".join(out)


def _recoveries(probe: str, results: dict[str, Any], x: Any, top: float, bottom: float) -> list[str]:
    """A green dashed line at each instant this probe recovered (event issued + time to recover)."""
    out = []
    for metric in results["metrics"]:
        if metric["probe"] != probe or metric["time_to_recover_s"] in (None, 0.0):
            continue
        event = next(
            (s for s in results["timeline"] if s["label"] == metric["event"] and s["kind"] == metric["kind"]), None
        )
        if event is None:
            continue
        at = x(event["issued_s"] + metric["time_to_recover_s"])
        out.append(
            f'<line class="recovered" x1="{at:.1f}" y1="{top}" x2="{at:.1f}" y2="{bottom}" stroke="{RECOVERED_STROKE}" '
            f'stroke-width="1.5" stroke-dasharray="4,2"><title>{esc(metric["event"])} ({esc(metric["kind"])}): '
            f'recovered after {metric["time_to_recover_s"] * 1e3:.1f} ms</title></line>'
        )
    return out


def _caption(probe: str, results: dict[str, Any], samples: dict[str, Any]) -> str:
    """The probe's figures in one line: sent and lost over the drill, its percentiles, its baseline."""
    parts = []
    phases = {p["phase"]: p for p in results.get("phases", {}).get(probe, [])}
    whole = phases.get("all")
    data = samples.get(probe)
    if whole is not None:
        parts.append(f"sent {whole['sent']}, lost {whole.get('lost', '?')} ({whole['loss_pct']:.3f} %)")
    elif isinstance(data, dict) and data.get("rtt_us") is not None:
        rtts = data["rtt_us"]
        parts.append(f"sent {len(rtts)}, lost {sum(1 for r in rtts if r < 0)}")
    if whole is not None and whole.get("rtt_p50_s") is not None:
        parts.append(f"RTT p50 {whole['rtt_p50_s'] * 1e3:.2f} ms, p99 {whole['rtt_p99_s'] * 1e3:.2f} ms")
    baseline = results.get("baselines", {}).get(probe)
    if baseline is not None and not baseline.get("clean", True):
        parts.append(f"baseline NOT clean ({baseline.get('lost')} of {baseline.get('sent')} lost)")
    return " · ".join(str(p) for p in parts)


def plots(results: dict[str, Any], samples: dict[str, Any]) -> str:
    """The legend, then one figure per probe."""
    figures = []
    for probe in plot_probes(results, samples):
        caption = _caption(probe, results, samples)
        figures.append(
            f'<figure class="probe-plot" data-probe="{esc(probe)}">{probe_svg(probe, results, samples)}'
            f"<figcaption><strong>{esc(probe)}</strong>{' · ' + esc(caption) if caption else ''}</figcaption></figure>"
        )
    return LEGEND + '<div class="plots">' + "\n".join(figures) + "</div>"

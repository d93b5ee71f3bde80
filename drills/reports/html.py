"""report.html: one self-contained page (no scripts, no external files) with a timeline plot.

The plot draws, per probe, its round-trip time over the drill (a line of per-bucket maxima)
with lost packets as red ticks, the fault periods as shaded bands across every lane, and each
measured recovery instant as a green mark. Samples are bucketed to at most one per pixel.

Every piece of scenario text goes through html.escape; the page as a whole through `visible`,
so a control character from a scenario shows as its escape (`\\x1b`) rather than raw.
"""

from __future__ import annotations

import html
from typing import Any

from drills.reports.markdown import plain_text, render_markdown
from drills.textsafe import visible

WIDTH = 960
LANE_H = 110
LEFT = 70
RIGHT = 20
TOP = 34


ONE_SHOT = ("note", "exec")  # drawn as markers: nothing is applied for a while


def _bands(results: dict[str, Any]) -> list[tuple[float, float, str]]:
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


def render_svg(results: dict[str, Any], samples: dict[str, Any]) -> str:
    duration = max(float(results["duration_s"]), 1e-3)
    probes = list(samples) or list(results["baselines"])
    height = TOP + LANE_H * max(1, len(probes)) + 30
    plot_w = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + plot_w * min(max(t / duration, 0.0), 1.0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">'
    ]
    for start, end, label in _bands(results):
        out.append(
            f'<rect x="{x(start):.1f}" y="{TOP - 12}" width="{max(x(end) - x(start), 1):.1f}" height="{height - TOP - 18}" fill="#f5a623" fill-opacity="0.18"><title>{html.escape(label)}</title></rect>'
        )
        out.append(f'<text x="{x(start) + 2:.1f}" y="{TOP - 2}" fill="#a35f00">{html.escape(label)}</text>')
    for step in results["timeline"]:
        if step["fault"] in ONE_SHOT:
            at = x(step["issued_s"])
            out.append(
                f'<line x1="{at:.1f}" y1="{TOP - 12}" x2="{at:.1f}" y2="{height - 18}" stroke="#777" stroke-dasharray="1,3"><title>{html.escape(step["detail"])}</title></line>'
            )
    for lane, probe in enumerate(probes):
        top = TOP + lane * LANE_H + 8
        bottom = top + LANE_H - 28
        out.append(f'<text x="{LEFT + 4}" y="{top + 4}" font-weight="bold">{html.escape(probe)}</text>')
        out.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#999"/>')
        data = samples.get(probe)
        if not data:
            out.append(f'<text x="{LEFT + 4}" y="{bottom - 4}" fill="#999">no samples</text>')
            continue
        buckets: dict[int, tuple[int, bool]] = {}
        for sent_ms, rtt_us in zip(data["sent_ms"], data["rtt_us"], strict=True):
            pixel = int(x(sent_ms / 1e3))
            worst, lost = buckets.get(pixel, (0, False))
            buckets[pixel] = (max(worst, rtt_us), lost or rtt_us < 0)
        peak = max((rtt for rtt, _ in buckets.values()), default=1) or 1
        out.append(f'<text x="{LEFT - 4}" y="{top + 12}" text-anchor="end" fill="#555">{peak / 1e3:.1f} ms</text>')
        out.append(f'<text x="{LEFT - 4}" y="{bottom}" text-anchor="end" fill="#555">0</text>')
        points = " ".join(
            f"{pixel},{bottom - (bottom - top - 6) * rtt / peak:.1f}"
            for pixel, (rtt, _) in sorted(buckets.items())
            if rtt >= 0
        )
        out.append(f'<polyline points="{points}" fill="none" stroke="#2b6cb0" stroke-width="1"/>')
        for pixel, (_, lost) in sorted(buckets.items()):
            if lost:
                out.append(f'<line x1="{pixel}" y1="{bottom}" x2="{pixel}" y2="{bottom + 8}" stroke="#d0021b"/>')
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
                f'<line x1="{at:.1f}" y1="{top}" x2="{at:.1f}" y2="{bottom}" stroke="#2e7d32" stroke-dasharray="3,2"><title>recovered after {metric["time_to_recover_s"] * 1e3:.1f} ms</title></line>'
            )
    axis_y = height - 14
    for i in range(11):
        t = duration * i / 10
        out.append(f'<text x="{x(t):.1f}" y="{axis_y}" text-anchor="middle" fill="#555">T+{t:.1f}s</text>')
    out.append("</svg>")
    return "\n".join(out)


def render_html(results: dict[str, Any], samples: dict[str, Any]) -> str:
    title = f"Drill report: {results['scenario']['name']}"
    # The Markdown source is shown in a <pre>: escaped once, for HTML, not for Markdown too.
    markdown = render_markdown(results, esc=plain_text)
    return visible(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
pre{{white-space:pre-wrap;background:#f6f8fa;padding:1em;border-radius:4px}}
.legend span{{margin-right:1.5em}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class="legend"><span style="color:#2b6cb0">━ round-trip time (max per pixel)</span>
<span style="color:#d0021b">| lost packets</span><span style="color:#a35f00">▇ fault applied</span>
<span style="color:#2e7d32">┆ recovered</span></p>
{render_svg(results, samples)}
<pre>{html.escape(markdown)}</pre>
</body></html>
""")

"""Reports rendered from results.json and its samples: JUnit XML, Markdown, HTML (report.html;
compare.html of two runs and trials.html of a set, drills.reports.html_sets).

The after-action report of an exercise (`drill aar RUN_DIR`: aar.html, aar.md,
improvement-plan.csv) is drills.reports.aar's.

Every renderer takes the two JSON documents (never live objects), so `drill report RUN_DIR`
gives exactly what `drill run` wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drills import outdir
from drills.reports.aar import PLAN_FILE, build, render_plan_csv
from drills.reports.aar_html import render_aar_html
from drills.reports.aar_md import render_aar_markdown
from drills.reports.aar_ratings import RATINGS_FILE, template
from drills.reports.compare import Comparison
from drills.reports.html import render_html
from drills.reports.html_sets import render_compare_html, render_trials_html
from drills.reports.junit import render_junit
from drills.reports.markdown import render_markdown

__all__ = ["render_html", "render_junit", "render_markdown", "write_aar", "write_all", "write_compare_html", "write_trials_html"]


def write_all(results: dict[str, Any], samples: dict[str, Any], out_dir: Path) -> list[Path]:
    """junit.xml, report.md and report.html into `out_dir`; returns their paths."""
    written = []
    for name, text in (
        ("junit.xml", render_junit(results)),
        ("report.md", render_markdown(results)),
        ("report.html", render_html(results, samples)),
    ):
        path = out_dir / name
        outdir.write_file(path, text.encode())  # never through a planted symlink
        written.append(path)
    return written


def write_compare_html(comparison: Comparison, run_a: Path, run_b: Path, path: Path) -> Path:
    """compare.html of two runs into `path` (`drill compare A B --html FILE`, `drill run --baseline`)."""
    outdir.write_file(path, render_compare_html(comparison, str(run_a), str(run_b)).encode())
    return path


def write_trials_html(summary: dict[str, Any], title: str, out_dir: Path) -> Path:
    """trials.html beside trials.json (`drill run --trials N`)."""
    path = out_dir / "trials.html"
    outdir.write_file(path, render_trials_html(summary, title).encode())
    return path


def write_aar(run_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """aar.html, aar.md and improvement-plan.csv of a results directory into `out_dir` (default:
    the run directory), and a ratings.yaml template there when there is none to read. The ratings
    read: the output directory's ratings.yaml, else the run directory's. Returns the paths written."""
    from drills import results

    out = out_dir if out_dir is not None else run_dir
    document = results.read(run_dir)[0]  # bounded (results.MAX_RESULTS_BYTES); BadInput when absent
    outdir.make_dir(out)  # never through a planted symlink: drills runs as root
    found = [p for p in (out / RATINGS_FILE, run_dir / RATINGS_FILE) if p.exists()]
    aar = build(document, found[0] if found else None)
    written = []
    for name, data in (
        ("aar.html", render_aar_html(aar).encode()),
        ("aar.md", render_aar_markdown(aar).encode()),
        (PLAN_FILE, render_plan_csv(aar)),
    ):
        outdir.write_file(out / name, data)
        written.append(out / name)
    if not found:
        suggestions = {r.target.id: r.suggestion for r in aar.targets}
        outdir.write_file(out / RATINGS_FILE, template(aar.exercise, suggestions).encode())
        written.append(out / RATINGS_FILE)
    return written

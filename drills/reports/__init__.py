"""Reports rendered from results.json and its samples: JUnit XML, Markdown, HTML (report.html;
compare.html of two runs and trials.html of a set, drills.reports.html_sets).

Every renderer takes the two JSON documents (never live objects), so `drill report RUN_DIR`
gives exactly what `drill run` wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drills import outdir
from drills.reports.compare import Comparison
from drills.reports.html import render_html
from drills.reports.html_sets import render_compare_html, render_trials_html
from drills.reports.junit import render_junit
from drills.reports.markdown import render_markdown

__all__ = ["render_html", "render_junit", "render_markdown", "write_all", "write_compare_html", "write_trials_html"]


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

"""Reports rendered from results.json and its samples: JUnit XML, Markdown, HTML with a plot.

Every renderer takes the two JSON documents (never live objects), so `drill report RUN_DIR`
gives exactly what `drill run` wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drills import outdir
from drills.reports.html import render_html
from drills.reports.junit import render_junit
from drills.reports.markdown import render_markdown


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

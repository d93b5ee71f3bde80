"""Scenario text is shown as text: never rich markup, control characters escaped visibly, and
Markdown/HTML/XML escaped in the reports (issue 11, item 7).

Unit tests cover the escaping helper, the renderer, the live view and the three reports; the
real-kernel tests run a short drill whose note holds markup, terminal escape sequences, a
carriage return, a bidi override, `|` and `<script>`, with `--no-live` and under the live view
on a pseudo-terminal. Every test is deterministic (no timing, no randomness).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from rich.console import Console
from test_live import _run_on_pty
from test_reports import SAMPLES, sample_results

from drills.clock import FakeClock
from drills.engine.progress import ClockStarted, Scheduled
from drills.errors import Problem
from drills.live import LiveView
from drills.render import Renderer
from drills.reports import render_html, render_junit, render_markdown
from drills.textsafe import visible

# What a hostile note holds, as Python text (the YAML below spells the same with its escapes).
NOTE = (
    "[/] [bold]B[/bold] [link=https://evil.example]L[/link] :bomb: \x1b]0;pwned\x07 \x1b[2J \r over "
    "\u202e evil \x9b | <script>alert(1)</script> `tick` *em* _u_ & end"
)
NOTE_YAML = (
    r"[/] [bold]B[/bold] [link=https://evil.example]L[/link] :bomb: \e]0;pwned\a \e[2J \r over "
    r"\u202e evil \x9b | <script>alert(1)</script> `tick` *em* _u_ & end"
)
# How it must print: every character as written, the controls as escapes.
SHOWN = (
    r"[/] [bold]B[/bold] [link=https://evil.example]L[/link] :bomb: \x1b]0;pwned\x07 \x1b[2J \x0d over "
    r"\u202e evil \x9b | <script>alert(1)</script> `tick` *em* _u_ & end"
)
BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}
UNSAFE = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), *range(0xD800, 0xE000)]]


# --------------------------------------------------------------------------- the helper


def test_visible_escapes_each_control_character_by_its_code() -> None:
    assert visible(NOTE) == SHOWN
    assert visible("a\x00b\x7fc\x85d\u2066e\u2028f") == r"a\x00b\x7fc\x85d\u2066e\u2028f"
    assert visible("tab\tand\nnewline") == "tab\tand\nnewline"  # kept in multi-line text
    assert visible("tab\tand\nnewline", one_line=True) == r"tab\tand\nnewline"
    assert visible("\ud800 \ufffe") == r"\ud800 \ufffe"  # unencodable, and not XML characters
    assert visible(42) == "42"


def test_visible_keeps_printable_text_as_it_is() -> None:
    text = "naïve café → 漢字 😀 ü [x] <y> & \\x1b ½ ‐ \u00a0"
    assert visible(text) == text


def test_visible_leaves_no_unsafe_character_anywhere_in_unicode() -> None:
    # Every code point, once: the output holds no control, surrogate or bidi character but the
    # tab and newline it keeps, and each escape is made of printable ASCII.
    # Unicode's categories Cc (controls) and Cs (surrogates) are exactly the ranges checked here.
    assert [c for c in map(chr, range(0x110000)) if unicodedata.category(c) in ("Cc", "Cs")] == UNSAFE
    shown = visible("".join(map(chr, range(0x110000))))
    assert sorted(set(shown) & {*UNSAFE, *map(chr, BIDI)}) == ["\t", "\n"]
    assert set(visible("".join(map(chr, range(0x100))))) - set(map(chr, range(0x100))) == set()


# --------------------------------------------------------------------------- the terminal


def test_renderer_prints_notes_and_problems_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    ui = Renderer()
    ui.progress(f"T+001.00 note: {NOTE}", at="10:00:00")
    ui.progress("note: one\n10:00:09 T+009.00 forged line", at="10:00:01")
    ui.error(NOTE)
    ui.problems([Problem("x.yaml", 3, 7, "timeline[0].text", f"{NOTE!s} is wrong")])
    err = capsys.readouterr().err
    assert f"10:00:00 T+001.00 note: {SHOWN}\n" in err
    assert "10:00:01 note: one\\n10:00:09 T+009.00 forged line\n" in err
    assert f"error: {SHOWN}\n" in err
    assert f"x.yaml:3:7: timeline[0].text: {SHOWN} is wrong\n" in err
    assert "\x1b" not in err and "\r" not in err and "\u202e" not in err and "💣" not in err


def test_live_view_frame_shows_the_note_escaped_on_one_line() -> None:
    schedule = (Scheduled(1.0, "apply", "step0", "note", f"note: {NOTE}\nsecond line"),)
    view = LiveView(Console(), clock=FakeClock(0.0), wall=lambda: "10:00:00")
    view.event(ClockStarted("hostile", "abc123", 0.0, 3.0, schedule, list))
    view.log(f"T+001.00 note: {NOTE}")
    console = Console(width=1000, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    console.print(view.render(0.5))
    text = console.export_text()
    assert f"10:00:00 T+001.00 note: {SHOWN}" in text
    assert f"next: T+1.00 apply step0: note: {SHOWN}\\nsecond line" in text
    assert "\x1b" not in text and "\u202e" not in text


# --------------------------------------------------------------------------- the reports


def hostile_results() -> dict[str, Any]:
    results = copy.deepcopy(sample_results())
    results["timeline"].insert(
        0,
        {"label": "step0", "kind": "apply", "fault": "note", "scheduled_s": 1.0, "issued_s": 1.0, "confirmed_s": 1.0,
         "skew_s": 0.0, "detail": f"note: {NOTE}\nline two"},
    )  # fmt: skip
    results["revert_failures"] = [f"revert of {NOTE}"]
    results["verdicts"][0]["measured"] = NOTE
    results["verdicts"][0]["passed"] = False
    return results


class _Html(HTMLParser):
    """Tags, text and tables (lists of rows of cell texts) of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
            self._in_cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_cell:
            self.tables[-1][-1][-1] += data


def test_report_md_renders_the_note_literally_and_keeps_its_tables() -> None:
    markdown = render_markdown(hostile_results())
    assert "\x1b" not in markdown and "\r" not in markdown and "\u202e" not in markdown
    page = _Html()
    page.feed(MarkdownIt("commonmark").enable("table").render(markdown))
    # No tag from the note (script, a, em, code) made it through; only the report's own.
    assert set(page.tags) <= {"h1", "h2", "p", "strong", "blockquote", "ul", "li", "table", "thead", "tbody", "tr", "th", "td"}
    timeline = next(rows for rows in page.tables if rows[0][:3] == ["scheduled", "", "step"])
    assert all(len(row) == 5 for row in timeline)  # the note's `|` added no column
    assert timeline[1][3] == f"note: {SHOWN}\\nline two"
    objectives = next(rows for rows in page.tables if rows[0][:2] == ["", "objective"])
    assert objectives[1][4] == SHOWN
    assert f"revert of {SHOWN}" in "".join(page.text)


def test_report_html_escapes_the_note() -> None:
    page_text = render_html(hostile_results(), SAMPLES)
    assert "<script" not in page_text and "\x1b" not in page_text and "\u202e" not in page_text
    page = _Html()
    page.feed(page_text)
    assert "script" not in page.tags
    # Shown in the timeline's and the objectives' cells, HTML-escaped, and in the plots' marker titles.
    assert sum(SHOWN in chunk for chunk in page.text) >= 1
    assert f"note: {SHOWN}\nline two" in "".join(page.text)


def test_junit_is_valid_xml_with_the_text_escaped() -> None:
    results = hostile_results()
    results["metrics"][0]["probe"] = NOTE
    xml = render_junit(results)
    root = ET.fromstring(xml)  # control characters would make this raise
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and failure.text == f"measured {SHOWN}, bound <= 50 ms"
    names = [case.get("name") for case in root.iter("testcase")]
    assert f"cut (apply) × {SHOWN}" in names


# --------------------------------------------------------------------------- the CLI

DRILL = f"""
version: 1
name: hostile-note
topology:
  nodes:
    a: {{routes: [{{to: b, via: b:e1}}]}}
    b: {{routes: [{{to: a, via: a:e1}}]}}
  links: [{{name: wire, endpoints: [a:e1, b:e1]}}]
probes:
  - {{name: stream, type: udp-stream, from: a, to: b, rate_pps: 200}}
timeline:
  - {{at: 1s, fault: note, text: "{NOTE_YAML}"}}
expect:
  - {{probe: stream, max_outage: 1s}}
duration: 2500ms
"""


def _check_results(out: Path) -> None:
    data = json.loads((out / "results.json").read_text())
    assert data["outcome"] == "passed"
    assert any(NOTE in step["detail"] for step in data["timeline"])  # the record keeps it as written
    ET.parse(out / "junit.xml")
    report = (out / "report.md").read_text()
    assert "<script>" not in report and "\x1b" not in report and r"\<script\>" in report
    assert "<script" not in (out / "report.html").read_text()


def test_validate_prints_a_bad_value_escaped(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DRILL.replace("[a:e1, b:e1]", r'[a:e1, "b\e]0;pwned\a\e[2J:e1"]'))
    proc = subprocess.run([sys.executable, "-m", "drills", "validate", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert r"'b\x1b]0;pwned\x07\x1b[2J:e1' is not an endpoint" in proc.stderr
    assert "\x1b" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    # A DrillError quoting a path: escaped too.
    proc = subprocess.run([sys.executable, "-m", "drills", "report", str(tmp_path / "no\x1b[2Jpe")], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and r"no\x1b[2Jpe" in proc.stderr and "\x1b" not in proc.stderr


def test_plan_prints_the_note_as_text(tmp_path: Path) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(DRILL)
    argv = [sys.executable, "-m", "drills", "plan", str(path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env={"COLUMNS": "1000", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert f"note: {SHOWN}" in proc.stdout and "\x1b" not in proc.stdout


@pytest.mark.netns
@pytest.mark.parametrize("live", [False, True], ids=["no-live", "live-view"])
def test_a_hostile_note_prints_literally_and_the_results_are_kept(
    live: bool, tmp_path: Path, state_dir: Path, drill: Any, host_snapshot: object
) -> None:
    (tmp_path / "hostile.yaml").write_text(DRILL)
    out = tmp_path / "out"
    argv = drill.argv("run", str(tmp_path / "hostile.yaml"), "--out", str(out))
    if live:
        code, text = _run_on_pty(argv, timeout_s=90)  # rich's own colour codes are stripped from `text`
        assert "drill hostile-note  run " in text  # the live view was drawn
        assert "\x1b]" not in text  # the note's OSC sequence never reached the terminal
    else:
        proc = subprocess.run([*argv, "--no-live"], capture_output=True, text=True, timeout=90, check=False)
        code, text = proc.returncode, proc.stdout + proc.stderr
        assert "\x1b" not in text and "\r" not in text
    assert code == 0, text
    assert f"note: {SHOWN}" in text and "drill passed" in text and "\u202e" not in text
    _check_results(out)
    assert not any(state_dir.glob("runs/*"))

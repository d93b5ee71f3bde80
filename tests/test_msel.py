"""The MSEL round trip (`drill msel export|import`): every example scenario comes back
equivalent, and every problem of a CSV is reported at its row and column. Pure: no root, no
kernel; import and export need no machines.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from drills.cli import main
from drills.errors import ExitCode, ScenarioError
from drills.msel import MselError, cells, csvfile, scenariotext
from drills.msel.export import msel_text, write_msel
from drills.msel.import_ import import_msel
from drills.scenario.loader import load_scenario

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "scenarios").glob("*.yaml"))
HEADER = "ID,Exercise Time (T+hh:mm:ss),Trigger,Decision Gate,Title,Description,Machine Action"


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """scenarios/ and testbed/ copied side by side: examples name files `../testbed/...`."""
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    shutil.copytree(REPO / "testbed", tmp_path / "testbed", ignore=shutil.ignore_patterns("images"))
    return tmp_path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base.yaml"
    shutil.copy(REPO / "scenarios" / "quickstart-fibre-cut.yaml", path)
    return path


def _import_problems(tmp_path: Path, base: Path, text: str | bytes) -> list[str]:
    path = tmp_path / "msel.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(MselError) as caught:
        import_msel(path, tmp_path / "out.yaml", base)
    assert not (tmp_path / "out.yaml").exists()  # nothing written on a problem
    return [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_comes_back_equivalent(repo_copy: Path, path: Path) -> None:
    csv = repo_copy / "msel.csv"
    write_msel(path, csv)
    out = repo_copy / "scenarios" / path.name
    import_msel(csv, out)  # into the copy itself: its topology, probes and expect are kept
    before, after = load_scenario(path), load_scenario(out)
    assert after.steps == before.steps  # resolved: kinds, targets, timing
    assert after.source.timeline == before.source.timeline  # parsed, as the engine reads it
    assert after.objectives == before.objectives
    assert after.cues == before.cues  # triggers, gates, the MSEL fields
    assert after.exercise == before.exercise
    assert after.duration_s == before.duration_s
    assert out.read_text().startswith("# timeline: imported from msel.csv")
    # A second trip changes nothing: the MSEL is a fixed point.
    assert msel_text(out) == csv.read_bytes().decode()


def test_the_export_of_the_quickstart(tmp_path: Path) -> None:
    text = msel_text(REPO / "scenarios" / "quickstart-fibre-cut.yaml")
    assert text.startswith("\ufeffID,Exercise Time (T+hh:mm:ss),Scenario Time,Move/Phase,Inject Type,")
    lines = text.splitlines()
    # A note is a message-only inject: its text is the description, its action `none`.
    assert lines[1] == ",T+00:00:03,,,,,,,,Excavator working near the fibre route,,,,,time,no,none"
    assert lines[2] == 'fibre-cut,T+00:00:05,,,,,,,,,,,,,time,no,"{fault: link-down, link: fibre, for: 5s}"'


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no-bom", "bom"])
def test_import_with_and_without_bom_quoted_newlines_and_extra_columns(tmp_path: Path, base: Path, bom: bytes) -> None:
    text = (
        "Inject #,Time,Weather,Trigger,Gate,Title,Description,Action,Status\r\n"
        'a1,T+00:00:02,rain,,no,Press call,"A reporter asks:\r\nis dispatch down?",none,\r\n'
        "fibre-cut,T+00:00:05,typhoon,manual,yes,Cable cut,,\"{fault: link-down, link: fibre, for: 5s}\",done\r\n"
        ",,,,,,,,\r\n"  # a blank row, as spreadsheets leave them
        "later,T+00:00:07.5,,after fibre-cut,,Repair crew,Crew on site,none,\r\n"
    )
    (tmp_path / "msel.csv").write_bytes(bom + text.encode())
    out = tmp_path / "out.yaml"
    assert import_msel(tmp_path / "msel.csv", out, base) == 3
    scenario = load_scenario(out)
    timeline = [step.model_dump(by_alias=True, exclude_none=True) for step in scenario.source.timeline]
    assert [step["at"] for step in timeline] == [2.0, 5.0, 7.5]
    assert timeline[0]["text"] == "A reporter asks:\nis dispatch down?"
    header, *rows = csv.reader(io.StringIO(msel_text(out).removeprefix("\ufeff")))
    assert header[-3:] == ["Machine Action", "Weather", "Status"]  # extra columns, in their order
    assert rows[0][:2] == ["a1", "T+00:00:02"]
    assert rows[0][9] == "A reporter asks:\nis dispatch down?"
    assert rows[1][:2] == ["fibre-cut", "T+00:00:05"]
    assert rows[1][-5:] == ["manual", "yes", "{fault: link-down, link: fibre, for: 5s}", "typhoon", "done"]
    assert rows[2][-5:] == ["after fibre-cut", "no", "none", "", ""]
    assert rows[2][1] == "T+00:00:07.5"


def test_sub_second_and_long_exercise_times() -> None:
    assert cells.format_time(60.5) == "T+00:01:00.5"
    assert cells.format_time(90000.0) == "T+25:00:00"
    assert cells.format_time(0.1) == "T+00:00:00.1"
    assert cells.parse_time("T+25:00:00") == (90000.0, "T+25:00:00")
    assert cells.parse_time("T+00:01:00.5")[0] == 60.5


def test_bad_cells_are_reported_with_row_and_column(tmp_path: Path, base: Path) -> None:
    text = (
        HEADER + "\n"
        "a,T+1:2,,,x,,\n"
        "b,T+00:00:04,whenever,,x,,\n"
        "c,T+00:00:05,after nobody,,x,,\n"
        "d,T+00:00:06,,perhaps,x,,\n"
        "e,T+00:00:07,,,,,\"{fault: link-down, link: [fibre\"\n"
        "f,T+00:00:08,,,,,\"[link-down]\"\n"
        "g,T+00:00:09,,,,,none\n"
        "a,T+00:00:10,,,,x,none\n"
    )
    assert _import_problems(tmp_path, base, text) == [
        "msel.csv, row 2, column \"Exercise Time (T+hh:mm:ss)\": 'T+1:2' is not hh:mm:ss; write it as T+01:02:00",
        "msel.csv, row 3, column \"Trigger\": 'whenever' is not a trigger; write time, manual, or after ID (the ID of an inject above)",
        "msel.csv, row 4, column \"Trigger\": no inject above this one has the ID 'nobody'; an inject follows an earlier one",
        "msel.csv, row 5, column \"Decision Gate\": 'perhaps' is not a decision gate; write yes or no",
        "msel.csv, row 6, column \"Machine Action\": not valid YAML (YAML syntax: did not find expected ',' or ']' "
        "(while parsing a flow sequence that starts at line 1, column 26); check indentation, quoting and brackets); "
        "write a YAML mapping such as {fault: link-down, link: cable-a, for: 120s}, or none for a message-only inject",
        "msel.csv, row 7, column \"Machine Action\": '[link-down]' is not a mapping; write a YAML mapping such as "
        "{fault: link-down, link: cable-a, for: 120s}, or none for a message-only inject",
        "msel.csv, row 8, column \"Machine Action\": a message-only inject (action none) needs its message in Description or Title",
        "msel.csv, row 9, column \"ID\": ID 'a' is row 2's too; give each inject an ID of its own",
    ]


def test_an_action_the_loader_refuses_is_reported_at_its_row(tmp_path: Path, base: Path) -> None:
    text = HEADER + "\nfibre-cut,T+00:00:05,,,,,\"{fault: link-down, link: cable-z, for: 5s}\"\n"
    problems = _import_problems(tmp_path, base, text)
    assert len(problems) == 1
    assert problems[0].startswith('msel.csv, row 2, column "Machine Action": not a valid step: `link`: ')
    assert "cable-z" in problems[0]


def test_the_time_column_is_required(tmp_path: Path, base: Path) -> None:
    problems = _import_problems(tmp_path, base, "ID,Title\na,x\n")
    assert problems == [
        'msel.csv, row 1: no "Exercise Time (T+hh:mm:ss)" column: every inject needs its exercise time (such as T+00:05:00)'
    ]


def test_bounds(tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvfile, "MAX_ROWS", 3)
    rows = "".join(f"n{k},T+00:00:0{k},,,,x,none\n" for k in range(1, 6))
    assert _import_problems(tmp_path, base, HEADER + "\n" + rows) == [
        "msel.csv, row 5: more than 3 injects; split the exercise into several scenarios"
    ]
    big = "y" * (16 * 1024 + 1)
    assert _import_problems(tmp_path, base, HEADER + f"\na,T+00:00:01,,,,{big},none\n") == [
        'msel.csv, row 2, column "Description": a cell of 16,385 bytes; the limit is 16 KiB: shorten it'
    ]
    latin1 = (HEADER + "\na,T+00:00:01,,,,x,none\nb,T+00:00:02,,,,caf\xe9,none\n").encode("latin-1")
    (problem,) = _import_problems(tmp_path, base, latin1)
    assert problem.startswith("msel.csv, row 3: not UTF-8 text (byte 0xe9); save the file as \"CSV UTF-8\"")
    assert _import_problems(tmp_path, base, HEADER + "\na,T+00:00:01,,,,x\0y,none\n") == [
        "msel.csv, row 2: a NUL byte: this is a binary file, not CSV text"
    ]
    assert _import_problems(tmp_path, base, HEADER + "\na,T+00:00:01,,,,x\x1by,none\n") == [
        'msel.csv, row 2, column "Description": control character U+001B in the cell; remove it'
    ]


def test_a_file_over_8_mib_is_refused(tmp_path: Path, base: Path) -> None:
    (problem,) = _import_problems(tmp_path, base, HEADER + "\n" + "a" * (8 * 1024 * 1024))
    assert problem.startswith("msel.csv: file is 8,388,6")
    assert "the limit is 8 MiB" in problem


def test_cli_exit_codes(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv, out = tmp_path / "msel.csv", tmp_path / "out.yaml"
    assert main(["-q", "msel", "export", str(base), "-o", str(csv)]) == ExitCode.OK
    assert main(["-q", "msel", "import", str(csv), "-o", str(out), "--into", str(base)]) == ExitCode.OK
    assert load_scenario(out).steps == load_scenario(base).steps
    # Again, into itself: the header comment is replaced, not repeated.
    assert main(["-q", "msel", "import", str(csv), "-o", str(out)]) == ExitCode.OK
    assert out.read_text().count("# timeline: imported from") == 1
    capsys.readouterr()
    assert main(["-q", "msel", "import", str(csv), "-o", str(tmp_path / "new.yaml")]) == ExitCode.BAD_INPUT
    assert "give the scenario the timeline plays on with --into BASE.yaml" in capsys.readouterr().err
    csv.write_text(HEADER + "\na,T+1:2,,,,x,none\n")
    assert main(["-q", "msel", "import", str(csv), "-o", str(out)]) == ExitCode.BAD_INPUT
    assert 'row 2, column "Exercise Time (T+hh:mm:ss)"' in capsys.readouterr().err
    assert main(["-q", "msel", "export", str(tmp_path / "missing.yaml"), "-o", str(csv)]) == ExitCode.BAD_INPUT


def test_the_example_exercise_msel_is_what_export_writes() -> None:
    scenario = REPO / "scenarios" / "pacific-link-exercise.yaml"
    csv_path = REPO / "scenarios" / "pacific-link-exercise.msel.csv"
    assert csv_path.read_bytes().decode() == msel_text(scenario), (
        "run: drill msel export scenarios/pacific-link-exercise.yaml -o scenarios/pacific-link-exercise.msel.csv"
    )


def test_a_problem_outside_the_timeline_is_at_the_base_files_line(tmp_path: Path, base: Path) -> None:
    (tmp_path / "msel.csv").write_text(HEADER + "\nnote-1,T+00:00:01,,,x,,none\n")
    with pytest.raises(ScenarioError) as caught:
        import_msel(tmp_path / "msel.csv", tmp_path / "out.yaml", base)
    (problem,) = caught.value.problems
    # Line 35 of the base: the objective that names the cut the MSEL no longer has.
    assert (problem.file, problem.line, problem.path) == (str(base), 35, "expect[0].step")
    assert "no timeline step has id 'fibre-cut'" in problem.message


def test_header_problems(tmp_path: Path, base: Path) -> None:
    assert _import_problems(tmp_path, base, "ID,Time,Exercise Time,,Notes,notes\na,T+00:00:01,,x,,\n") == [
        'msel.csv, row 1, column "Exercise Time": both this column and "Time" are the Exercise Time (T+hh:mm:ss) column; keep one',
        "msel.csv, row 1, column \"column 4\": a column without a header holds values; name it or delete it",
        'msel.csv, row 1, column "notes": a second column "Notes"; keep one',
    ]


def test_formula_like_cells_are_kept_from_spreadsheets_and_come_back(tmp_path: Path, base: Path) -> None:
    # `=...` would run as a formula when the CSV is opened (CSV injection): exported behind an
    # apostrophe, read back without it.
    csv_path = tmp_path / "msel.csv"
    csv_path.write_text(HEADER + "\nfibre-cut,T+00:00:05,,,'=1+1,\"'-ping\",\"{fault: link-down, link: fibre, for: 5s}\"\n")
    import_msel(csv_path, tmp_path / "out.yaml", base)
    inject = load_scenario(tmp_path / "out.yaml").source.timeline[0].inject
    assert inject is not None and (inject.title, inject.description) == ("=1+1", "-ping")
    header, row = csv.reader(io.StringIO(msel_text(tmp_path / "out.yaml").removeprefix("\ufeff")))
    assert (row[header.index("Title")], row[header.index("Description")]) == ("'=1+1", "'-ping")
    assert csvfile.unquoted("'- a list item") == "'- a list item"  # not a formula: kept as written


@pytest.mark.parametrize(
    ("base_text", "expected"),
    [
        # The timeline replaced; the comment before the next key stays with that key.
        (
            "version: 1\ntimeline:\n  - {at: 1s, fault: note, text: a}\n\n# the objectives\nexpect: []\n",
            "version: 1\ntimeline: []\n\n# the objectives\nexpect: []\n",
        ),
        # The last key, without a final newline.
        ("version: 1\ntimeline: [{at: 1s, fault: note, text: a}]", "version: 1\ntimeline: []\n"),
        # No timeline yet: before `expect:`.
        ("version: 1\nexpect: []\n", "version: 1\ntimeline: []\nexpect: []\n"),
        # An earlier import's header is replaced, not repeated.
        ("# timeline: imported from old.csv (...)\nversion: 1\n", "version: 1\ntimeline: []\n"),
    ],
)
def test_the_timeline_is_spliced_into_the_base(base_text: str, expected: str) -> None:
    spliced = scenariotext.splice(base_text, "timeline: []\n", "# header\n")
    assert spliced.text == "# header\n" + expected
    last = len(spliced.text.splitlines())
    if last > spliced.block_end:  # a line after the new timeline: at its line in the base
        assert spliced.base_line(last) == len(base_text.splitlines())

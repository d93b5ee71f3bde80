"""An MSEL CSV into a scenario's `timeline:`; the rest of the scenario (topology, probes,
`expect:`, `exercise:`) comes from a base scenario file, kept as written.

The result is checked by loading it as `drill run` would before it replaces anything: every
problem, the CSV's own and the loader's, is reported at its CSV row and column.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drills.errors import BadInput, Problem, ScenarioError
from drills.msel import MselError, RowProblem, cells, columns, scenariotext, yamlout
from drills.msel.csvfile import Table, read_table, write_text
from drills.scenario import userfile
from drills.scenario.loader import load_scenario
from drills.scenario.values import shown
from drills.scenario.yamlpos import YamlError, load_located


@dataclass
class Rows:
    """The steps read from an MSEL, each with its row, and where each step key came from."""

    table: Table
    steps: list[dict[str, Any]] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # the CSV row of each step
    text_from: list[str] = field(default_factory=list)  # the column a note's text came from, per step
    headers: dict[str, str] = field(default_factory=dict)  # column key -> the file's header
    problems: list[RowProblem] = field(default_factory=list)

    def problem(self, row: int, key: str, message: str) -> None:
        column = self.headers.get(key, columns.BY_KEY[key].header if key in columns.BY_KEY else key)
        self.problems.append(RowProblem(self.table.file, row, column, message))


def _columns(table: Table, rows: Rows) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """The index of each known column, and the extra columns (index, header) in file order."""
    known: dict[str, int] = {}
    extras: list[tuple[int, str]] = []
    seen_extra: dict[str, str] = {}
    for index, header in enumerate(table.header):
        if not header:
            if any(cells_[index].strip() for _row, cells_ in table.rows):
                rows.problems.append(
                    RowProblem(table.file, 1, f"column {index + 1}", "a column without a header holds values; name it or delete it")
                )
            continue
        column = columns.known(header)
        if column is None:
            if header.lower() in seen_extra:
                rows.problems.append(RowProblem(table.file, 1, header, f'a second column "{seen_extra[header.lower()]}"; keep one'))
            seen_extra[header.lower()] = header
            extras.append((index, header))
        elif column.key in known:
            first = table.header[known[column.key]]
            rows.problems.append(
                RowProblem(table.file, 1, header, f'both this column and "{first}" are the {column.header} column; keep one')
            )
        else:
            known[column.key] = index
            rows.headers[column.key] = header
    if "at" not in known:
        rows.problems.append(
            RowProblem(
                table.file,
                1,
                "",
                f'no "{columns.BY_KEY["at"].header}" column: every inject needs its exercise time (such as T+00:05:00)',
            )
        )
    return known, extras


def read_rows(table: Table, scenario_start: Any) -> Rows:
    """The steps of an MSEL table; problems are collected in `Rows.problems`, not raised."""
    rows = Rows(table)
    known, extras = _columns(table, rows)
    if rows.problems:
        return rows
    start = cells.start_time(scenario_start)
    ids: dict[str, int] = {}
    for number, row in table.rows:

        def cell(key: str, row: tuple[str, ...] = row) -> str:
            return row[known[key]].strip() if key in known else ""

        before = len(rows.problems)
        step, text_from = _step(rows, number, cell, start, ids)
        if extras:
            step.setdefault("inject", {})["extra"] = {header: row[index] for index, header in extras}
        if step.get("id"):
            ids.setdefault(step["id"], number)
        if len(rows.problems) == before:
            rows.steps.append(step)
            rows.numbers.append(number)
            rows.text_from.append(text_from)
    return rows


def _step(
    rows: Rows, number: int, cell: Callable[[str], str], start: dt.datetime | None, ids: dict[str, int]
) -> tuple[dict[str, Any], str]:
    """One row's step and the column a note's text came from ("" when not a note)."""
    step: dict[str, Any] = {}
    inject: dict[str, Any] = {}
    ident = cell("id")
    if ident:
        if ident in ids:
            rows.problem(number, "id", f"ID {shown(ident)} is row {ids[ident]}'s too; give each inject an ID of its own")
        step["id"] = ident
    at_s = 0.0
    action: dict[str, Any] | None = None
    action_read = False
    try:
        at_s, step["at"] = cells.parse_time(cell("at"))
    except cells.CellError as exc:
        rows.problem(number, "at", str(exc))
    parsers: tuple[tuple[str, Callable[[str], Any]], ...] = (
        ("trigger", cells.parse_trigger),
        ("gate", cells.parse_gate),
        ("action", cells.parse_action),
    )
    for key, parse in parsers:
        try:
            value = parse(cell(key))
        except cells.CellError as exc:
            rows.problem(number, key, str(exc))
            continue
        if key == "action":
            action, action_read = value, True
        elif value:
            step[key] = value
    after = step.get("trigger", {}).get("after") if isinstance(step.get("trigger"), dict) else None
    if after is not None and after not in ids:
        rows.problem(number, "trigger", f"no inject above this one has the ID {shown(after)}; an inject follows an earlier one")
    for name in columns.INJECT_TEXT_FIELDS:
        if cell(f"inject.{name}"):
            inject[name] = cell(f"inject.{name}")
    if "type" in inject:
        try:
            inject["type"] = cells.parse_type(inject["type"])
        except cells.CellError as exc:
            rows.problem(number, "inject.type", str(exc))
    if cell("inject.objectives"):
        inject["objectives"] = cells.parse_objectives(cell("inject.objectives"))
    moment = cell("inject.scenario_time")
    if moment and not (start is not None and cells.same_clock(moment, start + dt.timedelta(seconds=at_s))):
        inject["scenario_time"] = moment  # a default one (scenario_start + T+) is left out
    text_from = ""
    if action_read and action is None:
        # A message-only inject: a note, its text the Description (else the Title).
        text_from = "inject.description" if inject.get("description") else "inject.title"
        text = inject.pop("description", None) or inject.get("title")
        if not text:
            rows.problem(number, "action", "a message-only inject (action none) needs its message in Description or Title")
        step.update({"fault": "note", "text": text or ""})
    elif action is not None:
        step.update(action)
    if inject:
        step["inject"] = inject
    return step, text_from


def timeline_yaml(steps: list[dict[str, Any]]) -> str:
    """The `timeline:` key and its steps, as block YAML."""
    if not steps:
        return "timeline: []\n"
    return "timeline:\n" + "".join(yamlout.step(step) for step in steps)


_STEP_PATH = re.compile(r"^timeline\[(\d+)\](?:\.(.*))?$")


def _located(problem: Problem, rows: Rows, spliced: scenariotext.Spliced, candidate: Path, base: Path) -> RowProblem | Problem:
    """A loader problem at its CSV row and column, or (outside the timeline) at the base file's line."""
    match = _STEP_PATH.match(problem.path)
    if match and int(match.group(1)) < len(rows.steps):
        index = int(match.group(1))
        rest = match.group(2) or ""
        first = rest.split(".")[0].split("[")[0]
        if first in ("id", "at", "trigger", "gate"):
            key, message = first, problem.message
        elif first == "inject" and rest.startswith("inject.extra.") and rows.table.header:
            # An extra column's value: at that column (its header is the key).
            return RowProblem(rows.table.file, rows.numbers[index], rest.removeprefix("inject.extra."), problem.message)
        elif first == "inject":
            inner = rest.split(".")[1].split("[")[0] if "." in rest else ""
            key = f"inject.{inner}" if f"inject.{inner}" in columns.BY_KEY else "action"
            message = problem.message if key != "action" else f"`{rest}`: {problem.message}"
        elif first == "text" and rows.text_from[index]:
            key, message = rows.text_from[index], problem.message
        else:
            key = "action"
            message = f"not a valid step: `{rest}`: {problem.message}" if rest else f"not a valid step: {problem.message}"
        column = rows.headers.get(key, columns.BY_KEY[key].header)
        return RowProblem(rows.table.file, rows.numbers[index], column, message)
    if Path(problem.file) == candidate:
        line = spliced.base_line(problem.line) if problem.line else 0
        return Problem(str(base), line, problem.column if line else 0, problem.path, problem.message)
    return problem


def _whole(problem: Problem) -> RowProblem:
    where = f"{problem.file}:{problem.line}:{problem.column}" if problem.line else problem.file
    return RowProblem(where, 0, "", f"{problem.path}: {problem.message}" if problem.path else problem.message)


def import_msel(csv_path: Path, out: Path, into: Path | None = None) -> int:
    """Write `out`: the scenario `into` (default: `out` itself) with the MSEL's timeline.
    Returns the number of steps; MselError (rows) or ScenarioError (the base) on bad input."""
    base = into if into is not None else out
    if into is None and not os.path.lexists(out):
        raise BadInput(
            f"{out} does not exist: give the scenario the timeline plays on with --into BASE.yaml "
            "(its topology, probes, expect and exercise are kept; its timeline is replaced)"
        )
    try:
        base_text = userfile.read_text(base)
    except userfile.FileRefused as exc:
        raise BadInput(f"{base}: {exc.reason}") from None
    try:
        located = load_located(base_text, str(base))
    except YamlError as exc:
        raise ScenarioError(exc.problems) from None
    data = located.data
    if not isinstance(data, dict) or "topology" not in data:
        raise BadInput(
            f"{base} is not a scenario (a mapping with `version: 1` and `topology:`); --into names the scenario "
            "whose topology, probes and objectives the timeline plays on"
        )
    exercise = data["exercise"] if isinstance(data.get("exercise"), dict) else {}
    rows = read_rows(read_table(csv_path), exercise.get("scenario_start"))
    if rows.problems:
        raise MselError(rows.problems)
    header = (
        f"{scenariotext.HEADER_MARK}{csv_path.name} (drill msel import); edit the MSEL and import it again, "
        "or edit here and export it again (drill msel export)\n"
    )
    spliced = scenariotext.splice(base_text, timeline_yaml(rows.steps), header)
    candidate = out.with_name(f".{out.name}.{os.getpid()}.check.yaml")
    write_text(candidate, spliced.text)
    try:
        load_scenario(candidate)
    except ScenarioError as exc:
        located_problems = [_located(p, rows, spliced, candidate, base) for p in exc.problems]
        at_rows = [p for p in located_problems if isinstance(p, RowProblem)]
        elsewhere = [p for p in located_problems if isinstance(p, Problem)]
        if at_rows:
            raise MselError(at_rows + [_whole(p) for p in elsewhere]) from None
        raise ScenarioError(elsewhere) from None
    finally:
        candidate.unlink(missing_ok=True)
    write_text(out, spliced.text)
    return len(rows.steps)

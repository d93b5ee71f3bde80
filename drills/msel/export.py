"""A scenario's timeline as an MSEL: one row per step, in the timeline's order.

The rows come from the steps as the scenario file writes them (the machine action keeps the
author's `for: 2m`, not a re-rendered 120.0), after the whole scenario has been loaded and
checked: a scenario that does not load is not exported.

A message-only inject is a `note` step. When the inject has no description of its own, the
note's text is the Description cell and the action is `none`; import reads `none` back as a
note whose text is the Description (or, when that is empty, the Title). A note whose inject has
a description of its own keeps its text in the action: `{fault: note, text: ...}`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from drills.msel import cells, columns
from drills.msel.csvfile import csv_text, write_text
from drills.scenario import units
from drills.scenario.loader import load_scenario
from drills.scenario.yamlpos import read_located


def raw_scenario(path: Path) -> dict[str, Any]:
    """The scenario file as written (plain data), once it loads: ScenarioError otherwise."""
    load_scenario(path)
    data = read_located(path).data
    assert isinstance(data, dict)  # load_scenario accepted it: a mapping
    return data


def _extra_headers(steps: list[dict[str, Any]]) -> list[str]:
    order: list[str] = []
    for step in steps:
        inject = step.get("inject")
        extra = inject.get("extra") if isinstance(inject, dict) else None
        if isinstance(extra, dict):
            order.extend(str(key) for key in extra if str(key) not in order)
    return order


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime):  # YAML read a scenario time as a timestamp
        return cells.format_clock(value)
    return "" if value is None else str(value)


def _is_message_only(step: dict[str, Any]) -> bool:
    inject = _mapping(step.get("inject"))
    action = {k: v for k, v in step.items() if k not in cells.NOT_ACTION_KEYS}
    return set(action) == {"fault", "text"} and step.get("fault") == "note" and not inject.get("description")


def row(step: dict[str, Any], start: Any, extra_headers: list[str]) -> list[str]:
    """The cells of one step, in the order of `columns.COLUMNS`, then the extra columns."""
    inject = _mapping(step.get("inject"))
    at_s = units.parse_duration_s(step["at"])
    message_only = _is_message_only(step)
    values: dict[str, str] = {
        "id": _text(step.get("id")),
        "at": cells.format_time(at_s),
        "trigger": cells.format_trigger(step.get("trigger")),
        "gate": "yes" if step.get("gate") is True else "no",
    }
    if message_only:
        values["action"] = cells.NONE
    else:
        values["action"] = cells.format_action({k: v for k, v in step.items() if k not in cells.NOT_ACTION_KEYS})
    for field in columns.INJECT_TEXT_FIELDS:
        values[f"inject.{field}"] = _text(inject.get(field))
    if message_only:
        values["inject.description"] = _text(step.get("text"))
    values["inject.objectives"] = cells.format_objectives(inject.get("objectives", []))
    moment = cells.start_time(start)
    if inject.get("scenario_time") is not None:
        values["inject.scenario_time"] = _text(inject["scenario_time"])
    elif moment is not None:
        values["inject.scenario_time"] = cells.format_clock(moment + dt.timedelta(seconds=at_s))
    else:
        values["inject.scenario_time"] = ""
    extra = _mapping(inject.get("extra"))
    return [values[column.key] for column in columns.COLUMNS] + [_text(extra.get(name)) for name in extra_headers]


def msel_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the MSEL of the scenario at `path`."""
    data = raw_scenario(path)
    steps = [step for step in data.get("timeline") or [] if isinstance(step, dict)]
    start = _mapping(data.get("exercise")).get("scenario_start")
    extra_headers = _extra_headers(steps)
    header = [column.header for column in columns.COLUMNS] + extra_headers
    return header, [row(step, start, extra_headers) for step in steps]


def msel_text(path: Path) -> str:
    """The MSEL of the scenario at `path`, as CSV text."""
    return csv_text(*msel_table(path))


def write_msel(scenario: Path, out: Path) -> int:
    """Write the MSEL of `scenario` to `out`; returns the number of rows (injects)."""
    header, rows = msel_table(scenario)
    write_text(out, csv_text(header, rows))
    return len(rows)

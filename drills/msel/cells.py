"""One MSEL cell to a step's value and back: exercise time, trigger, decision gate, objectives,
scenario time and the machine action. A parser raises `CellError` with a message that says what
to write instead; the caller adds the row and column.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from drills.msel import yamlout
from drills.scenario.values import shown
from drills.scenario.yamlpos import YamlError, load_located


class CellError(ValueError):
    """A cell drills cannot read; the message says what to write."""


# --------------------------------------------------------------------------- exercise time

_TIME = re.compile(r"^(?:T\+)?(\d{2,3}):([0-5]\d):([0-5]\d(?:\.\d{1,9})?)$")
_LOOSE = re.compile(r"^(?:T\s*\+\s*)?(\d+)(?::(\d+))?(?::(\d+(?:\.\d+)?))?$")


def format_time(seconds: float) -> str:
    """`T+hh:mm:ss`, with the fraction when there is one (`T+00:01:00.5`); hours go past 24."""
    exact = Decimal(repr(seconds))  # the shortest text of the float: no 0.1 -> 0.1000000000000000055
    whole = int(exact)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    fraction = exact - whole
    tail = "" if not fraction else format(fraction, "f")[1:].rstrip("0")
    return f"T+{hours:02d}:{minutes:02d}:{secs:02d}{tail}"


def parse_time(cell: str) -> tuple[float, str]:
    """Seconds and the `at:` text of an exercise-time cell (`T+01:02:03`, `T+00:01:00.5`)."""
    text = cell.strip()
    match = _TIME.match(text)
    if match is None:
        raise CellError(f"{shown(text)} is not hh:mm:ss; write it as {_suggest(text)}")
    hours, minutes, secs = match.groups()
    # The sum the scenario's duration parser makes of `T+hh:mm:ss`: the same float both ways.
    seconds = int(hours) * 3600 + int(minutes) * 60 + float(secs)
    return seconds, f"T+{hours}:{minutes}:{secs}"


def _suggest(text: str) -> str:
    loose = _LOOSE.match(text.replace(" ", ""))
    if loose is None:
        return "T+hh:mm:ss (such as T+00:05:00, or T+00:01:00.5)"
    hours, minutes, secs = loose.groups()
    whole, _, fraction = (secs or "0").partition(".")
    return f"T+{int(hours):02d}:{int(minutes or 0):02d}:{int(whole):02d}{'.' + fraction if fraction else ''}"


# --------------------------------------------------------------------------- trigger, gate, objectives

_AFTER = re.compile(r"^after\s*:?\s*(\S+)$", re.IGNORECASE)


def format_trigger(value: Any) -> str:
    """`time`, `manual` or `after ID`."""
    if isinstance(value, dict) and "after" in value:
        return f"after {value['after']}"
    return str(value) if value is not None else "time"


def parse_trigger(cell: str) -> Any:
    """None (timed: the default), `manual`, or `{after: ID}`."""
    text = cell.strip()
    if text.lower() in ("", "time", "timed"):
        return None
    if text.lower() == "manual":
        return "manual"
    after = _AFTER.match(text)
    if after:
        return {"after": after.group(1)}
    raise CellError(f"{shown(text)} is not a trigger; write time, manual, or after ID (the ID of an inject above)")


_YES = ("yes", "y", "true", "x", "1")
_NO = ("", "no", "n", "false", "0", "-")


def parse_gate(cell: str) -> bool:
    text = cell.strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise CellError(f"{shown(cell.strip())} is not a decision gate; write yes or no")


def format_objectives(value: Any) -> str:
    return ", ".join(str(item) for item in value) if isinstance(value, list) else str(value)


def parse_objectives(cell: str) -> list[str]:
    return [item for item in re.split(r"[\s,;]+", cell.strip()) if item]


def parse_type(cell: str) -> str:
    from drills.msel.columns import INJECT_TYPES

    text = cell.strip()
    if text.lower() in INJECT_TYPES:
        return text.lower()
    raise CellError(f"{shown(text)} is not an inject type; write {', '.join(INJECT_TYPES[:-1])} or {INJECT_TYPES[-1]}")


# --------------------------------------------------------------------------- scenario time


def start_time(value: Any) -> dt.datetime | None:
    """The exercise's `scenario_start` as a datetime (YAML may have read it as one already)."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def format_clock(moment: dt.datetime) -> str:
    """ISO 8601 as planners write it: minutes when the seconds are zero."""
    spec = "minutes" if not moment.second and not moment.microsecond else "auto"
    return moment.isoformat(timespec=spec)


def same_clock(cell: str, moment: dt.datetime) -> bool:
    """Does the scenario-time cell name the moment `moment` (the default scenario time)?"""
    try:
        return dt.datetime.fromisoformat(cell.strip()) == moment
    except (ValueError, TypeError):  # TypeError: one with a time zone, one without
        return False


# --------------------------------------------------------------------------- machine action

NONE = "none"
NOT_ACTION_KEYS = ("id", "at", "trigger", "gate", "inject")
ACTION_HINT = "write a YAML mapping such as {fault: link-down, link: cable-a, for: 120s}, or none for a message-only inject"


def format_action(action: dict[str, Any]) -> str:
    return yamlout.flow(action)


def parse_action(cell: str) -> dict[str, Any] | None:
    """The step keys of a machine-action cell, or None for a message-only inject."""
    text = cell.strip()
    if text.lower() in ("", NONE, "-"):
        return None
    try:
        data = load_located(text, "cell").data
    except YamlError as exc:
        first = exc.problems[0]
        raise CellError(f"not valid YAML ({first.message}); {ACTION_HINT}") from None
    if not isinstance(data, dict):
        raise CellError(f"{shown(text)} is not a mapping; {ACTION_HINT}")
    for key in NOT_ACTION_KEYS:
        if key in data:
            raise CellError(
                f"the action holds `{key}:`, which has a column of its own; move it there and leave the action "
                f"without it ({ACTION_HINT})"
            )
    return data

"""The MSEL's columns: the header each is exported under, the names planners give it, and the
step key or inject field it carries.

HSEEP does not fix a spelling: one team writes "Inject #", another "ID"; "Move", "Phase" or
"Move/Phase". A header is matched by its letters and digits only, case-insensitive
("Exercise Time (T+hh:mm:ss)" is "exercisetimethhmmss"), against the export name and the
aliases below. A header that matches nothing is an extra column, kept in `inject.extra`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One known MSEL column."""

    key: str  # the step key (`id`, `at`, `trigger`, `gate`, `action`) or `inject.FIELD`
    header: str  # as export writes it
    aliases: tuple[str, ...] = ()


COLUMNS: tuple[Column, ...] = (
    Column("id", "ID", ("Inject ID", "Inject #", "Inject No", "Inject Number", "Event ID", "MSEL ID", "No", "#")),
    Column("at", "Exercise Time (T+hh:mm:ss)", ("Exercise Time", "Ex Time", "T+", "Time", "Inject Time", "Planned Time")),
    Column("inject.scenario_time", "Scenario Time", ("Scenario Clock", "Simulated Time", "Game Time")),
    Column("inject.phase", "Move/Phase", ("Move", "Phase", "Move / Phase", "Stage")),
    Column("inject.type", "Inject Type", ("Type", "Event Type")),
    Column("inject.method", "Delivery Method", ("Method", "Delivery", "Mode", "Inject Method")),
    Column("inject.from", "From", ("Sender", "Source", "Originator")),
    Column("inject.to", "To", ("Recipient", "Recipients", "Receiver", "Player", "Players", "Addressee")),
    Column("inject.title", "Title", ("Inject Title", "Event Title", "Subject", "Short Description")),
    Column("inject.description", "Description", ("Description / Script", "Script", "Details", "Message", "Inject Text")),
    Column("inject.expected_actions", "Expected Actions", ("Expected Action", "Expected Player Actions", "Expected Response", "Expected Outcome")),
    Column(
        "inject.objectives",
        "Objectives / Capability Targets",
        ("Objectives", "Objective", "Capability Targets", "Capability Target", "Objectives Supported", "Objective IDs"),
    ),
    Column("inject.controller", "Responsible Controller", ("Controller", "Controller Responsible")),
    Column("inject.evaluator_notes", "Evaluator Notes", ("Evaluator Note", "Notes for Evaluators", "Evaluator Guidance")),
    Column("trigger", "Trigger", ("Trigger Type", "Release")),
    Column("gate", "Decision Gate", ("Gate", "Decision Point", "Hold Point")),
    Column("action", "Machine Action", ("Action", "Drills Action", "Fault", "Automation")),
)

BY_KEY: dict[str, Column] = {column.key: column for column in COLUMNS}

INJECT_TEXT_FIELDS: tuple[str, ...] = (
    "phase",
    "type",
    "method",
    "from",
    "to",
    "title",
    "description",
    "expected_actions",
    "controller",
    "evaluator_notes",
)
"""The inject fields that are free text in one cell (objectives are a list; scenario time and
extra are handled on their own)."""

INJECT_TYPES: tuple[str, ...] = ("event", "information", "contingency")

_FOLD = re.compile(r"[^0-9a-z#+]")


def folded(header: str) -> str:
    """A header as it is compared: lower case, letters, digits, `#` and `+` only."""
    return _FOLD.sub("", header.strip().lower())


_KNOWN: dict[str, Column] = {}
for _column in COLUMNS:
    for _name in (_column.header, *_column.aliases):
        _KNOWN.setdefault(folded(_name), _column)


def known(header: str) -> Column | None:
    """The known column a header names, or None (an extra column)."""
    return _KNOWN.get(folded(header))

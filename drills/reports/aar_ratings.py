"""ratings.yaml: the evaluators' ratings of the capability targets, over the suggested ones.

```yaml
ratings:
  O1.1: {rating: S, by: "Lead evaluator", reason: "backup came up, but by hand"}
```
`drill aar` writes a template when there is none (every target commented out, with its
suggested rating and why); the evaluators uncomment and fill in the targets they rate and run
`drill aar` again. The file is read within the bounds of drills.scenario.userfile (4 MiB,
regular file, UTF-8 text) and checked whole: every problem is reported at once, with the file,
line and column, and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.errors import BadInput, Problem
from drills.reports.aar_model import Exercise
from drills.reports.aar_rating import RATINGS, Suggestion
from drills.scenario.yamlcompose import token
from drills.scenario.yamlpos import KeyPath, Located, YamlError, path_text, read_located
from drills.textsafe import visible

RATINGS_FILE = "ratings.yaml"
MAX_BY_CHARS = 200
MAX_REASON_CHARS = 4096
_ENTRY_KEYS = ("rating", "by", "reason")


@dataclass(frozen=True)
class Override:
    """An evaluator's rating of one target: final, shown beside the suggested one."""

    rating: str
    by: str
    reason: str


def read_ratings(path: Path, target_ids: list[str]) -> dict[str, Override]:
    """The ratings of `path` by target id; BadInput listing every problem of the file."""
    try:
        located = read_located(path)
    except YamlError as exc:
        raise BadInput(_message(path, exc.problems)) from None
    checker = _Checker(path, located, target_ids)
    overrides = checker.check()
    if checker.problems:
        raise BadInput(_message(path, checker.problems))
    return overrides


def _message(path: Path, problems: list[Problem]) -> str:
    noun = "problem" if len(problems) == 1 else "problems"
    lines = "\n".join(f"  {p}" for p in problems)
    return f"{len(problems)} {noun} in {path}:\n{lines}\nfix the file (or remove it for a new template) and run `drill aar` again"


class _Checker:
    def __init__(self, path: Path, located: Located, target_ids: list[str]) -> None:
        self.path = path
        self.located = located
        self.targets = target_ids
        self.problems: list[Problem] = []

    def problem(self, where: KeyPath, message: str, *, key: bool = False) -> None:
        mark = self.located.mark(where, key=key)
        line, column = (mark.line, mark.column) if mark is not None else (0, 0)
        self.problems.append(Problem(str(self.path), line, column, path_text(where), message))

    def check(self) -> dict[str, Override]:
        data = self.located.data
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem((), "expected a mapping with one key, `ratings:`")
            return {}
        for key in data:
            if key != "ratings":
                self.problem((key,), f"unknown key {token(key)}; the file has one key, `ratings:`", key=True)
        ratings = data.get("ratings")
        if ratings is None:
            return {}
        if not isinstance(ratings, dict):
            self.problem(("ratings",), "expected a mapping of capability target ids to {rating, by, reason}")
            return {}
        out = {}
        for target, entry in ratings.items():
            override = self.entry(target, entry)
            if override is not None:
                out[target] = override
        return out

    def entry(self, target: str, entry: Any) -> Override | None:
        where: KeyPath = ("ratings", target)
        if target not in self.targets:
            known = ", ".join(self.targets[:20]) or "none"
            self.problem(where, f"no capability target {token(target)} in this exercise; its targets: {known}", key=True)
            return None
        if entry is None:
            return None
        if not isinstance(entry, dict):
            self.problem(where, "expected a mapping: {rating: P|S|M|U, by: WHO, reason: WHY}")
            return None
        for key in entry:
            if key not in _ENTRY_KEYS:
                self.problem((*where, key), f"unknown key {token(key)}; allowed: {', '.join(_ENTRY_KEYS)}", key=True)
        rating = entry.get("rating")
        if not isinstance(rating, str) or rating not in RATINGS:
            shown = "missing" if rating is None else token(str(rating))
            self.problem((*where, "rating"), f"rating is {shown}; give one of P, S, M, U", key=rating is None)
            return None
        by = self.text((*where, "by"), entry.get("by"), MAX_BY_CHARS)
        reason = self.text((*where, "reason"), entry.get("reason"), MAX_REASON_CHARS)
        return Override(rating, by, reason)

    def text(self, where: KeyPath, value: Any, limit: int) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problem(where, "expected text (quote it)")
            return ""
        if len(value) > limit:
            self.problem(where, f"{len(value)} characters; at most {limit}")
            return ""
        return value


def template(exercise: Exercise, suggestions: dict[str, Suggestion]) -> str:
    """A ratings.yaml with every target commented out, its suggested rating beside it: remove the
    first `# ` of a target's lines to rate it. Text from the scenario goes only into comments,
    on one line, and each target id as a JSON string (which YAML reads as a double-quoted one)."""
    lines = [
        f"# The evaluators' ratings of the capability targets of {_comment(exercise.title)} (run {_comment(exercise.run_id)}).",
        "# P: performed without challenges; S: with some challenges; M: with major challenges; U: unable to be performed.",
        "# To rate a target: remove the first `# ` of its lines, set rating (P, S, M or U), by and reason,",
        "# then run `drill aar RUN_DIR` again: the report shows the suggested and the final rating.",
        "ratings:",
    ]
    if not suggestions:
        lines.insert(0, "# This exercise states no capability targets: there is nothing to rate.")
    for objective in exercise.objectives:
        for target in objective.targets:
            suggestion = suggestions[target.id]
            suggested = suggestion.rating or "none"
            why = "; ".join(suggestion.reasons[:6]) + (" …" if len(suggestion.reasons) > 6 else "")
            lines += [
                f"  # {json.dumps(target.id)}:  # {_comment(target.title)}: suggested {suggested}: {_comment(why)}",
                f"  #   rating: {suggestion.rating}" if suggestion.rating else "  #   rating:  # P, S, M or U: nothing measured, rate it",
                '  #   by: ""',
                '  #   reason: ""',
            ]
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    """Scenario text made safe inside a YAML comment: one line, no control character."""
    return visible(text[:300], one_line=True)

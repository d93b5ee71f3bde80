"""What every part of the resolver shares: the located file, the known profiles, and the list
of problems each check appends to (one pass reports everything, each problem at its key)."""

from __future__ import annotations

from drills.errors import Problem
from drills.scenario import model
from drills.scenario.diagnostics import problem_at, suggest
from drills.scenario.yamlpos import KeyPath, Located


class Reporter:
    """The resolver's state: checks append located problems here and carry on."""

    def __init__(
        self, located: Located, profiles: dict[str, model.Profile], invalid_profiles: set[str] | None = None
    ) -> None:
        self.located = located
        self.profiles = profiles
        self.invalid_profiles = invalid_profiles or set()
        self.problems: list[Problem] = []

    def err(self, path: KeyPath, message: str, *, key: bool = False) -> None:
        self.problems.append(problem_at(self.located, path, message, key=key))

    def line_of(self, path: KeyPath) -> str:
        mark = self.located.mark(path)
        return f"line {mark.line}" if mark else "elsewhere"

    def unknown_profile(self, name: str) -> str:
        """The problem of a reference to a profile nobody defined."""
        return (
            f"unknown link profile '{name}'{suggest(name, self.profiles)} (known: {', '.join(sorted(self.profiles))})"
        )

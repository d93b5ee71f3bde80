"""The one error tree of drills, and the exit codes it maps to.

Library code raises these; only the CLI turns them into messages and exit codes. A probe that
fails is data and a missed objective is a verdict: neither is an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the `drill` command (documented in README.md)."""

    OK = 0
    OBJECTIVES_MISSED = 1
    BAD_INPUT = 2
    ENVIRONMENT = 3
    INCONCLUSIVE = 4
    CLEANUP_INCOMPLETE = 5
    ABORTED = 130


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    path: str  # key path such as "topology.links[2].endpoints[0]"; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class DrillError(Exception):
    """Base of every error drills raises on purpose."""

    exit_code: ExitCode = ExitCode.ENVIRONMENT


class BadInput(DrillError):
    """The user gave us something we cannot use: fix the input and try again."""

    exit_code = ExitCode.BAD_INPUT


class ScenarioError(BadInput):
    """A scenario file has problems; every one found is listed, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path))
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun}:\n" + "\n".join(str(p) for p in self.problems))


class EnvironmentProblem(DrillError):
    """This host or a backend cannot do what was asked (not root, no namespace support...)."""

    exit_code = ExitCode.ENVIRONMENT


class BackendError(EnvironmentProblem):
    """A backend operation failed; carries what was being done and on which object."""


class NameExists(BackendError):
    """An object could not be created because one of that name exists already: that object is
    not the run's, and its teardown must leave it alone."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class HostError(EnvironmentProblem):
    """A remote host of a several-machines testbed could not do what was asked (unreachable,
    a provisioning task failed, a capability is missing); the message names each host, the step
    and why. `hosts` lists the inventory names of the hosts at fault."""

    def __init__(self, message: str, hosts: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.hosts = hosts


class CleanupIncomplete(DrillError):
    """Something a run created could not be removed; the message says what and how."""

    exit_code = ExitCode.CLEANUP_INCOMPLETE


class Aborted(DrillError):
    """The user or a signal stopped the run (everything created was still reverted)."""

    exit_code = ExitCode.ABORTED

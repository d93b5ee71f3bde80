"""One-shot timeline steps: `note` (an exercise message) and `exec` (a command in a node)."""

from __future__ import annotations

from dataclasses import dataclass

from drills.engine.fault import FaultContext, register
from drills.errors import BackendError
from drills.scenario.steps import ExecStep, NoteStep

EXEC_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Note:
    """An exercise message, written to the run's log at its instant."""

    text: str
    reversible: bool = False
    in_force_at_first_change = False

    def describe(self, reverted: bool = False) -> str:
        return f"note: {self.text}"

    def touches(self) -> list[str]:
        return []

    def apply(self, ctx: FaultContext) -> None:
        pass  # the runner logs every step with its instant; a note is nothing more

    def revert(self, ctx: FaultContext) -> None:
        pass


@dataclass(frozen=True)
class Exec:
    """A command run in a node (a configuration change as an inject). The step's instant is when
    the command started (marked in force then, where the backend tells it: what the command then
    does, in its own run time, is what follows the inject, as an operator's command would); it
    is confirmed when it exited with status 0."""

    node: str
    command: str
    reversible: bool = False
    in_force_at_first_change = False

    def describe(self, reverted: bool = False) -> str:
        return f"exec on {self.node}: {self.command}"

    def touches(self) -> list[str]:
        return [f"{self.node}: whatever `{self.command}` changes (run in the node's namespace)"]

    def apply(self, ctx: FaultContext) -> None:
        command = self.command
        result = ctx.ops.exec(self.node, command, EXEC_TIMEOUT_S, ctx.mark_in_force)
        for line in (result.stdout + result.stderr).splitlines()[-5:]:
            ctx.log(f"  {self.node}$ {line}")
        if result.returncode != 0:
            raise BackendError(f"exec on {self.node} failed with status {result.returncode}: {command}")

    def revert(self, ctx: FaultContext) -> None:
        pass


@register("note")
def _note(step: NoteStep) -> Note:
    return Note(step.text)


@register("exec")
def _exec(step: ExecStep) -> Exec:
    return Exec(step.node, step.command)

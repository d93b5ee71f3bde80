"""The parsed model of the timeline: one model per fault kind, and `restore` steps.

Part of the parsed model (drills.scenario.model re-exports all of it); the links, nodes and
services a step names are checked, and the step resolved, by the resolver (drills.scenario.steps).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag

from drills.scenario.fields import Command, Name, Percent, Period, Seconds, Strict
from drills.scenario.model_exercise import Cued
from drills.scenario.model_topology import Impairment

# --------------------------------------------------------------------------- timeline


class Repeat(Strict):
    """Repeat a step."""

    every: Period
    count: int = Field(ge=1, le=100_000)


class _Step(Cued):
    id: Name | None = Field(None, description="Name to refer to this step (restore, expect).")
    at: Seconds = Field(description="Offset from the start of the drill (of an inject fired by hand: its planned time).")
    duration: Seconds | None = Field(None, alias="for", description="Revert automatically after this long.")
    repeat: Repeat | None = None


class LinkDown(_Step):
    """Carrier loss on a link (both ends, or one)."""

    fault: Literal["link-down"]
    link: str = Field(
        description="Link name or one of its endpoints; or a LAN segment's name (every member loses its port: "
        "a switch failure) or one of its members `node:iface` (that member's port only)."
    )
    end: str | None = Field(None, description="Only this endpoint goes down (of a segment: this member's port).")


class LinkFlap(_Step):
    """A link that goes down and up repeatedly."""

    fault: Literal["link-flap"]
    link: str
    period: Period
    duty: Percent = Field(50.0, description="Share of each period spent down.")
    count: int = Field(ge=1, le=10_000)
    jitter: Seconds = 0.0


class Ramp(Strict):
    """Change a delay from one value to another over time."""

    delay_from: Seconds = Field(alias="from")
    delay_to: Seconds = Field(alias="to")
    over: Seconds


class Degrade(_Step, Impairment):
    """Impair a link: netem-style parameters, a named profile, or a ramp."""

    fault: Literal["degrade"]
    link: str
    direction: Literal["both", "a-to-b", "b-to-a"] = "both"
    profile: Name | None = None
    ramp: Ramp | None = None


class Blackhole(_Step):
    """Gray failure: carrier stays up, every packet is dropped."""

    fault: Literal["blackhole"]
    link: str


class Partition(_Step):
    """Cut groups of nodes from each other."""

    fault: Literal["partition"]
    groups: list[list[Name]] = Field(min_length=2)
    one_way: bool = False


class NodeLoss(_Step):
    """A node crashes or loses power: processes killed, interfaces dark."""

    fault: Literal["node-loss"]
    node: Name


class NodeFreeze(_Step):
    """A node hangs: its processes are stopped, not killed."""

    fault: Literal["node-freeze"]
    node: Name


class ServiceStop(_Step):
    """Stop one named service."""

    fault: Literal["service-stop"]
    node: Name
    service: Name


class ExecStep(_Step):
    """Run a command on a node (a configuration change as an inject)."""

    fault: Literal["exec"]
    node: Name
    command: Command


class NoteStep(_Step):
    """An exercise message written to the run's log."""

    fault: Literal["note"]
    text: str


class RestoreStep(Cued):
    """Revert an earlier step by its id."""

    id: Name | None = Field(None, description="Name of this inject (the MSEL's id).")
    at: Seconds
    restore: Name


FAULT_KINDS: dict[str, type[Strict]] = {
    "link-down": LinkDown,
    "link-flap": LinkFlap,
    "degrade": Degrade,
    "blackhole": Blackhole,
    "partition": Partition,
    "node-loss": NodeLoss,
    "node-freeze": NodeFreeze,
    "service-stop": ServiceStop,
    "exec": ExecStep,
    "note": NoteStep,
}


def _step_kind(value: object) -> str | None:
    """Which model reads a timeline step: `restore` steps, else the `fault` key."""
    if isinstance(value, dict):
        if "restore" in value and "fault" not in value:
            return "restore"
        kind = value.get("fault")
        return kind if isinstance(kind, str) else None
    return "restore" if isinstance(value, RestoreStep) else getattr(value, "fault", None)


Step = Annotated[
    Annotated[LinkDown, Tag("link-down")]
    | Annotated[LinkFlap, Tag("link-flap")]
    | Annotated[Degrade, Tag("degrade")]
    | Annotated[Blackhole, Tag("blackhole")]
    | Annotated[Partition, Tag("partition")]
    | Annotated[NodeLoss, Tag("node-loss")]
    | Annotated[NodeFreeze, Tag("node-freeze")]
    | Annotated[ServiceStop, Tag("service-stop")]
    | Annotated[ExecStep, Tag("exec")]
    | Annotated[NoteStep, Tag("note")]
    | Annotated[RestoreStep, Tag("restore")],
    Discriminator(_step_kind),
]

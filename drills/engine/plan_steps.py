"""`drill plan`'s words for one timeline step: what it does when `drill run` cannot build its
fault yet, and how its inject is delivered in play (drills.engine.player)."""

from __future__ import annotations

from drills.engine.timeline import Action
from drills.scenario.resolved import Scenario
from drills.scenario.steps import DegradeStep, LinkDownStep, SegmentDownStep, Step


def cue_text(scenario: Scenario, action: Action) -> str | None:
    """How the action's inject is delivered in play, in words (None: at its planned time)."""
    cue = scenario.cue(action.inject)
    parts = []
    if cue.trigger == "manual":
        parts.append("manual: fired by a controller (a dry run: at this planned time)")
    elif cue.trigger == "after" and cue.after is not None:
        parts.append(f"after {scenario.steps[cue.after].name}, at the planned gap")
    if cue.gate:
        parts.append("decision gate: held until a controller releases it")
    return "; ".join(parts) or None


def summary(step: Step) -> str:
    """A fault in words, from its step alone (for faults `drill run` cannot build yet)."""
    parts = []
    if isinstance(step, SegmentDownStep):
        parts.append(f"segment {step.segment.name}")
        if len(step.ends) == 1:
            parts.append(f"port {step.ends[0].endpoint}")
    for key in ("link", "node", "service"):
        value = getattr(step, key, None)
        if value is not None:
            parts.append(f"{key} {value if isinstance(value, str) else value.name}")
    if isinstance(step, LinkDownStep) and len(step.ends) == 1:
        parts.append(f"end {step.ends[0].endpoint}")
    if isinstance(step, DegradeStep) and step.profile is not None:
        parts.append(f"profile {step.profile}")
    groups = getattr(step, "groups", None)
    if groups:
        parts.append("groups " + " | ".join(", ".join(group) for group in groups))
    return f"{step.kind}: {', '.join(parts)}" if parts else step.kind

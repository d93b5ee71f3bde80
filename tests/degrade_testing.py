"""Helpers for tests of the degrade fault: a resolved step from a step's parameters, as the
loader would resolve it (the fault is built from resolved steps only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drills.scenario import model
from drills.scenario.resolved import Topology
from drills.scenario.steps import DegradeStep, resolve_step


def degrade_step(topology: Topology, profiles: Mapping[str, model.Profile], **params: Any) -> DegradeStep:
    """The resolved `degrade` step with `params` (link, direction, profile, parameters...)."""
    step = resolve_step(0, model.Degrade.model_validate({"at": 0, "fault": "degrade", **params}), topology, profiles, {})
    assert isinstance(step, DegradeStep)
    return step

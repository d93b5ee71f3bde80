"""The fault registry: which fault each kind of timeline step builds, and building it.

A fault is built from a resolved timeline step (drills.scenario.steps) before the drill clock
starts, and then only applies, confirms, reverts and confirms again, through the node
operations of the seam (`drills.backend.NodeOps`): it never reaches a kernel, a container
engine or a process itself. "Confirmed" means the backend shows the new state on every object
the fault touches. New faults live in their own modules, `register` themselves
(drills.engine.fault) and are listed in `_load_fault_modules`; the engine needs no other change
for them, and a new backend needs no change here.
"""

from __future__ import annotations

from drills.engine.fault import BUILDERS, Fault, FaultContext, register, wait_for
from drills.scenario.steps import Step

__all__ = ["Fault", "FaultContext", "build", "register", "supported_kinds", "wait_for"]


def supported_kinds() -> tuple[str, ...]:
    _load_fault_modules()
    return tuple(sorted(BUILDERS))


def build(step: Step) -> Fault:
    """The fault for a resolved timeline step."""
    _load_fault_modules()
    return BUILDERS[step.kind](step)


def _load_fault_modules() -> None:
    # Importing a fault module registers its faults; listed here so there is one place to add one.
    from drills.engine import degrade, filter_faults, link_faults, node_faults, steps  # noqa: F401



"""Scenario files: parse (yamlpos, model), then resolve (resolve) into an immutable plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drills.scenario.loader import load_scenario, validate_file
    from drills.scenario.resolved import Scenario

__all__ = ["Scenario", "load_scenario", "validate_file"]


def __getattr__(name: str) -> Any:
    # Lazy: the loader pulls in pydantic (~0.1 s), which `drill ls`, `down`, `exec` and `clean`
    # never need.
    if name in ("load_scenario", "validate_file"):
        from drills.scenario import loader

        return getattr(loader, name)
    if name == "Scenario":
        from drills.scenario.resolved import Scenario

        return Scenario
    raise AttributeError(name)

"""Scenario files: parse (yamlpos, model), then resolve (resolve) into an immutable plan."""

from drills.scenario.loader import load_scenario, validate_file
from drills.scenario.resolved import Scenario

__all__ = ["Scenario", "load_scenario", "validate_file"]

"""Helpers of the cross-host link tests (test_wire, test_wire_unit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from drills.scenario import load_scenario
from drills.scenario.resolved import Topology


def load_topology(directory: Path, name: str, topology: dict[str, Any], profiles: dict[str, Any] | None = None) -> Topology:
    """`topology` (and `profiles`) written as scenario `name` in `directory`, loaded and resolved."""
    path = directory / f"{name}.yaml"
    document: dict[str, Any] = {"version": 1, "name": name, "topology": topology}
    if profiles:
        document["profiles"] = profiles
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_scenario(path).topology

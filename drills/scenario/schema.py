"""JSON Schema of the scenario format, for editors (`drill schema > drills.schema.json`)."""

from __future__ import annotations

from typing import Any

from drills.scenario.model import ScenarioFile

SCHEMA_ID = "https://drills.invalid/schema/scenario-v1.json"


def scenario_json_schema() -> dict[str, Any]:
    """The schema of format version 1, with YAML key names (aliases such as `from`, `for`)."""
    schema = ScenarioFile.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    _nodes_or_include(schema["$defs"]["Topology"])
    schema["$id"] = SCHEMA_ID
    return schema


def _nodes_or_include(topology: dict[str, Any]) -> None:
    """A scenario's topology needs `nodes:` unless it `include:`s files that bring them: the loader
    joins the files before the model sees the mapping, so the model's own `required` is too strict
    for a file as written."""
    topology["required"] = [key for key in topology.get("required", []) if key != "nodes"]
    if not topology["required"]:
        del topology["required"]
    topology["anyOf"] = [{"required": ["nodes"]}, {"required": ["include"]}]

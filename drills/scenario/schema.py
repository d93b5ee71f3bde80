"""JSON Schema of the scenario format, for editors (`drill schema > drills.schema.json`)."""

from __future__ import annotations

from typing import Any

from drills.scenario.model import ScenarioFile

SCHEMA_ID = "https://drills.invalid/schema/scenario-v1.json"


def scenario_json_schema() -> dict[str, Any]:
    """The schema of format version 1, with YAML key names (aliases such as `from`, `for`)."""
    schema = ScenarioFile.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    return schema

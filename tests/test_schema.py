"""`drill schema`: a JSON Schema that editors can use, and that accepts every example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "drills", "schema"], capture_output=True, text=True, check=True)
    parsed: dict[str, object] = json.loads(proc.stdout)
    return parsed


def test_schema_is_a_valid_2020_12_schema(schema: dict[str, object]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # YAML key names, not Python field names.
    text = json.dumps(schema)
    assert '"from"' in text and '"for"' in text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_against_the_schema(schema: dict[str, object], path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    if isinstance(data["topology"], str):  # a topology file: validate it in place
        data["topology"] = yaml.safe_load((path.parent / data["topology"]).read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    for include in data["topology"].get("include", []):  # each joined file is a topology of its own
        joined = yaml.safe_load((path.parent / include).read_text())
        jsonschema.Draft202012Validator(schema).validate({**data, "topology": joined})


def test_schema_needs_nodes_or_include_in_a_topology(schema: dict[str, object]) -> None:
    data = yaml.safe_load((ROOT / "scenarios" / "japan-australia-cables.yaml").read_text())
    del data["topology"]["include"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)
    data["topology"]["nodes"] = {}
    jsonschema.Draft202012Validator(schema).validate(data)


def test_schema_rejects_an_unknown_key(schema: dict[str, object]) -> None:
    data = yaml.safe_load(EXAMPLES[0].read_text())
    data["timelime"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)

"""Two namespace nodes, a and b, joined by one link (`wire`) with routes to each other: the
smallest real testbed a probe can run across, brought up as `drill up` does."""

from __future__ import annotations

from pathlib import Path

import yaml

from drills import lifecycle


def two_node_line(tmp_path: Path, state_dir: Path, name: str) -> lifecycle.UpResult:
    """Bring the line up (scenario `name`, written to tmp_path); `lifecycle.down` takes it down."""
    scenario = {
        "version": 1,
        "name": name,
        "topology": {
            "nodes": {"a": {"routes": [{"to": "b", "via": "b:a"}]}, "b": {"routes": [{"to": "a", "via": "a:b"}]}},
            "links": [{"name": "wire", "endpoints": ["a:b", "b:a"]}],
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return lifecycle.up(path, state_dir)

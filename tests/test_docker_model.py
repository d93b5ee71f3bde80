"""Container node fields in the scenario format: resolved as given, refused where they cannot
apply, each problem located (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills import backends
from drills.errors import ScenarioError
from drills.scenario.loader import load_scenario


def load(tmp_path: Path, nodes: str) -> ScenarioError | object:
    path = tmp_path / "s.yaml"
    path.write_text(f"version: 1\nname: s\ntopology:\n  nodes:\n{nodes}  links:\n    - endpoints: [a:e0, b:e0]\n")
    try:
        return load_scenario(path)
    except ScenarioError as exc:
        return exc


def test_container_node_resolves_with_defaults_and_paths(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    scenario = load(
        tmp_path,
        "    a:\n      kind: container\n      image: drills-node:latest\n      command: sleep 100\n"
        "      volumes: [conf:/etc/x:ro]\n      environment: {B: '2', A: '1'}\n"
        "      ready: {command: 'true', timeout: 5s}\n    b: {}\n",
    )
    assert not isinstance(scenario, ScenarioError), scenario
    node = scenario.topology.node("a")  # type: ignore[attr-defined]
    box = node.container
    assert node.kind == "container" and box.image == "drills-node:latest"
    assert box.command == ("/bin/sh", "-c", "sleep 100")
    assert box.volumes == (f"{(tmp_path / 'conf').resolve()}:/etc/x:ro",)  # relative to the file
    assert box.environment == (("A", "1"), ("B", "2"))
    assert box.capabilities == ("NET_ADMIN",) and not box.privileged and box.attach is None
    assert box.ready is not None and box.ready.command == "true" and box.ready.timeout_s == 5.0
    assert scenario.topology.node("b").container is None  # type: ignore[attr-defined]
    assert backends.uses_containers(scenario.topology)  # type: ignore[attr-defined]
    assert backends.kind(scenario.topology) == "docker+netns"  # type: ignore[attr-defined]  # what `drill ls` shows


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ("    a: {image: x}\n    b: {}\n", "topology.nodes.a.image: `image` applies to container nodes only; add `kind: container`"),
        ("    a: {kind: container}\n    b: {}\n", "a container node needs an `image` (or `attach: CONTAINER` to use a running one)"),
        ("    a: {kind: container, image: x, volumes: [nope]}\n    b: {}\n", "'nope' is not `host:container[:ro]`"),
        ("    a: {kind: container, image: x, volumes: ['missing:/x']}\n    b: {}\n", "missing does not exist"),
        ("    a: {kind: container, image: x, ready: {}}\n    b: {}\n", "give exactly one readiness check"),
        ("    a: {kind: docker}\n    b: {}\n", "(use one of: netns, container)"),
    ],
)
def test_container_fields_refused_with_location(tmp_path: Path, nodes: str, message: str) -> None:
    error = load(tmp_path, nodes)
    assert isinstance(error, ScenarioError)
    text = str(error)
    assert message in text and f"{tmp_path / 's.yaml'}:" in text, text

"""What the Docker tests share: a running engine and the node image (or a skip, or under CI a
failure), and a check that a test leaves no container of its runs behind.

Not a conftest: only the Docker test modules import it (`from docker_testing import ...`; pytest
puts tests/ on sys.path for modules of a directory without __init__.py). The fixtures are
imported as `docker_engine_fixture` / `docker_leftovers_fixture` and used as `docker_engine` /
`docker_leftovers`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

IMAGE = "drills-node:latest"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str, lane: str = "the Docker lane") -> None:
    """Skip the test: `lane` cannot run here, because of `reason`; under CI, fail it instead."""
    if _in_ci():
        pytest.fail(f"CI=true and {lane} cannot run: {reason}; `./dev docker-setup` prepares it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", name="docker_engine")
def docker_engine_fixture() -> Iterator[Any]:
    """A connection to a running Docker engine with the node image built (built here if missing:
    about 40 s, offline)."""
    if os.geteuid() != 0:
        unavailable("needs root (namespaces and the Docker socket)")
    try:
        import docker  # noqa: F401
    except ImportError:
        unavailable("the `docker` Python package is missing: pip install -e '.[docker]'")
    from drills.docker import images
    from drills.docker.api import Docker
    from drills.errors import DrillError

    try:
        engine = Docker.connect(timeout_s=20)
    except DrillError as exc:
        unavailable(f"no Docker engine: {exc}")
    try:
        images.ensure(images.DEFAULT_IMAGE, engine, lambda _msg: None)
    except DrillError as exc:
        unavailable(f"cannot build the node image offline: {exc}")
    yield engine
    engine.close()


@pytest.fixture(name="docker_leftovers")
def docker_leftovers_fixture(docker_engine: Any, host_snapshot: Any) -> Iterator[None]:
    """After the test, no container labelled with one of its runs' ids may remain (the host
    snapshot checks namespaces, veths, processes and the root namespace)."""
    from drills.docker.api import RUN_LABEL

    yield
    runs = host_snapshot.run_ids()
    left = [c.name for c in docker_engine.find({RUN_LABEL: None}) if c.labels.get(RUN_LABEL) in runs]
    assert not left, f"containers of this test's runs remain: {left}"


def containerise(scenario: dict[str, Any], nodes: list[str] | None = None) -> dict[str, Any]:
    """The scenario with `nodes` (default: all) as container nodes of the test image."""
    for name, node in scenario["topology"]["nodes"].items():
        if nodes is None or name in nodes:
            node["kind"] = "container"
            node["image"] = IMAGE
    return scenario


def write(directory: Path, name: str, scenario: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def failover(name: str = "container-failover", duration_s: int = 9) -> dict[str, Any]:
    """a -- r1 -- b with a backup path a -- r2 -- b (higher metric): a primary/backup failover."""
    return {
        "version": 1,
        "name": name,
        "seed": 7,
        "topology": {
            "nodes": {
                "a": {"routes": [{"to": "b", "via": "r1:a0", "metric": 10}, {"to": "b", "via": "r2:a0", "metric": 100}]},
                "r1": {"routes": [{"to": "a", "via": "a:r1"}, {"to": "b", "via": "b:r1"}]},
                "r2": {"routes": [{"to": "a", "via": "a:r2"}, {"to": "b", "via": "b:r2"}]},
                "b": {"routes": [{"to": "a", "via": "r1:b0", "metric": 10}, {"to": "a", "via": "r2:b0", "metric": 100}]},
            },
            "links": [
                {"name": "a-r1", "endpoints": ["a:r1", "r1:a0"]},
                {"name": "r1-b", "endpoints": ["r1:b0", "b:r1"]},
                {"name": "a-r2", "endpoints": ["a:r2", "r2:a0"]},
                {"name": "r2-b", "endpoints": ["r2:b0", "b:r2"]},
            ],
        },
        "probes": [{"name": "voice", "type": "udp-stream", "from": "a", "to": "b", "rate_pps": 200}],
        "timeline": [],
        "duration": f"{duration_s}s",
    }

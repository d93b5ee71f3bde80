"""Which backend deploys a topology, and that both backends are the seam (`drills.backend.Backend`)."""

from __future__ import annotations

from pathlib import Path

from drills import backends
from drills.backend import Backend
from drills.docker.backend import DockerBackend
from drills.netns.backend import NetnsBackend
from drills.scenario.loader import load_scenario

# Static: mypy rejects these assignments when a backend drifts from the protocol (a method
# missing or of another signature). drills/backends.py's typed returns check the same under
# the project's mypy run; these hold for `mypy tests/test_backends.py` too.
_NETNS: type[Backend] = NetnsBackend
_DOCKER: type[Backend] = DockerBackend


def _kind_of(backend: Backend) -> str:
    return backend.name


def test_each_topology_gets_its_backend(tmp_path: Path) -> None:
    """Namespace nodes only: the namespace backend; any container node: the container backend,
    which tears down every run. Constructing either touches neither the kernel nor Docker."""
    path = tmp_path / "s.yaml"
    nodes = "    a: {kind: container, image: drills-node:latest}\n    b: {}\n"
    for spec, expected in (("    a: {}\n    b: {}\n", NetnsBackend), (nodes, DockerBackend)):
        path.write_text(f"version: 1\nname: s\ntopology:\n  nodes:\n{spec}  links:\n    - endpoints: [a:e0, b:e0]\n")
        backend = backends.for_topology(load_scenario(path).topology, lambda _msg: None)
        assert type(backend) is expected
        assert _kind_of(backend) == {NetnsBackend: "netns", DockerBackend: "docker"}[expected]
    teardown = backends.for_teardown(lambda _msg: None)
    assert isinstance(teardown, backends.JournalTeardown) and type(teardown.local) is DockerBackend

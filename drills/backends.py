"""Which backend deploys a topology, and which one tears a run down: chosen here, in one place.

A topology of namespace nodes only gets the namespace backend (no Docker needed, not even the
SDK). One with any `kind: container` node gets the container backend, which deploys the
namespace nodes of the same scenario too (mixed substrates). Teardown of any run goes through
the container backend: it asks Docker only when the run's journal lists a container, and hands
everything else to the namespace backend.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drills.scenario.resolved import Topology

if TYPE_CHECKING:
    from drills.backend import Backend

Log = Callable[[str], None]


def uses_containers(topology: Topology) -> bool:
    return any(node.kind == "container" for node in topology.nodes)


def kind(topology: Topology) -> str:
    """What deploys `topology`, as `drill ls` shows it: netns, docker, or docker+netns (mixed)."""
    containers = sum(1 for node in topology.nodes if node.kind == "container")
    if containers == 0:
        return "netns"
    return "docker" if containers == len(topology.nodes) else "docker+netns"


def for_topology(topology: Topology, log: Log, service_cwd: Path | None = None, **netns_options: Any) -> Backend:
    """The backend that deploys `topology`. `netns_options` (the drill's seed, a capability
    lookup) go to whichever backend it is. Both are checked against the `Backend` protocol here
    (mypy): the returns below fail to type-check when one drifts from the seam."""
    if uses_containers(topology):
        from drills.docker.backend import DockerBackend

        return DockerBackend(log, service_cwd=service_cwd, **netns_options)
    from drills.netns.backend import NetnsBackend

    return NetnsBackend(log, service_cwd=service_cwd, **netns_options)


def for_teardown(log: Log) -> Backend:
    """A backend that tears down any run from its journal, whatever it deployed."""
    from drills.docker.backend import DockerBackend

    return DockerBackend(log)

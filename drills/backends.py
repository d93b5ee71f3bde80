"""Which backend deploys a topology, and which one tears a run down: chosen here, in one place.

A topology of namespace nodes only gets the namespace backend (no Docker needed, not even the
SDK). One with any `kind: container` node gets the container backend, which deploys the
namespace nodes of the same scenario too (mixed substrates). Teardown of any run goes through
the container backend: it asks Docker only when the run's journal lists a container, and hands
everything else to the namespace backend; a run spread over several hosts is then torn down on
each host its journal lists, by a fresh agent there.

What a backend would build for a topology, named before anything exists (`layout`), is told here
too, so `drill plan` shows it without the engine importing any backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drills.scenario.resolved import Topology

if TYPE_CHECKING:
    from drills.backend import Backend, TeardownReport
    from drills.runs import Run

Log = Callable[[str], None]
CapabilityLookup = Callable[[], Mapping[str, bool]]


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
    lookup, the drill's clock for deploy's waits) go to whichever backend it is. Both are checked against the `Backend` protocol here
    (mypy): the returns below fail to type-check when one drifts from the seam."""
    if uses_containers(topology):
        from drills.docker.backend import DockerBackend

        return DockerBackend(log, service_cwd=service_cwd, **netns_options)
    from drills.netns.backend import NetnsBackend

    return NetnsBackend(log, service_cwd=service_cwd, **netns_options)


class Teardown(Protocol):
    """What tears a run down from its journal (every `Backend` is one, for its own runs)."""

    def teardown(self, run: Run) -> TeardownReport:
        """Remove every object in `run`'s journal. Idempotent; never touches anything else."""


@dataclass(frozen=True)
class JournalTeardown:
    """Tears down any run from its journal, whatever deployed it: what this machine holds through
    `local`, then, for a run spread over several hosts (the journal's `host` entries), what each
    host still holds, through a fresh agent reached by the inventory the entry names."""

    local: Backend
    log: Log

    def teardown(self, run: Run) -> TeardownReport:
        report = self.local.teardown(run)
        if any(entry.get("op") == "host" for entry in run.journal.entries()):
            from drills.remote.backend import teardown_hosts  # SSH and the agents only when a run needs them

            hosts = teardown_hosts(run, self.log, str(run.dir.parent.parent))
            report.removed += hosts.removed
            report.left += hosts.left
            report.refused += hosts.refused
        return report


def for_teardown(log: Log) -> Teardown:
    """What tears down any run from its journal, whatever deployed it, on this machine or across hosts."""
    from drills.docker.backend import DockerBackend

    return JournalTeardown(DockerBackend(log), log)


def _kernel_capabilities() -> Mapping[str, bool]:
    from drills.netns.backend import host_capabilities  # probes the kernel: only when a choice needs it

    return host_capabilities()


@dataclass(frozen=True)
class Layout:
    """What deploy would build for a topology, before it builds anything: the namespace of each
    node, the sysctls set in every node first, and the engine serving each link, with why."""

    namespace_pattern: str  # a node's namespace, `<node>` standing for its name
    namespaces: Mapping[str, str]  # node -> namespace
    node_sysctls: tuple[tuple[str, str], ...]
    engines: Mapping[str, str]  # link -> engine and why: "userspace (auto: this kernel has no netem)"
    capabilities: CapabilityLookup  # what the backend would declare: probed at most once, when asked
    segment_namespaces: Mapping[str, str] = field(default_factory=dict)  # LAN segment -> its bridge's namespace


def layout(topology: Topology, run_id: str, capabilities: CapabilityLookup | None = None) -> Layout:
    """The layout of `topology` for run `run_id` (a placeholder before a run has its id). The
    kernel is probed (`capabilities`, default `drill doctor`'s) only when an `auto` link's
    engine depends on netem. Creates nothing."""
    from drills.netns.backend import NODE_SYSCTLS, namespace_name  # container nodes share the naming
    from drills.netns.segments import segment_namespace
    from drills.userspace import select

    cache: dict[str, Mapping[str, bool]] = {}

    def cached() -> Mapping[str, bool]:
        if "caps" not in cache:
            cache["caps"] = (capabilities or _kernel_capabilities)()
        return cache["caps"]

    engines = select.engines(topology.links, cached)
    return Layout(
        namespace_pattern=namespace_name(run_id, "<node>"),
        namespaces={node.name: namespace_name(run_id, node.name) for node in topology.nodes},
        node_sysctls=NODE_SYSCTLS,
        engines={link.name: select.reason(link, engines[link.name]) for link in topology.links},
        capabilities=cached,
        segment_namespaces={segment.name: segment_namespace(run_id, segment.name) for segment in topology.segments},
    )

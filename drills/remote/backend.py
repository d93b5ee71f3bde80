"""The backend of a testbed spread over several hosts: one resident agent per host, reached over
SSH for the length of a run (`drill agent`, drills.remote.agent), each deploying its host's part
of the topology with the namespace backend and serving node operations and probe endpoints there.

What happens where:
- `connect` starts every host's agent at once and asks each for its version, its root and its
  capabilities: an unreachable host, or one lacking what the scenario needs, is refused here,
  before anything is deployed anywhere, naming the host and why.
- `deploy` journals each host in the controller's run first (so `drill clean` here knows where to
  look after a crash), then has every agent deploy its part in parallel (each journals on its own
  host before acting), then estimates each agent's clock offset over its channel.
- `ops` dispatches by node (drills.remote.multi_ops); `probe_starter` runs probes in the agent of
  their source node (drills.remote.remote_probes).
- `teardown` asks every agent to tear its part down; a host whose agent is gone (the controller
  was killed: the agent's dead-man switch has already reverted everything) gets a fresh agent
  that cleans whatever its journal there still lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from drills.backend import Capabilities, NodeOps, TeardownReport
from drills.clock import Clock
from drills.engines import USERSPACE
from drills.errors import BackendError, DrillError
from drills.hosts.placement import host_parts
from drills.hosts.records import Host, Inventory, Placement
from drills.hosts.ssh import agent_argv, sudo_advised
from drills.netns.backend import namespace_name
from drills.runs import RUN_ID_BYTES, Run
from drills.scenario.resolved import Scenario, Topology

if TYPE_CHECKING:
    from drills.engine.drill import ProbeStarter, RunningProbes

Log = Callable[[str], None]
T = TypeVar("T")

MODE_RUN = "run"  # the agent tears its part down when the controller's channel is lost
MODE_UP = "up"  # `drill up`: the testbed outlives the channel
# SSH's connect timeout (10 s) plus the agent's start and its capability probes (~2 s loaded).
HELLO_TIMEOUT_S = 60.0
DEPLOY_TIMEOUT_S = 900.0  # a host deploying hundreds of nodes
PROBE_CALL_S = 30.0  # a probe request's answer, besides what a stop may wait for


def merge_engines(per_host: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """Link -> engine over every host's answer to deploy. A cross-host link is in two answers,
    one per end, and each host chose its own (drills.netns.part.cross_engines): it counts as
    served by the userspace engine when either end's relay serves it (the report names such
    links), the kernel otherwise."""
    merged: dict[str, str] = {}
    for found in per_host:
        for link, engine in found.items():
            merged[link] = USERSPACE if USERSPACE in (engine, merged.get(link)) else engine
    return merged


def host_run_id(run_id: str, host: str) -> str:
    """The run id a host's agent keeps its part under: derived from the controller's run and the
    host, so two hosts sharing one state directory (the controller's own machine as a host, the
    tests) never share a run directory, and the same run always maps to the same ids."""
    return hashlib.sha256(f"{run_id}/{host}".encode()).hexdigest()[: 2 * RUN_ID_BYTES]


@dataclass(frozen=True)
class ClockInfo:
    """One host's clock against the controller's: agent instant - offset = controller instant,
    within ± bound."""

    host: str
    offset_s: float
    bound_s: float
    rtt_s: float


class ProbeSite:
    """One host's agent as the remote probes see it (drills.remote.remote_probes.Site)."""

    def __init__(self, client: Any, clock: ClockInfo, wait_s: float) -> None:
        self.host: str = client.host
        self.offset_s = clock.offset_s
        self.bound_s = clock.bound_s
        self._client = client
        self._wait_s = wait_s  # a stop may drain, or wait for an application probe's timeout

    def call(self, method: str, *args: object) -> object:
        return self._client.call("probe", method, list(args), {}, timeout_s=self._wait_s)


def in_parallel(items: Sequence[str], fn: Callable[[str], T]) -> dict[str, T]:
    """`fn` on every item at once (one thread each: agents work in parallel); every failure is
    collected and raised together, naming each item, once all have finished."""
    results: dict[str, T] = {}
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(len(items), 32))) as pool:
        futures = {item: pool.submit(fn, item) for item in items}
        for item, future in futures.items():
            try:
                results[item] = future.result()
            except DrillError as exc:
                failures.append(f"{item}: {exc}")
    if failures:
        raise BackendError("; ".join(failures))
    return results


class MultiHostBackend:
    """A `drills.backend.Backend` over the agents of several hosts."""

    name = "hosts"

    def __init__(
        self,
        inventory: Inventory,
        placement: Placement,
        log: Log,
        clock: Clock,
        *,
        seed: int | None = None,
        mode: str = MODE_RUN,
        state_dir: str | None = None,
        argv: Callable[[Host], list[str]] = agent_argv,
    ) -> None:
        self.inventory = inventory
        self.placement = placement
        self._log = log
        self._clock = clock
        self._seed = seed
        self._mode = mode
        self._state_dir = state_dir  # the agents' state directory (None: each host's default)
        self._argv = argv
        self.clients: dict[str, Any] = {}  # host -> AgentClient
        self.host_capabilities: dict[str, dict[str, bool]] = {}
        self.clocks: dict[str, ClockInfo] = {}
        self.engines: Mapping[str, str] = {}
        self._topology: Topology | None = None
        self._run_id: str | None = None

    # ------------------------------------------------------------------ agents

    def connect(self, run_id: str) -> None:
        """Start every host's agent (in parallel) for run `run_id` and greet it; BackendError
        naming each host that cannot be reached or refuses (not root, another drills version),
        after stopping the agents that did start. Nothing is deployed yet."""
        from drills.remote.client import AgentClient

        self._run_id = run_id

        def start(host_name: str) -> dict[str, Any]:
            host = self.inventory.host(host_name)
            with sudo_advised(host):
                client = AgentClient(host_name, self._argv(host), self._log, clock=self._clock)
                self.clients[host_name] = client
                state_dir = self._state_dir if host.local else None  # a remote host keeps its own
                hello: dict[str, Any] = client.call(
                    "hello", host_run_id(run_id, host_name), host_name, self._mode, state_dir, timeout_s=HELLO_TIMEOUT_S
                )
            return hello

        try:
            greeted = in_parallel(list(self.placement.hosts), start)
        except BackendError as exc:
            self.disconnect()
            raise BackendError(f"hosts refused before anything was deployed: {exc}") from None
        for host, hello in greeted.items():
            self.host_capabilities[host] = dict(hello.get("capabilities", {}))
            self._log(f"host {host}: agent pid {hello.get('pid')} (drills {hello.get('version')})")

    def disconnect(self, keep: bool = False) -> None:
        """End every agent's channel (an orderly goodbye; `keep` leaves its part up: `drill up`)."""
        for client in self.clients.values():
            try:
                client.close(keep=keep)
            except DrillError as exc:
                self._log(f"host {client.host}: {exc}")
        self.clients.clear()

    def capabilities(self) -> Capabilities:
        """What every host can do: a capability counts only when all hosts have it (a fault may
        land on any of them). `host_capabilities` says which host lacks what."""
        merged: dict[str, bool] = {}
        for caps in self.host_capabilities.values():
            for name, present in caps.items():
                merged[name] = merged.get(name, True) and present
        return merged

    # ------------------------------------------------------------------ deploy

    def deploy(self, topology: Topology, run: Run) -> None:
        self._topology = topology
        parts = {part.host: part for part in host_parts(topology, self.inventory, self.placement)}
        run.journal.record(
            {"op": "host", "name": host, "run": host_run_id(run.run_id, host), "inventory": str(self.inventory.path)}
            for host in parts
        )
        engines = in_parallel(
            list(parts), lambda host: self.clients[host].call("deploy", topology, parts[host], self._seed, timeout_s=DEPLOY_TIMEOUT_S)
        )
        self.engines = merge_engines(engines.values())
        self.measure_clocks()

    def measure_clocks(self) -> None:
        """Each agent's clock offset to ours, over its channel (drills.remote.offset)."""
        from drills.remote.offset import estimate

        for host in self.placement.hosts:  # in the placement's order: results.json lists them so
            found = estimate(self.clients[host])
            self.clocks[host] = ClockInfo(host, found.offset_s, found.bound_s, found.rtt_s)
            self._log(
                f"host {host}: clock offset {found.offset_s * 1e3:+.3f} ms ± {found.bound_s * 1e3:.3f} ms "
                f"(round trip {found.rtt_s * 1e3:.3f} ms)"
            )

    def ops(self, run: Run, clock: Clock) -> NodeOps:
        from drills.remote.agent_ops import AgentOps
        from drills.remote.multi_ops import MultiHostOps

        assert self._topology is not None, "deploy first"
        agents = {host: AgentOps(client, clock=self.clocks.get(host)) for host, client in self.clients.items()}
        return MultiHostOps(
            self._topology,
            self.placement.host_of,
            agents,
            [cross.link for cross in self.placement.cross],
            lambda host, link, up: agents[host].set_far_end(link, up),
            self.engines,
        )

    def probe_starter(self) -> ProbeStarter:
        """Probes that run in the agents: each in its source node's host (drills.remote.remote_probes),
        its record mapped onto the drill clock by that host's offset."""
        from drills.remote import remote_probes

        def start(scenario: Scenario, _ops: NodeOps, _faults: object, _clock: Clock, seed: int) -> RunningProbes:
            wait_s = max(PROBE_CALL_S, remote_probes.stop_wait_s(scenario) + PROBE_CALL_S)
            sites = {host: ProbeSite(client, self.clocks[host], wait_s) for host, client in self.clients.items()}
            return remote_probes.start(scenario, {node: sites[host] for node, host in self.placement.host_of.items()}, seed)

        return start

    def namespace_of(self, run: Run, node: str) -> str:
        host = self.placement.host_of[node]
        return namespace_name(host_run_id(run.run_id, host), node)  # as the host's agent names it

    # ------------------------------------------------------------------ teardown

    def teardown(self, run: Run) -> TeardownReport:
        """Every host's part torn down by its agent (in parallel); a host whose channel is gone
        gets a fresh agent to clean what its journal there still lists."""
        report = TeardownReport()
        hosts = [str(e["name"]) for e in run.journal.entries() if e.get("op") == "host"]

        def one(host: str) -> TeardownReport:
            client = self.clients.get(host)
            if client is None:
                where = self.inventory.host(host)
                state_dir = self._state_dir if where.local else None
                return clean_host(where, host_run_id(run.run_id, host), self._argv, self._log, state_dir)
            found: TeardownReport = client.call("teardown", timeout_s=120.0)
            return found

        for host in hosts:
            try:
                part = one(host)
            except DrillError as exc:
                report.left.append(f"host {host}: {exc} (drill clean --inventory {self.inventory.path})")
                continue
            report.removed += [f"{host}: {what}" for what in part.removed]
            report.left += [f"{host}: {what}" for what in part.left]
            report.refused += [f"{host}: {what}" for what in part.refused]
        self.disconnect()
        return report


def clean_host(host: Host, run_id: str, argv: Callable[[Host], list[str]], log: Log, state_dir: str | None) -> TeardownReport:
    """Tear down what run `run_id` left on `host` (a fresh agent reads its journal there)."""
    from drills.remote.client import AgentClient

    with sudo_advised(host):
        client = AgentClient(host.name, argv(host), log)
        try:
            found: TeardownReport = client.call("clean", run_id, state_dir, timeout_s=120.0)
            return found
        finally:
            client.close()


def teardown_hosts(run: Run, log: Log, state_dir: str | None = None) -> TeardownReport:
    """`drill clean` / `drill down` of a run spread over several hosts, from the controller's
    journal alone: each host it lists gets a fresh agent (reached through the inventory the
    entry names) that tears down what that host's own journal still lists. After a crash of
    the controller the agents' dead-man switch has normally done it already: then each host
    reports nothing left."""
    from drills.hosts.inventory import load_inventory

    report = TeardownReport()
    for entry in run.journal.entries():
        if entry.get("op") != "host":
            continue
        name = str(entry["name"])
        try:
            inventory = load_inventory(Path(str(entry["inventory"])))
            host = inventory.host(name)
            part = clean_host(host, str(entry["run"]), agent_argv, log, state_dir if host.local else None)
        except (DrillError, KeyError) as exc:
            report.left.append(f"host {name}: {exc} (drill clean there: {AGENT_CLEAN_HINT})")
            continue
        report.removed += [f"{name}: {what}" for what in part.removed]
        report.left += [f"{name}: {what}" for what in part.left]
        report.refused += [f"{name}: {what}" for what in part.refused]
    return report


AGENT_CLEAN_HINT = "ssh HOST /opt/drills/venv/bin/drill clean"

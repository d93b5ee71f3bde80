"""A drill spread over several hosts, composed: the inventory read, the nodes placed, every
host's agent started and checked (reachable, root, same drills, the capabilities the scenario
needs) before anything is deployed anywhere, then the same engine as on one machine, with the
multi-host backend and probes that run in the agents (drills.remote)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from drills.errors import Problem, ScenarioError
from drills.runs import RUN_ID_BYTES, Run, RunStore
from drills.scenario.resolved import Scenario

if TYPE_CHECKING:
    from drills.clock import Clock
    from drills.engine.control import ExerciseControl
    from drills.engine.drill import DrillResult
    from drills.engine.progress import Progress
    from drills.hosts.records import Inventory, Placement
    from drills.remote.backend import MultiHostBackend

Log = Callable[[str], None]


def placed(scenario: Scenario, given: Path | None) -> tuple[Inventory, Placement] | None:
    """The inventory and placement of a drill across machines (`--inventory` wins over the
    scenario's `hosts.inventory`); None: the drill runs on this machine alone. A scenario whose
    nodes name hosts with no inventory anywhere is refused (ScenarioError, located)."""
    from drills.hosts.placement import for_scenario

    return for_scenario(scenario, given)


def host_problems(scenario: Scenario, backend: MultiHostBackend) -> list[Problem]:
    """What the scenario needs that some host cannot do, each problem naming the host."""
    from drills.engine.drill import requirements

    problems: list[Problem] = []
    for host, caps in sorted(backend.host_capabilities.items()):
        for problem in requirements(scenario, _declared(caps)):
            problems.append(
                Problem(problem.file, problem.line, problem.column, problem.path, f"host {host}: {problem.message}")
            )
    return sorted(set(problems), key=lambda p: (p.file, p.line, p.path, p.message))


def _declared(caps: Mapping[str, bool]) -> Callable[[], Mapping[str, bool]]:
    return lambda: caps


def _opened(
    scenario: Scenario,
    spread_over: tuple[Inventory, Placement],
    state_dir: Path,
    log: Log,
    clock: Clock,
    *,
    mode: str,
    seed: int | None = None,
    check: Callable[[MultiHostBackend], None] = lambda _backend: None,
) -> tuple[MultiHostBackend, Run]:
    """Every host's agent started and greeted for a new run, `check` passed, then the run made
    here (its nodes, their hosts, backend `hosts` in its metadata). On any failure before the
    run exists, the agents are let go and nothing is left anywhere."""
    from drills.hosts.placement import assign_vnis
    from drills.remote.backend import MultiHostBackend

    inventory, placement = spread_over
    run_id = secrets.token_hex(RUN_ID_BYTES)
    placement = assign_vnis(placement, run_id)
    backend = MultiHostBackend(inventory, placement, log, clock, seed=seed, mode=mode, state_dir=str(state_dir))
    backend.connect(run_id)
    try:
        check(backend)
        created = RunStore(state_dir).create(scenario.name, scenario.path.resolve(), run_id=run_id)
    except BaseException:
        backend.disconnect()
        raise
    meta = created.meta()
    meta.nodes = {node.name: backend.namespace_of(created, node.name) for node in scenario.topology.nodes}
    meta.backend = "hosts"
    meta.hosts = dict(placement.host_of)
    created.write_meta(meta)
    return backend, created


def run(
    scenario: Scenario,
    spread_over: tuple[Inventory, Placement],
    state_dir: Path,
    log: Log,
    progress: Progress,
    clock: Clock,
    seed: int,
    control: ExerciseControl | None = None,
) -> DrillResult:
    """`drill run` across the hosts of the inventory (see the module docstring)."""
    from drills.engine.drill import preflight, run_drill
    from drills.remote.backend import MODE_RUN

    def check(backend: MultiHostBackend) -> None:
        problems = host_problems(scenario, backend)
        if problems:
            raise ScenarioError(problems)
        preflight(scenario, backend.capabilities)

    backend, created = _opened(scenario, spread_over, state_dir, log, clock, mode=MODE_RUN, seed=seed, check=check)
    placement = backend.placement
    log(f"run {created.run_id}: {len(placement.hosts)} hosts ({', '.join(placement.hosts)}), {len(placement.cross)} cross-host links")
    result = run_drill(
        scenario, backend, clock, created, log, seed=seed, progress=progress, probes=backend.probe_starter(), control=control
    )
    result.hosts = [
        {"host": c.host, "offset_s": c.offset_s, "bound_s": c.bound_s, "rtt_s": c.rtt_s} for c in backend.clocks.values()
    ]
    return result


def up(scenario: Scenario, spread_over: tuple[Inventory, Placement], state_dir: Path, log: Log, clock: Clock) -> tuple[str, dict[str, str]]:
    """`drill up` across hosts: deploy every host's part and leave it up (each agent is told the
    testbed outlives its channel); returns the run id and each node's host. `drill down` (or
    `drill clean --all`) tears it down through fresh agents, from the journal."""
    from drills.remote.backend import MODE_UP
    from drills.runs import STATUS_UP
    from drills.signals import abort_on_signals

    backend, created = _opened(scenario, spread_over, state_dir, log, clock, mode=MODE_UP)
    try:
        with abort_on_signals():
            backend.deploy(scenario.topology, created)
    except BaseException:
        with abort_on_signals():
            backend.teardown(created)
        raise
    backend.disconnect(keep=True)
    created.set_status(STATUS_UP)
    created.unlock()
    return created.run_id, dict(backend.placement.host_of)


def check_hosts(inventory_file: Path, log: Log) -> dict[str, str | dict[str, object]]:
    """`drill doctor --inventory`: start every host's agent (in parallel) and ask it for its
    version, root and capabilities; a host that cannot be reached gets the reason instead."""
    from drills.errors import DrillError
    from drills.hosts.inventory import load_inventory
    from drills.hosts.ssh import agent_argv, sudo_advised
    from drills.remote.backend import in_parallel
    from drills.remote.client import AgentClient

    inventory = load_inventory(inventory_file)

    def one(name: str) -> str | dict[str, object]:
        host = inventory.host(name)
        try:
            with sudo_advised(host), AgentClient(name, agent_argv(host), log) as client:
                found: dict[str, object] = client.call("check", timeout_s=60.0)
                return found
        except DrillError as exc:
            return str(exc)

    # `one` turns every failure into its reason, so in_parallel never raises here.
    return in_parallel([host.name for host in inventory.hosts], one)


def host_lines(checked: Mapping[str, str | dict[str, object]]) -> tuple[list[str], bool]:
    """`drill doctor --inventory`'s lines, and whether every host is fit to run drills."""
    from drills import __version__

    lines, fit = [], True
    for host, found in checked.items():
        if isinstance(found, str):
            lines.append(f"  {host}: UNREACHABLE: {found}")
            fit = False
            continue
        caps = found.get("capabilities")
        missing = sorted(name for name, present in (caps.items() if isinstance(caps, dict) else ()) if not present)
        problems = [] if found.get("root") else ["the agent does not run as root (set ansible_user=root or ansible_become)"]
        if found.get("version") != __version__:
            problems.append(f"drills {found.get('version')} there, {__version__} here: drill hosts prepare")
        fit = fit and not problems
        state = "ok" if not problems else "NOT READY: " + "; ".join(problems)
        lacks = f" (lacks: {', '.join(missing)})" if missing else ""
        lines.append(f"  {host}: {state}; drills {found.get('version')}{lacks}")
    return lines, fit


def exec_argv(run: Run, node: str, namespace: str, command: list[str], tty: bool) -> list[str] | None:
    """`drill exec NODE -- CMD` for a node of a run spread over hosts: the ssh command line that
    runs CMD in the node's namespace on its host; None when the run is not spread over hosts. The
    host and its namespace are checked against the run's journal (read from disk: trusted only
    as far as its entries' schemas), the host reached through the inventory the journal names."""
    from drills.errors import BadInput
    from drills.hosts.inventory import load_inventory
    from drills.hosts.ssh import remote_argv
    from drills.journal import namespace_pattern

    host = run.meta().hosts.get(node)
    if host is None:
        return None
    entry = next((e for e in run.journal.entries() if e.get("op") == "host" and e.get("name") == host), None)
    if entry is None:
        raise BadInput(f"run {run.run_id}: node {node} is on host {host}, which the run's journal does not list")
    if not namespace_pattern(str(entry["run"])).fullmatch(namespace):
        raise BadInput(f"run {run.run_id}: node {node} has namespace {namespace!r}, not one of its host's part")
    where = load_inventory(Path(str(entry["inventory"]))).host(host)
    if where.local:  # the controller's own machine, under the host part's run id
        return ["ip", "netns", "exec", namespace, *command]
    return remote_argv(where, ["ip", "netns", "exec", namespace, *command], tty=tty)

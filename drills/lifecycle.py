"""Bring testbeds up and down, list them, clean after crashes: the library behind the CLI.

Nothing here prints; progress goes to a `log` callback and results come back as data.
SIGTERM is turned into the same path as Ctrl-C, so a run is torn down either way; after
SIGKILL, `clean` finishes the job from the journal.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drills import backends, spread
from drills.backend import Backend, TeardownReport
from drills.errors import BadInput, CleanupIncomplete, EnvironmentProblem
from drills.journal import namespace_pattern, shown
from drills.netns import kernel
from drills.runs import STATUS_TEARING_DOWN, STATUS_UP, Run, RunMeta, RunStore, check_run_id
from drills.scenario.resolved import Scenario, Topology
from drills.signals import abort_on_signals

if TYPE_CHECKING:
    from drills.clock import Clock
    from drills.engine.control import ExerciseControl
    from drills.engine.drill import DrillResult
    from drills.engine.progress import Progress

Log = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class RunView:
    """A run as `drill ls` shows it."""

    meta: RunMeta
    owner_alive: bool


@dataclass(frozen=True)
class UpResult:
    meta: RunMeta
    topology: Topology


def up(scenario_path: Path, state_dir: Path, log: Log = _quiet, *, inventory: Path | None = None) -> UpResult:
    """Deploy the testbed of a scenario and leave it up; on any failure or signal, remove
    everything created so far before raising. `inventory` (`--inventory`) names the hosts of a
    drill across machines (wins over the scenario's `hosts.inventory`)."""
    from drills.scenario.loader import load_scenario  # here: pydantic is only needed to deploy

    scenario = load_scenario(scenario_path)
    kernel.require_root()
    across = spread.placed(scenario, inventory)
    if across is not None:  # several hosts: each agent deploys its part and leaves it up
        from drills.clock import SystemClock

        run_id, _hosts = spread.up(scenario, across, state_dir, log, SystemClock())
        return UpResult(RunStore(state_dir).get(run_id).meta(), scenario.topology)
    backend = backends.for_topology(scenario.topology, log, service_cwd=scenario_path.resolve().parent)
    run = _new_run(scenario, backend, RunStore(state_dir))
    log(f"run {run.run_id}: deploying {scenario.name} ({len(scenario.topology.nodes)} nodes)")
    try:
        with abort_on_signals():
            backend.deploy(scenario.topology, run)
    except BaseException:
        with abort_on_signals():
            _teardown(backend, run, log)
        raise
    run.set_status(STATUS_UP)
    run.unlock()
    return UpResult(run.meta(), scenario.topology)


def run(
    scenario_path: Path,
    state_dir: Path,
    log: Log = _quiet,
    progress: Progress | None = None,
    clock: Clock | None = None,
    *,
    inventory: Path | None = None,
    control: ExerciseControl | None = None,
) -> DrillResult:
    """`drill run`: load the scenario, check it against the backend that would deploy it (before
    anything is deployed, and before the root check, so a scenario this host cannot run is
    refused as bad input), then run the drill on the system clock
    (`drills.engine.drill.run_drill`, which tears the testbed down before it returns)."""
    from drills.clock import SystemClock
    from drills.engine.drill import preflight, run_drill
    from drills.engine.progress import ignore
    from drills.scenario.loader import load_scenario

    scenario = load_scenario(scenario_path)
    seed = scenario.seed if scenario.seed is not None else secrets.randbits(32)
    clock = clock or SystemClock()  # one clock: the backend's waits, the timeline, the probes
    across = spread.placed(scenario, inventory)
    if across is not None:  # several hosts: the same engine, the agents' backend
        kernel.require_root()
        return spread.run(scenario, across, state_dir, log, progress or ignore, clock, seed, control)
    backend = backends.for_topology(
        scenario.topology, log, service_cwd=scenario_path.resolve().parent, seed=seed, clock=clock
    )
    preflight(scenario, backend.capabilities)
    kernel.require_root()
    drill_run = _new_run(scenario, backend, RunStore(state_dir))
    return run_drill(scenario, backend, clock, drill_run, log, seed=seed, progress=progress or ignore, control=control)


def _new_run(scenario: Scenario, backend: Backend, store: RunStore) -> Run:
    """A new run of `scenario`, locked, its nodes' namespaces and its backend in its metadata."""
    created = store.create(scenario.name, scenario.path.resolve())
    meta = created.meta()
    meta.nodes = {node.name: backend.namespace_of(created, node.name) for node in scenario.topology.nodes}
    meta.backend = backends.kind(scenario.topology)
    created.write_meta(meta)
    return created


def _teardown(backend: backends.Teardown, run: Run, log: Log) -> TeardownReport:
    with suppress(FileNotFoundError):
        run.set_status(STATUS_TEARING_DOWN)
    report = backend.teardown(run)
    if report.clean:
        run.remove()
        log(f"run {run.run_id}: removed {len(report.removed)} objects")
    else:
        run.unlock()
    return report


def _pick(store: RunStore, run_id: str | None) -> Run:
    if run_id is not None:
        return store.get(run_id)
    runs = list(store.runs())
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise BadInput("no testbed is up (see `drill ls`)")
    raise BadInput(f"{len(runs)} runs exist ({', '.join(r.run_id for r in runs)}); name one: drill down RUN")


def down(state_dir: Path, run_id: str | None = None, log: Log = _quiet) -> tuple[str, TeardownReport]:
    """Tear down one run (the only one when `run_id` is None); returns its id and what went."""
    if run_id is not None:
        check_run_id(run_id)  # before anything else: a bad id never becomes a path
    kernel.require_root()
    run = _pick(RunStore(state_dir), run_id)
    if not run.try_lock():
        raise EnvironmentProblem(
            f"run {run.run_id} is in use by a live drill process (pid {_owner(run)}); stop it first"
        )
    report = _teardown(backends.for_teardown(log), run, log)
    if not report.clean:
        raise CleanupIncomplete(_leftover_message(run.run_id, report))
    return run.run_id, report


def _owner(run: Run) -> str:
    try:
        return str(run.meta().owner_pid)
    except (OSError, ValueError, TypeError):
        return "?"


def _leftover_message(run_id: str, report: TeardownReport) -> str:
    lines = "\n".join(f"  - {item}" for item in report.left)
    return (
        f"run {run_id}: could not remove everything; left:\n{lines}\nthe journal is kept: `drill clean --all` retries"
    )


@dataclass
class CleanReport:
    """What `clean` did, run by run."""

    cleaned: dict[str, TeardownReport]
    skipped: dict[str, str]  # run id -> why it was left alone

    @property
    def clean(self) -> bool:
        return all(r.clean for r in self.cleaned.values())


def clean(state_dir: Path, include_up: bool = False, log: Log = _quiet) -> CleanReport:
    """Remove what abandoned runs left behind, from their journals. Runs still owned by a live
    process are never touched; testbeds left up on purpose only with `include_up`."""
    kernel.require_root()
    result = CleanReport({}, {})
    backend = backends.for_teardown(log)
    store = RunStore(state_dir)
    for run in store.runs():
        if not run.try_lock():
            result.skipped[run.run_id] = f"in use by live process {_owner(run)}"
            continue
        try:
            status = run.meta().status
        except (OSError, ValueError, TypeError):
            status = "unknown"  # killed before meta.json was written
        if status == STATUS_UP and not include_up:
            result.skipped[run.run_id] = "left up on purpose by `drill up`; `drill down` it or use --all"
            run.unlock()
            continue
        result.cleaned[run.run_id] = _teardown(backend, run, log)
    for name in store.strays:
        result.skipped[shown(name)] = "not a run directory (its name is not a run id): left alone, remove it by hand"
    return result


def list_runs(state_dir: Path) -> list[RunView]:
    views = []
    for run in RunStore(state_dir).runs():
        try:
            meta = run.meta()
        except (OSError, ValueError, TypeError):
            continue
        meta.run_id = run.run_id  # the checked directory name, not what meta.json claims
        try:
            free = run.try_lock()
        except OSError:  # not root: the lock file is root's; whether its owner lives is unknown
            free = True
        run.unlock()
        views.append(RunView(meta, owner_alive=not free))
    return views


def exec_in_node(state_dir: Path, node: str, command: list[str], run_id: str | None = None) -> None:
    """Replace this process by `command` running inside `node`'s namespace (never returns)."""
    if not command:
        raise BadInput("no command given; write: drill exec NODE -- COMMAND [ARGS...]")
    store = RunStore(state_dir)
    candidates = [store.get(run_id)] if run_id is not None else list(store.runs())
    matches = []
    for run in candidates:
        try:
            nodes = run.meta().nodes
        except (OSError, ValueError, TypeError):
            continue
        if node in nodes:
            matches.append((run, nodes[node]))
    if not matches:
        raise BadInput(f"no running testbed has a node '{node}' (see `drill ls`)")
    if len(matches) > 1:
        raise BadInput(f"several runs have a node '{node}'; choose one with --run")
    kernel.require_root()
    run, namespace = matches[0]
    remote = spread.exec_argv(run, node, str(namespace), command, sys.stdin.isatty())
    if remote is not None:  # a node on another host: its namespace there, over SSH
        os.execvp(remote[0], remote)
    if not isinstance(namespace, str) or not namespace_pattern(run.run_id).fullmatch(namespace):
        # meta.json is read from disk like the journal: enter only a namespace of this run.
        raise BadInput(f"run {run.run_id}: node {node} has namespace {shown(str(namespace))!r}, not one of the run's")
    # A container node's own files, users and processes are the container's: `docker exec`.
    if any(e.get("op") == "container" and e.get("node") == node for e in run.journal.entries()):
        command = ["docker", "exec", *(["-it"] if sys.stdin.isatty() else ["-i"]), namespace, *command]
    else:
        kernel.enter_namespace_for_exec(namespace)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        raise BadInput(f"cannot run {command[0]}: {exc.strerror}") from None

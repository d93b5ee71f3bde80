"""`drill up` killed with SIGKILL mid-deploy leaves debris; `drill clean` removes all of it from
the journal, and nothing else: not a foreign namespace, not a run whose owner is alive, not a
testbed left up on purpose (unless --all)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from drills import lifecycle
from drills.netns import kernel
from drills.runs import RunStore

pytestmark = pytest.mark.netns

NETNS_DIR = Path("/run/netns")
RING_NODES = 200
SERVICE_EVERY = 40  # a service on n0, n40, n80, ...


def write_ring(directory: Path, count: int = RING_NODES) -> Path:
    # Each service's readiness takes a moment, so the service phase is wide enough to hit.
    service = {"name": "idle", "command": "sleep 300", "ready": {"command": "sleep 0.1", "timeout": "10s"}}
    nodes = {f"n{i}": ({"services": [service]} if i % SERVICE_EVERY == 0 else {}) for i in range(count)}
    links = [{"endpoints": [f"n{i}:r", f"n{(i + 1) % count}:l"]} for i in range(count)]
    path = directory / "ring.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "ring", "topology": {"nodes": nodes, "links": links}}))
    return path


def run_ids(state_dir: Path) -> list[str]:
    root = state_dir / "runs"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def journal(state_dir: Path, run_id: str) -> list[dict[str, Any]]:
    try:
        lines = (state_dir / "runs" / run_id / "journal.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):  # a line being written right now
            entries.append(json.loads(line))
    return entries


def namespaces_of(ids: list[str] | set[str]) -> list[str]:
    return sorted(n for n in (p.name for p in NETNS_DIR.iterdir()) if n.startswith("drill-") and n.split("-")[1] in ids)


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan waits a moment for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_for_entry(state_dir: Path, proc: subprocess.Popen[str], op: str | None) -> bool:
    """Wait until a journal holds an entry (of kind `op`, when given); False when `drill up`
    finished first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for run_id in run_ids(state_dir):
            if any(op is None or entry.get("op") == op for entry in journal(state_dir, run_id)):
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    raise AssertionError("drill up wrote no journal within 60 s")


# Moments to kill at: seconds after the journal appears, or right after the first service
# process was journaled (while its readiness is awaited and the next ones are to come).
MOMENTS = [0.05, 0.1, 0.2, 0.4, "service"]


@pytest.mark.parametrize("moment", MOMENTS, ids=[str(m) for m in MOMENTS])
def test_sigkill_mid_deploy_then_clean(
    moment: float | str, tmp_path: Path, state_dir: Path, host_snapshot: Any, drill: Any, foreign_netns: str
) -> None:
    scenario = write_ring(tmp_path)
    proc: subprocess.Popen[str] | None = None
    try:
        debris: list[str] = []
        processes: list[int] = []
        delay = moment if isinstance(moment, float) else 0.0
        for _attempt in range(4):
            proc = drill.popen("-q", "up", str(scenario))
            started = wait_for_entry(state_dir, proc, "process" if moment == "service" else None)
            time.sleep(delay)
            proc.kill()
            proc.wait(timeout=30)
            ids = run_ids(state_dir)
            debris = namespaces_of(ids)
            if started and proc.returncode == -9 and debris:
                processes = [pid for pids in kernel.pids_in_namespaces(debris).values() for pid in pids]
                break
            # The deploy finished before the kill: remove that testbed and kill earlier.
            lifecycle.clean(state_dir, include_up=True)
            delay /= 2
        assert debris, "no attempt killed `drill up` before its deploy finished"
        assert len(ids) == 1
        if moment == "service":
            assert processes, "the service started before the kill should have outlived drill up"

        (listed,) = lifecycle.list_runs(state_dir)
        assert listed.meta.run_id == ids[0] and not listed.owner_alive and listed.meta.status == "deploying"

        result = drill("clean")
        assert result.returncode == 0, result.stdout + result.stderr
        assert namespaces_of(host_snapshot.run_ids()) == []
        assert run_ids(state_dir) == []
        assert not [pid for pid in processes if running(pid)], "clean left a service running"
        assert (NETNS_DIR / foreign_netns).exists(), "clean removed a namespace drills did not create"
        assert host_snapshot.leftovers() == []
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        lifecycle.clean(state_dir, include_up=True)


def test_clean_leaves_a_run_with_a_live_owner(tmp_path: Path, state_dir: Path, host_snapshot: Any, drill: Any) -> None:
    # This test process plays a live `drill up` mid-deploy: it holds the run's owner lock.
    run = RunStore(state_dir).create("live", tmp_path / "live.yaml")
    name = f"drill-{run.run_id}-n1"
    try:
        run.journal.record([{"op": "netns", "name": name}])
        kernel.create_namespaces([name], [])
        for args in (["clean"], ["clean", "--all"]):
            result = drill(*args)
            assert result.returncode == 0, result.stderr
            assert run.run_id in result.stdout + result.stderr
            assert (NETNS_DIR / name).exists(), f"`drill {' '.join(args)}` touched a run whose owner is alive"
            assert run_ids(state_dir) == [run.run_id]
        report = lifecycle.clean(state_dir, include_up=True)
        assert run.run_id in report.skipped and report.cleaned == {}
    finally:
        run.unlock()  # the "owner" dies
        report = lifecycle.clean(state_dir, include_up=True)
    assert report.clean and run.run_id in report.cleaned
    assert not (NETNS_DIR / name).exists()


def test_clean_leaves_a_testbed_left_up_unless_all(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, drill: Any
) -> None:
    path = tmp_path / "pair.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "pair",
                "topology": {"nodes": {"u": {}, "v": {}}, "links": [{"endpoints": ["u:v", "v:u"]}]},
            }
        )
    )
    try:
        result = drill("up", str(path))
        assert result.returncode == 0, result.stderr
        (run_id,) = run_ids(state_dir)
        namespaces = namespaces_of([run_id])
        assert len(namespaces) == 2

        result = drill("clean")
        assert result.returncode == 0, result.stderr
        assert namespaces_of([run_id]) == namespaces and run_ids(state_dir) == [run_id]
        (view,) = lifecycle.list_runs(state_dir)
        assert view.meta.status == "up" and not view.owner_alive

        result = drill("clean", "--all")
        assert result.returncode == 0, result.stderr
        assert namespaces_of([run_id]) == [] and run_ids(state_dir) == []
    finally:
        lifecycle.clean(state_dir, include_up=True)

"""bench/userspace.py still runs end to end, on the host (userspace engine) and in the VM lane
(netem and the userspace engine side by side, as `./dev vm-bench` runs it), and leaves nothing
behind. `--quick` settings: the figures are checked for shape, never for speed (speed is
measured by the benchmark itself, not asserted on a shared machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "userspace.py"


def run_bench(tmp_path: Path, host_snapshot: Any, engines: list[str]) -> dict[str, object]:
    state = tmp_path / "bench-state"
    for engine in engines:
        host_snapshot.watch_state_dir(state / engine)
    out = tmp_path / "userspace.json"
    argv = [sys.executable, str(BENCH), "--quick", "--links", "2", "--state-dir", str(state), "--out", str(out)]
    for engine in engines:
        argv += ["--engine", engine]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data: dict[str, object] = json.loads(out.read_text())
    markdown = out.with_suffix(".md").read_text()
    assert "not results" in markdown  # a quick run says so
    if len(engines) > 1:
        assert "Side by side" in markdown
    return data


def check_run(run: dict[str, object], engine: str) -> None:
    assert run["engine"] == engine
    single = run["single"]
    assert isinstance(single, list) and single
    assert all(r["sent"] > 0 and r["median_s"] is not None for r in single)
    # netem has no process of its own to charge; the relay's CPU is measured
    assert all(("cpu_per_1000pps" in r) == (engine == "userspace") for r in single)
    machine = run["machine_cpu"]
    assert isinstance(machine, dict) and isinstance(machine["added_per_1000pps"], float)


@pytest.mark.netns
def test_userspace_bench_runs(tmp_path: Path, host_snapshot: Any) -> None:
    data = run_bench(tmp_path, host_snapshot, ["userspace"])
    runs = data["runs"]
    assert isinstance(runs, list) and len(runs) == 1
    check_run(runs[0], "userspace")


@pytest.mark.netem
def test_both_engines_side_by_side(tmp_path: Path, host_snapshot: Any) -> None:
    data = run_bench(tmp_path, host_snapshot, ["kernel", "userspace"])
    runs = data["runs"]
    assert isinstance(runs, list) and [r["engine"] for r in runs] == ["kernel", "userspace"]
    for run in runs:
        check_run(run, run["engine"])

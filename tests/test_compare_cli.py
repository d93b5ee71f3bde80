"""`drill compare` from the command line: a regression exits 1, two runs with no figure in
common are refused (exit 2, with what each measured), never read as "no regression"."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from test_reports import sample_results


def _run_dir(root: Path, name: str, results: dict[str, Any]) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "results.json").write_text(json.dumps(results))
    return directory


def test_runs_with_no_figure_in_common_are_refused(tmp_path: Path, drill: Any) -> None:
    a = sample_results()
    b = copy.deepcopy(a)
    b["scenario"]["name"] = "another"
    for metric in b["metrics"]:
        metric["probe"] = "video"
    b["phases"] = {"video": b["phases"].pop("voice")}
    b["availability"] = {"video": b["availability"].pop("voice")}
    done = drill("compare", str(_run_dir(tmp_path, "a", a)), str(_run_dir(tmp_path, "b", b)))
    assert done.returncode == 2, done
    assert "no figure in common" in done.stderr and "voice / cut (apply)" in done.stderr and "video / cut (apply)" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_regression_exits_1_and_the_same_run_exits_0(tmp_path: Path, drill: Any) -> None:
    base = _run_dir(tmp_path, "base", sample_results(outage_s=0.002))
    worse = _run_dir(tmp_path, "worse", sample_results(outage_s=0.050))
    assert drill("compare", str(base), str(worse)).returncode == 1
    assert drill("compare", str(base), str(base)).returncode == 0


def test_a_log_gets_whole_names_one_line_per_row(tmp_path: Path, drill: Any) -> None:
    # A CI log is no terminal: the table must not be drawn 80 columns wide with names cut.
    long_probe = "dispatch-centre-voice-over-satellite-backup"
    a = sample_results(outage_s=0.002)
    for metric in a["metrics"]:
        metric["probe"] = long_probe
    b = copy.deepcopy(a)
    for metric in b["metrics"]:
        metric["outage_s"] = 0.050
    # Without COLUMNS, as a CI job runs it: this test process's C-level environment has
    # COLUMNS=80 (readline's initialisation exports it), which a child would inherit. A
    # COLUMNS the user sets is obeyed (tests/test_plan.py).
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    argv = drill.argv("compare", str(_run_dir(tmp_path, "a", a)), str(_run_dir(tmp_path, "b", b)))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 1, done
    rows = [line for line in done.stdout.splitlines() if long_probe in line]
    assert rows and all("outage" in line or "loss" in line or "recover" in line for line in rows), done.stdout
    assert "…" not in done.stdout, done.stdout

"""The example exercise (scenarios/pacific-link-exercise.yaml) runs as a dry run, end to end in
namespaces: without --control the MSEL plays as planned (the manual inject delivered at its
planned time, the decision gate passing, the inject that follows another at the planned gap)
and every objective is met with its margin (see the scenario's header)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "scenarios" / "pacific-link-exercise.yaml"


def test_the_example_exercise_passes_as_a_dry_run(tmp_path: Path, drill: Any, host_snapshot: object) -> None:
    out = tmp_path / "out"
    proc = drill("run", str(SCENARIO), "--no-live", "--out", str(out), timeout_s=300)
    data = json.loads((out / "results.json").read_text())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(verdict["passed"] for verdict in data["verdicts"]), data["verdicts"]
    exercise = data["exercise"]
    assert exercise["title"] == "Pacific Link 2026" and exercise["controlled"] is False
    how = {inject["id"]: (inject["status"], inject["how"]) for inject in exercise["injects"] if inject["id"]}
    assert how["lte-loss"] == ("delivered", "planned")  # manual: as planned without a controller
    assert how["media"] == ("delivered", "after")
    assert how["cut-b"][0] == "delivered"  # the decision gate passes in a dry run
    assert exercise["holds"] == [] and exercise["stop"] is None

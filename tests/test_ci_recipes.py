"""The CI recipes (action.yml, .github/workflows/resilience.yml, ci/drills.gitlab-ci.yml):
valid for their CI systems (SchemaStore's schemas, carried by check-jsonschema: no network),
every drills option they use exists, and the GitLab job's script, run here as its runner would,
keeps a baseline on the first pipeline and compares with it on the next."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_baseline import CUT

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {
    ROOT / "action.yml": "vendor.github-actions",
    ROOT / ".github" / "workflows" / "resilience.yml": "vendor.github-workflows",
    ROOT / "ci" / "drills.gitlab-ci.yml": "vendor.gitlab-ci",
}


@pytest.mark.parametrize("path", list(RECIPES), ids=[p.name for p in RECIPES])
def test_the_recipe_is_valid_for_its_ci_system(path: Path) -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    assert checker, "check-jsonschema is a dev dependency (pyproject.toml)"
    done = subprocess.run([checker, "--builtin-schema", RECIPES[path], str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_drills_option_the_recipes_use_exists() -> None:
    help_text = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, timeout=120, check=True).stdout
    used = {option for path in RECIPES for option in re.findall(r"--drill[a-z-]*", path.read_text())}
    assert used >= {"--drill", "--drill-baseline", "--drill-save-baseline", "--drill-out", "--drill-state-dir"}
    assert sorted(option for option in used if option not in help_text) == []


QUICK = CUT.replace("CUT", "500ms")  # a 0.5 s cut of a two-node chain


def _gitlab_job(project: Path, scenario: Path) -> subprocess.CompletedProcess[str]:
    """The `.drills` job's script and after_script, as a shell runner runs them (the install in
    before_script is this checkout's virtualenv already)."""
    job: dict[str, Any] = yaml.safe_load((ROOT / "ci" / "drills.gitlab-ci.yml").read_text())[".drills"]
    env = {**os.environ, "CI_PROJECT_DIR": str(project), "DRILLS_SCENARIOS": str(scenario)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # `python` and `drill`: this virtualenv
    for name, value in job["variables"].items():
        env[name] = value.replace("$CI_PROJECT_DIR", str(project))
    script = "set -e\n" + "\n".join(job["script"]) + "\n" + "\n".join(job["after_script"])
    return subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_gitlab_job_keeps_a_baseline_then_compares_with_it(tmp_path: Path) -> None:
    scenario = tmp_path / "quick.yaml"
    scenario.write_text(QUICK)
    first = _gitlab_job(tmp_path, scenario)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / "drills-baseline" / "baseline-cut" / "results.json").is_file()
    assert (tmp_path / "drills-results" / "junit.xml").is_file()
    second = _gitlab_job(tmp_path, scenario)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "::baseline PASSED" in second.stdout or " passed" in second.stdout, second.stdout
    assert not any((tmp_path / ".drills-state" / "runs").glob("*"))  # nothing left behind

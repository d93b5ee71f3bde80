#!/usr/bin/env python3
"""The validation table for the README: every scenario that states known answers, over trials.

    .venv/bin/python bench/validation.py [--trials 5] [--scenario FILE ...] [--out bench/results/validation.json]

Runs `drill run --trials N` (a process per scenario, as a user would) on every scenario in
scenarios/ that has `expect_known:` (or on the `--scenario` files given), reads the validation
rows each wrote to its trials.json, and writes one table: per known answer, the mechanism, the
expected figure (value ± tolerance, or its window) with its source, the measured figure's
min / median / max over the trials ± the largest accuracy of any trial, the trials that passed,
and the verdict (PASS only when every trial passed; FAIL when any failed; else INCONCLUSIVE).
A scenario whose run did not finish (a missing daemon, a host that cannot run it) gets a row
saying so, never a pass.

Run as root. Every run uses a private state directory, removed with whatever it holds on exit
(Ctrl-C and SIGTERM too). Results: JSON (`--out`) and Markdown beside it (the table the README
pastes), printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# Last on the path, not first (where Python puts a script's directory): bench/docker.py must not
# shadow the docker SDK.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR] + [str(BENCH_DIR)]

import common  # noqa: E402

from drills.errors import ExitCode, ScenarioError  # noqa: E402
from drills.reports.validation import validation_lines  # noqa: E402
from drills.scenario import load_scenario  # noqa: E402

SLACK_S = 60.0  # per trial, beyond the drill's duration: deploy, teardown, reports
OUTPUT_TAIL_BYTES = 2000  # of a failed run's stderr, kept in the results


def with_known(paths: list[Path]) -> list[tuple[Path, float]]:
    """The scenarios among `paths` that state known answers, with their durations (a file that
    does not load is said on stderr and left out: `drill validate` says why)."""
    found = []
    for path in paths:
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            print(f"{path}: does not load ({len(exc.problems)} problems); skipped", file=sys.stderr)
            continue
        if scenario.known:
            found.append((path, scenario.duration_s))
    return found


def run_trials(path: Path, duration_s: float, trials: int, state_dir: Path, out: Path) -> dict[str, Any]:
    """`drill run --trials N` of one scenario; its validation rows, or why there are none."""
    command = [
        sys.executable, "-m", "drills", "-q", "--state-dir", str(state_dir), "run", str(path),
        "--trials", str(trials), "--out", str(out), "--no-live",
    ]  # fmt: skip
    started = time.monotonic()
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=trials * (duration_s + SLACK_S), check=False
        )
        code, error = proc.returncode, proc.stderr[-OUTPUT_TAIL_BYTES:]
    except subprocess.TimeoutExpired:
        code, error = None, f"timed out after {trials * (duration_s + SLACK_S):g} s"
    entry: dict[str, Any] = {
        "scenario": path.stem,
        "path": str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path),
        "exit_code": code,
        "wall_s": round(time.monotonic() - started, 1),
    }
    summary_path = out / "trials.json"
    if not summary_path.exists():
        entry |= {"outcome": "not run", "error": error, "validation": []}
        return entry
    summary = json.loads(summary_path.read_text())
    entry |= {"outcome": summary["outcome"], "outcomes": summary["outcomes"], "validation": summary["validation"]}
    if code not in (ExitCode.OK, ExitCode.OBJECTIVES_MISSED, ExitCode.INCONCLUSIVE):
        entry["error"] = error
    return entry


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    rows: list[dict[str, Any]] = []
    for entry in results["scenarios"]:
        rows += [row | {"scenario": entry["scenario"]} for row in entry["validation"]]
    lines = [
        f"# Validation: known answers over {results['trials']} trials",
        "",
        f"{meta['date']} · {meta['host']} · kernel {meta['kernel']} · {meta['cpus']} CPUs · Python {meta['python']}",
        "",
        "Each row: a mechanism whose failover figure is known (published, or derived in the scenario's header), "
        f"drilled {results['trials']} times (`drill run --trials {results['trials']}`). A trial passes when the "
        "measured figure ± its stated accuracy lies wholly inside the expected window; the verdict is PASS only "
        "when every trial passed, FAIL when any failed, INCONCLUSIVE otherwise (a figure missing, a dirty "
        "baseline). Measured: min / median / max over the trials ± the largest accuracy of any trial.",
        "",
        *validation_lines(rows),
        "",
    ]
    missing = [entry for entry in results["scenarios"] if not entry["validation"]]
    for entry in missing:
        lines.append(f"- {entry['scenario']}: no table ({entry['outcome']}, exit {entry['exit_code']})")
    lines += ["", "Regenerate: `sudo .venv/bin/python bench/validation.py --trials 5` (writes this file).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--scenario", type=Path, action="append", default=[], metavar="FILE")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "validation.json")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials needs a positive number")
    paths = args.scenario or sorted((REPO / "scenarios").glob("*.yaml"))
    chosen = with_known([p.resolve() for p in paths])
    if not chosen:
        print("no scenario states `expect_known:`", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="drills-validation-"))
    state_dir = work / "state"
    results: dict[str, Any] = {"meta": common.host_meta(), "trials": args.trials, "scenarios": []}
    with common.interruptible(lambda: common.clean_state(state_dir, work)) as stop:
        for path, duration_s in chosen:
            print(f"{path.name}: {args.trials} trials", file=sys.stderr, flush=True)
            results["scenarios"].append(run_trials(path, duration_s, args.trials, state_dir, work / path.stem))
    if stop.interrupted:
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 1 if stop.left else 0


if __name__ == "__main__":
    raise SystemExit(main())

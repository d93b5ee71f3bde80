#!/usr/bin/env python3
"""Do the example scenarios pass out of the box? Each one run `--runs` times, as a newcomer runs it.

    sudo .venv/bin/python bench/examples.py [--runs 10] [--scenario FILE ...] [--out bench/results/examples.json]

Every scenario in scenarios/ (or the `--scenario` files) runs `drill run --no-live` in a process
of its own, round-robin (round k runs every scenario once before round k+1, so a noisy minute
touches them all alike), each with a private state directory. A run passes when it exits 0; a
scenario whose header says it demonstrates a failure (a line `# demonstrates: failure`) passes
when it exits 1. A scenario this machine cannot run as such (an inventory naming machines that
are not here) is listed with the reason, never counted as a pass. Results: JSON (`--out`) and
Markdown beside it (the pass rate per scenario the README quotes), printed.
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
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR] + [str(BENCH_DIR)]

import common  # noqa: E402

from drills.errors import ExitCode, ScenarioError  # noqa: E402
from drills.scenario import load_scenario  # noqa: E402

SLACK_S = 120.0  # beyond the drill's duration: deploy (containers), teardown, reports
OUTPUT_TAIL_BYTES = 1500
DEMONSTRATES_FAILURE = "# demonstrates: failure"


def not_here(path: Path) -> str | None:
    """Why this machine cannot run the scenario as written, or None."""
    text = path.read_text()
    if "\nhosts:" in text:
        return "needs the machines of its inventory (the several-machines lane runs the same drill shape: tests/test_hosts_drills.py)"
    return None


def run_once(path: Path, duration_s: float, state_dir: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "drills", "-q", "--state-dir", str(state_dir), "run", str(path), "--no-live", "--out", str(out)]
    started = time.monotonic()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + SLACK_S, check=False)
        code, tail = proc.returncode, proc.stderr[-OUTPUT_TAIL_BYTES:]
    except subprocess.TimeoutExpired:
        code, tail = None, f"timed out after {duration_s + SLACK_S:g} s"
    return {"exit_code": code, "wall_s": round(time.monotonic() - started, 1), "tail": tail}


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"# Example scenarios: pass rate over {results['runs']} runs each",
        "",
        f"{meta['date']} · {meta['host']} · kernel {meta['kernel']} · {meta['cpus']} CPUs · Python {meta['python']}",
        "",
        "Each run: `drill run SCENARIO --no-live` in its own process, rounds round-robin. Passed: exit 0 "
        "(exit 1 for a scenario whose header says it demonstrates a failure).",
        "",
        "| scenario | passed | runs | exit codes | wall s (median) |",
        "|---|---:|---:|---|---:|",
    ]
    for name, entry in results["scenarios"].items():
        if entry.get("skipped"):
            lines.append(f"| {name} | — | 0 | not run here: {entry['skipped']} | |")
            continue
        codes = [r["exit_code"] for r in entry["runs"]]
        walls = sorted(r["wall_s"] for r in entry["runs"])
        lines.append(f"| {name} | {entry['passed']} | {len(codes)} | {', '.join(str(c) for c in codes)} | {walls[len(walls) // 2]} |")
    lines += ["", "Regenerate: `sudo .venv/bin/python bench/examples.py --runs 10` (writes this file).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenario", type=Path, action="append", default=[], metavar="FILE")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "examples.json")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs needs a positive number")
    paths = [p.resolve() for p in (args.scenario or sorted((REPO / "scenarios").glob("*.yaml")))]
    results: dict[str, Any] = {"meta": common.host_meta(), "runs": args.runs, "scenarios": {}}
    chosen: list[tuple[Path, float, int]] = []
    for path in paths:
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            results["scenarios"][path.stem] = {"skipped": f"does not load: {exc.problems[0]}"}
            continue
        if (why := not_here(path)) is not None:
            results["scenarios"][path.stem] = {"skipped": why}
            continue
        wanted = ExitCode.OBJECTIVES_MISSED if DEMONSTRATES_FAILURE in path.read_text() else ExitCode.OK
        results["scenarios"][path.stem] = {"runs": [], "passed": 0, "wanted_exit": int(wanted)}
        chosen.append((path, scenario.duration_s, int(wanted)))
    work = Path(tempfile.mkdtemp(prefix="drills-examples-"))
    state_dir = work / "state"
    with common.interruptible(lambda: common.clean_state(state_dir, work)) as stop:
        for round_k in range(1, args.runs + 1):
            for path, duration_s, wanted in chosen:
                run = run_once(path, duration_s, state_dir, work / f"{path.stem}-{round_k}")
                entry = results["scenarios"][path.stem]
                entry["runs"].append(run)
                entry["passed"] += run["exit_code"] == wanted
                print(f"round {round_k}: {path.name}: exit {run['exit_code']} ({run['wall_s']} s)", file=sys.stderr, flush=True)
                if run["exit_code"] != wanted:
                    print(run["tail"], file=sys.stderr, flush=True)
    if stop.interrupted:
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

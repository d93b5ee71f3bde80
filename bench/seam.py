#!/usr/bin/env python3
"""The backend seam, before and after: fault apply latency and 100-node deploy, side by side.

    .venv/bin/python bench/seam.py --before REV [--rounds 4] [--out bench/results/seam.json]

Issue 12 put every fault behind the node operations of `drills/backend.py`; its speed target is
no regression: fault apply p99 and 100-node deploy within 10 % of before. This script checks out
`--before` (a git revision: the last commit before the seam) in a temporary worktree and runs, in
`--rounds` alternating rounds (before, after, after, before, ... so drift and load hit both
alike), each tree's own benchmarks with that tree's own code:

- `bench/apply.py --links 100 --repeats R --skew-runs 0 --no-profile`: link-down and degrade
  (tbf) apply/revert through the drills path, confirmed-minus-scheduled p50/p99;
- `bench/deploy.py --sizes 100 --repeats D --no-mininet --no-cli --no-lifecycle`: deploy and
  teardown of a 100-node ring.

With `--examples`, every scenario in `scenarios/` also runs once per tree per round (`drill run`
of that tree), and each pair of results is compared with `drills.reports.compare`: a figure is
"the same" when the two differ by no more than their two accuracy bounds together (the
behaviour did not change), which is what the seam issue asks of every example.

Each tree runs with `PYTHONPATH=<tree>`, so `import drills` is that tree's package (the
interpreter and libraries are this checkout's .venv). Per figure the result is the median over
rounds of each round's figure, and after ÷ before. Results: JSON (`--out`) and Markdown (same
name, `.md`), printed. Run as root; everything each benchmark creates it removes itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
TARGET_RATIO = 1.10  # "within 10 % of before"

# (figure, path into apply.json's analysis.faults) for the drills path.
APPLY_FIGURES = [
    (f"{fault} {action} confirmed {q}", (fault, "drills", action, "confirmed_s", q))
    for fault in ("link-down", "degrade")
    for action in ("apply", "revert")
    for q in ("p50", "p99")
]


def _dig(data: Any, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return float(data) if isinstance(data, int | float) else None


def _run(tree: Path, script: str, args: list[str], out: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("CI", None)
    argv = [sys.executable, str(tree / "bench" / script), *args, "--out", str(out)]
    done = subprocess.run(argv, env=env, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{script} in {tree} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _round(tree: Path, work: Path, label: str, index: int, repeats: int, deploys: int) -> dict[str, float | None]:
    figures: dict[str, float | None] = {}
    apply = _run(tree, "apply.py", ["--links", "100", "--repeats", str(repeats), "--skew-runs", "0", "--no-profile"], work / f"apply-{label}-{index}.json")
    faults = apply["analysis"]["faults"]
    for name, path in APPLY_FIGURES:
        value = _dig(faults, path)
        figures[f"{name} (ms)"] = value * 1e3 if value is not None else None
    deploy = _run(tree, "deploy.py", ["--sizes", "100", "--repeats", str(deploys), "--no-mininet", "--no-cli", "--no-lifecycle"], work / f"deploy-{label}-{index}.json")
    drills = deploy["analysis"]["sizes"]["100"]["drills"]
    for name in ("deploy_s", "teardown_s"):
        value = _dig(drills, (name, "median"))
        figures[f"100-node {name[:-2]} median (ms)"] = value * 1e3 if value is not None else None
    return figures


def _drill_run(tree: Path, scenario: Path, out: Path, state: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(tree), DRILLS_STATE_DIR=str(state))
    env.pop("CI", None)
    argv = [sys.executable, "-m", "drills", "run", str(scenario), "--out", str(out), "-q", "--no-live"]
    return subprocess.run(argv, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode


def _examples(before: Path, work: Path, rounds: int) -> list[dict[str, Any]]:
    """Every example scenario run by both trees, `rounds` times each, figures compared."""
    from drills.reports.compare import compare

    state = work / "state"
    state.mkdir(exist_ok=True)
    found = []
    for scenario in sorted((ROOT / "scenarios").glob("*.yaml")):
        for index in range(rounds):
            outs: dict[str, Path] = {}
            codes: dict[str, int] = {}
            order = [("before", before), ("after", ROOT)]
            for label, tree in order if index % 2 == 0 else reversed(order):
                outs[label] = work / f"{scenario.stem}-{label}-{index}"
                print(f"example {scenario.name} round {index + 1}: {label}", flush=True)
                codes[label] = _drill_run(tree, tree / "scenarios" / scenario.name, outs[label], state)
            row: dict[str, Any] = {"scenario": scenario.name, "round": index + 1, "exit": codes, "figures": []}
            paths = {label: out / "results.json" for label, out in outs.items()}
            if all(path.exists() for path in paths.values()):
                a, b = (json.loads(paths[label].read_text()) for label in ("before", "after"))
                for d in compare(a, b).differences:
                    same = d.a_s == d.b_s or (d.a_s is not None and d.b_s is not None and abs(d.a_s - d.b_s) <= d.tolerance_s)
                    row["figures"].append({"probe": d.probe, "event": d.event, "figure": d.figure, "before_s": d.a_s,
                                           "after_s": d.b_s, "tolerance_s": d.tolerance_s, "same": same})  # fmt: skip
            found.append(row)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision before the seam")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per tree (alternating)")
    parser.add_argument("--repeats", type=int, default=200, help="apply/revert cycles per fault per round")
    parser.add_argument("--deploys", type=int, default=5, help="100-node deploys per round")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "seam.json")
    parser.add_argument("--examples", type=int, default=0, help="rounds of every example scenario per tree (0: none)")
    parser.add_argument("--no-speed", action="store_true", help="skip the apply/deploy rounds")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/seam.py needs root (network namespaces)", file=sys.stderr)
        return 2
    before_rev = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    after_rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="drills-seam-") as tmp:
        work = Path(tmp)
        before = work / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(before), before_rev], cwd=ROOT, check=True)
        try:
            rounds: dict[str, list[dict[str, float | None]]] = {"before": [], "after": []}
            order = [("before", before), ("after", ROOT)]
            examples = _examples(before, work, args.examples) if args.examples else []
            for index in range(0 if args.no_speed else args.rounds):
                for label, tree in order if index % 2 == 0 else reversed(order):
                    print(f"round {index + 1}/{args.rounds}: {label}", flush=True)
                    rounds[label].append(_round(tree, work, label, index, args.repeats, args.deploys))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
    names = list(rounds["after"][0]) if rounds["after"] else []
    table: list[dict[str, Any]] = []
    for name in names:
        b = [v for r in rounds["before"] if (v := r[name]) is not None]
        a = [v for r in rounds["after"] if (v := r[name]) is not None]
        mb = statistics.median(b) if b else None
        ma = statistics.median(a) if a else None
        ratio = ma / mb if mb and ma is not None else None
        table.append({"figure": name, "before": mb, "after": ma, "ratio": ratio, "rounds_before": b, "rounds_after": a})
    meta = {"before": before_rev, "after": after_rev, "rounds": args.rounds, "repeats": args.repeats, "deploys": args.deploys,
            "cpus": os.cpu_count(), "loadavg_end": os.getloadavg()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "figures": table, "examples": examples}, indent=1) + "\n")
    lines = [
        f"# The seam, before ({before_rev}) and after ({after_rev})",
        "",
        f"{args.rounds} alternating rounds per tree; each figure is the median over rounds. "
        f"apply: 100-link ring, {args.repeats} cycles per fault per round (degrade = tbf 10 Mbit/s); "
        f"deploy: 100-node ring, {args.deploys} deploys per round. Target: after ÷ before ≤ {TARGET_RATIO:.2f}.",
        "",
        "| figure | before | after | after ÷ before |",
        "|---|---:|---:|---:|",
    ]
    for row in table:
        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"

        lines.append(f"| {row['figure']} | {fmt(row['before'])} | {fmt(row['after'])} | {fmt(row['ratio'])} |")
    if examples:
        lines += [
            "",
            "## Example scenarios, before and after",
            "",
            "Each example run once per tree per round; a figure is the same when before and after differ by no more "
            "than their two accuracy bounds together.",
            "",
            "| scenario | round | exit before / after | figures | the same |",
            "|---|---:|---|---:|---:|",
        ]
        for row in examples:
            same = sum(1 for f in row["figures"] if f["same"])
            lines.append(
                f"| {row['scenario']} | {row['round']} | {row['exit']['before']} / {row['exit']['after']} | "
                f"{len(row['figures'])} | {same} |"
            )
        differing = [(row, f) for row in examples for f in row["figures"] if not f["same"]]
        for row, f in differing:
            lines.append(f"\nNot the same: {row['scenario']} round {row['round']}: {f['probe']} / {f['event']} {f['figure']}: "
                         f"{f['before_s']} s before, {f['after_s']} s after (tolerance {f['tolerance_s']:.4f} s)")  # fmt: skip
    text = "\n".join(lines) + "\n"
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

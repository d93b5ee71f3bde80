#!/usr/bin/env python3
"""Time and memory of `drill validate` on every hostile-corpus case.

    .venv/bin/python bench/hostile.py [--workers 1] [--out bench/results/hostile.md]

Runs every case of tests/hostile (the text cases and those tests/hostile/generate*.py write)
through tests/hostile/harness.py: one forked child a case, under the corpus's 1 GiB address-space
cap and 30 s hang guard; wall time from fork to exit, peak RSS from wait4 (the child's own,
imports included: they happen before the fork, in the worker, so the RSS counts the pages the
child touches or inherits). One worker by default, so that cases do not compete with each other.

Also times reading (yamlpos.read_located, in process, min of 3, CPU and wall) of the 10,000-link
and 10,000-step scenarios of bench/validate.py's shape: the reading speed the bounded composer
must keep.

Writes Markdown (the slowest cases, the largest, the totals) to --out and prints it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))  # bench/ is not a package: for common
sys.path.insert(0, str(REPO / "tests/hostile"))  # nor tests/hostile: for harness and generate*

import common  # noqa: E402

from drills.scenario.yamlpos import read_located  # noqa: E402


def _ring(nodes: int) -> list[str]:
    lines = [
        "version: 1",
        f"name: ring-{nodes}",
        "topology:",
        "  addressing: {ipv4: 10.0.0.0/8, loopbacks: 172.16.0.0/12}",
    ]
    lines.append("  nodes:")
    for i in range(nodes):
        nxt, prev = (i + 1) % nodes, (i - 1) % nodes
        lines += [f"    r{i}:", f"      routes: [{{to: r{nxt}, via: 'r{nxt}:w'}}, {{to: r{prev}, via: 'r{prev}:e'}}]"]
    lines.append("  links:")
    lines += [f"    - {{endpoints: ['r{i}:e', 'r{(i + 1) % nodes}:w']}}" for i in range(nodes)]
    return lines


def _steps(count: int) -> list[str]:
    lines = [*_ring(10), "timeline:"]
    lines += [f"  - {{id: s{k}, at: {k}s, for: 500ms, fault: link-down, link: 'r{k % 10}:e'}}" for k in range(count)]
    return lines


def reading(work: Path) -> list[dict[str, Any]]:
    rows = []
    for name, lines in (("10,000 links", _ring(10_000)), ("10,000 steps", _steps(10_000))):
        path = work / f"{name.replace(',', '').replace(' ', '-')}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cpu, wall = [], []
        for _ in range(3):
            start_cpu, start = time.process_time(), time.perf_counter()
            located = read_located(path)
            cpu.append(time.process_time() - start_cpu)
            wall.append(time.perf_counter() - start)
        rows.append(
            {
                "name": name,
                "bytes": path.stat().st_size,
                "values": len(located.values),
                "cpu_s": min(cpu),
                "wall_s": min(wall),
            }
        )
    return rows


def markdown(meta: dict[str, Any], outcomes: list[Any], workers: int, reads: list[dict[str, Any]]) -> str:
    by_time = sorted(outcomes, key=lambda o: -o.wall_s)
    by_rss = sorted(outcomes, key=lambda o: -o.max_rss_kib)
    failed = [o for o in outcomes if o.exit_code != 2]
    lines = [
        "# `drill validate` on the hostile corpus",
        "",
        f"{meta['date']}, {meta['host']}, kernel {meta['kernel']}, {meta['cpus']} CPUs, Python {meta['python']}. "
        f"{len(outcomes)} cases, {workers} at a time, each a forked child under a 1 GiB address-space cap "
        "(tests/hostile/harness.py). Wall time from fork to exit; peak RSS from wait4.",
        "",
        f"- **max wall time: {by_time[0].wall_s:.2f} s** ({_short(by_time[0].path)}; "
        f"CPU {by_time[0].cpu_s:.2f} s), load average {os.getloadavg()[0]:.1f} at the end",
        f"- max CPU time: {max(o.cpu_s for o in outcomes):.2f} s",
        f"- **max peak RSS: {by_rss[0].max_rss_kib / 1024:.0f} MiB** ({_short(by_rss[0].path)})",
        f"- total {sum(o.wall_s for o in outcomes):.1f} s; cases not exiting 2: {len(failed)}",
        "",
        "Slowest ten:",
        "",
        _HEADER,
        _RULE,
    ]
    lines += [_row(o) for o in by_time[:10]]
    lines += ["", "Largest five:", "", _HEADER, _RULE]
    lines += [_row(o) for o in by_rss[:5]]
    lines += [
        "",
        "Reading (yamlpos.read_located, in process, min of 3):",
        "",
        "| scenario | bytes | values | CPU s | wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['name']} | {r['bytes']:,} | {r['values']:,} | {r['cpu_s']:.2f} | {r['wall_s']:.2f} |" for r in reads
    ]
    return "\n".join(lines) + "\n"


_HEADER = "| case | wall s | CPU s | peak RSS MiB | exit |"
_RULE = "|---|---:|---:|---:|---:|"


def _row(outcome: Any) -> str:
    o = outcome
    return f"| {_short(o.path)} | {o.wall_s:.2f} | {o.cpu_s:.2f} | {o.max_rss_kib / 1024:.0f} | {o.exit_code} |"


def _short(path: str) -> str:
    """Generated cases live in a temporary directory: name them by group and file."""
    parts = Path(path).parts
    return "/".join(parts[-2:]) if path.startswith(tempfile.gettempdir()) else path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "hostile.md")
    args = parser.parse_args()
    harness = importlib.import_module("harness")
    work = Path(tempfile.mkdtemp(prefix="drills-bench-hostile-"))
    try:
        paths = [p.relative_to(REPO) for p in sorted((REPO / "tests/hostile").glob("*/*.yaml"))]
        for name in ("generate", "generate_values"):
            if importlib.util.find_spec(name) is not None:
                (work / name).mkdir()
                paths += [path for path, _ in importlib.import_module(name).cases(work / name)]
        outcomes = harness.run(paths, REPO, workers=args.workers)
        reads = reading(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = markdown(common.host_meta(), list(outcomes.values()), args.workers, reads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

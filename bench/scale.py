#!/usr/bin/env python3
"""Deploy and teardown of 1,000- and 3,000-node rings: the batched rtnetlink path against the
pyroute2 one it replaced, interleaved, with memory per node; Mininet at 1,000 nodes on request.

    .venv/bin/python bench/scale.py [--sizes 1000,3000] [--repeats 3] [--mininet 1000]
                                    [--out bench/results/scale.json]

For each size N, `--repeats` times in alternation (new, old, new, old, ...: the machine's other
load hits both alike): `NetnsBackend().deploy` of a ring of N nodes (bench/deploy.py's ring: a
loopback /32 per node, a /30 per link), its namespace phase timed on its own, the testbed
checked (every interface up with its addresses), then `teardown` until /run/netns has none of
the run's namespaces, then a wait for the kernel to free them (bench/deploy.py's settle), so
one measurement's asynchronous cleanup is not charged to the next.

Memory, per node, from the first "new" deploy of each size: the kernel's (/proc/meminfo
MemAvailable, and Slab, before deploy and after it) and this process's resident set (VmRSS)
before and after. The load average is recorded before each size: the 2 CPUs are shared.

Mininet (`--mininet 1000`): `mn --topo linear,N/2 --switch lxbr` timed by
bench/mininet_baseline.py, once (208 s at 1,000 nodes before: a 3,000-node run would take
~10 min or more at its superlinear cost, so it is not run by default).

Writes JSON (`--out`) and Markdown (same name, `.md`); prints the Markdown. Run as root; state
in a temporary directory; everything removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402
import deploy as bench  # noqa: E402  (bench/deploy.py: ring scenarios, cleanup, settle)

from drills.netns import kernel  # noqa: E402
from drills.netns.backend import NetnsBackend, namespace_name  # noqa: E402
from drills.scenario.resolved import Scenario  # noqa: E402

PATHS = {"new": True, "old": False}  # NetnsBackend.batched_netlink


def meminfo_kib() -> dict[str, int]:
    found = {}
    with open("/proc/meminfo") as f:
        for line in f.read(64 * 1024).splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemAvailable", "Slab", "SUnreclaim"):
                found[key] = int(rest.split()[0])
    return found


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f.read(64 * 1024).splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one(scenario: Scenario, path: Path, state: Path, cleanup: bench.Cleanup, batched: bool) -> dict[str, Any]:
    """One deploy + teardown; times, and memory before/after deploy."""
    topology = scenario.topology
    run = cleanup.new_run(state, scenario, path)
    names = [namespace_name(run.run_id, node.name) for node in topology.nodes]
    backend = NetnsBackend()
    backend.batched_netlink = batched
    phase: dict[str, float] = {}
    create = kernel.create_namespaces

    def timed(*args: Any, **kwargs: Any) -> None:
        t = time.perf_counter()
        create(*args, **kwargs)
        phase["namespaces_s"] = time.perf_counter() - t

    mem0, rss0 = meminfo_kib(), rss_kib()
    kernel.create_namespaces = timed
    try:
        t0 = time.perf_counter()
        backend.deploy(topology, run)
        t1 = time.perf_counter()
    finally:
        kernel.create_namespaces = create
    mem1, rss1 = meminfo_kib(), rss_kib()
    bench.verify_testbed(run.run_id, scenario)
    t2 = time.perf_counter()
    report = backend.teardown(run)
    bench.wait_namespaces_gone(names)
    t3 = time.perf_counter()
    release = bench.settle(60.0)
    if not report.clean:
        raise RuntimeError(f"teardown left: {report.left}")
    run.remove()
    cleanup.runs.remove(run)
    return {
        "deploy_s": t1 - t0,
        "namespaces_s": phase.get("namespaces_s"),
        "rest_of_deploy_s": t1 - t0 - phase.get("namespaces_s", 0.0),
        "teardown_s": t3 - t2,
        "kernel_release_s": (t3 - t2) + release if release is not None else None,
        "kernel_mem_available_kib": mem0["MemAvailable"] - mem1["MemAvailable"],
        "kernel_slab_kib": mem1["Slab"] - mem0["Slab"],
        "rss_kib": rss1 - rss0,
    }


def measure(n: int, repeats: int, work: Path, state: Path, cleanup: bench.Cleanup) -> dict[str, Any]:
    path, scenario = bench.load_ring(work, n)
    load = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in PATHS}
    for _ in range(repeats):
        for key, batched in PATHS.items():
            bench.settle(60.0)
            runs[key].append(one(scenario, path, state, cleanup, batched))
            print(n, key, {k: round(v, 3) for k, v in runs[key][-1].items() if v is not None}, flush=True)
    fields = ("deploy_s", "namespaces_s", "rest_of_deploy_s", "teardown_s", "kernel_release_s")
    entry: dict[str, Any] = {"load_average_before": load, "load_average_after": os.getloadavg()}
    for key, values in runs.items():
        entry[key] = {field: bench.summary(r[field] for r in values) for field in fields}
        entry[key]["runs"] = values
    first = runs["new"][0]
    entry["memory_per_node_kib"] = {
        "kernel_mem_available": first["kernel_mem_available_kib"] / n,
        "kernel_slab": first["kernel_slab_kib"] / n,
        "process_rss": first["rss_kib"] / n,
    }
    entry["gain"] = 1 - entry["new"]["deploy_s"]["median"] / entry["old"]["deploy_s"]["median"]
    return entry


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| nodes | path | deploy, s median (min–max) | of which namespaces, s | rest, s | teardown, s | kernel release, s | ms/node (deploy) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, entry in result["sizes"].items():
        for key in PATHS:
            e = entry[key]
            d = e["deploy_s"]
            lines.append(
                f"| {n} | {key} | {d['median']:.3f} ({d['min']:.3f}–{d['max']:.3f}) | {bench._s(e['namespaces_s'])} "
                f"| {bench._s(e['rest_of_deploy_s'])} | {bench._s(e['teardown_s'])} | {bench._s(e['kernel_release_s'])} "
                f"| {d['median'] / int(n) * 1000:.2f} |"
            )
    lines += ["", "| nodes | new vs old (deploy) | load average before (1, 5, 15 min) | kernel memory / node, KiB (MemAvailable drop; slab) | drills RSS / node, KiB |", "|---:|---:|---|---|---:|"]
    for n, entry in result["sizes"].items():
        mem = entry["memory_per_node_kib"]
        load = ", ".join(f"{x:.2f}" for x in entry["load_average_before"])
        lines.append(
            f"| {n} | {entry['gain']:.0%} faster | {load} | {mem['kernel_mem_available']:.0f}; {mem['kernel_slab']:.0f} "
            f"| {mem['process_rss']:.2f} |"
        )
    if result.get("mininet"):
        lines += ["", "| Mininet nodes | build, s | total (build + stop), s |", "|---:|---:|---:|"]
        for n, m in result["mininet"].items():
            lines.append(f"| {n} | {bench._s(bench.summary([bench._mn_build(m)]))} | {m.get('total_s', float('nan')):.1f} |")
    lines += ["", f"CPUs: {os.cpu_count()} (shared with other work on this machine); kernel {os.uname().release}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=bench._parse_sizes, default=[1000, 3000])
    parser.add_argument("--repeats", type=int, default=3, help="(new, old) pairs per size")
    parser.add_argument("--mininet", type=bench._parse_sizes, default=[], help="Mininet sizes (slow: ~208 s at 1000)")
    parser.add_argument("--mininet-timeout", type=float, default=1200.0)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "scale.json")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    cleanup = bench.Cleanup()
    result: dict[str, Any] = {"sizes": {}, "mininet": {}}
    with common.interruptible(cleanup.run_all) as stop:
        work = cleanup.tmpdir("drills-bench-scale-")
        state = cleanup.state_dir(work, "state")
        _, warm = bench.load_ring(work, 4)
        bench.time_drills(warm, work / "ring-4.yaml", state, cleanup)
        for n in args.sizes:
            result["sizes"][str(n)] = measure(n, args.repeats, work, state, cleanup)
        for n in args.mininet:
            result["mininet"][str(n)] = bench.time_mn(n, cleanup, args.mininet_timeout)
    if stop.interrupted:
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)
    print(f"written: {args.out}, {args.out.with_suffix('.md')}")
    return 1 if stop.left else 0


if __name__ == "__main__":
    raise SystemExit(main())

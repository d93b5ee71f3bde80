#!/usr/bin/env python3
"""Cross-host links on two hosts emulated on this machine: deploy cost and the far end's cut.

    .venv/bin/python bench/wire.py [--links 50] [--repeats 300] [--out bench/results/wire.json]

Two namespaces play hosts A and B, joined by an underlay veth (198.19.253.1/24, .2/24). The
topology is `--links` pairs a{i} (on A) -- b{i} (on B), each pair one cross link (VXLAN, VNI
1000+i, UDP 14789). Measured:
(a) deploy: each host's part (`deploy_part`, wire created from the host's namespace), against
    the same topology on one host (`NetnsBackend.deploy`: veth pairs), `--rounds` times each,
    alternating; torn down between rounds;
(b) the far end's cut, on B through warmed `PartOps` (as a drill's clock would): `set_far_end(L,
    False)` (one request and the read-back of its admin state), then `link_state(b{i}, L)` until
    the node shows no carrier; then the same up. Times: the call alone, and call to carrier
    seen lost/regained. A random link each time (seeded).
Results: p50/p99/max, JSON (`--out`) and Markdown (same name, `.md`). Everything created is
removed at the end, also on Ctrl-C or SIGTERM. Run as root. Never touches /var/lib/drills.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import yaml

from drills.backend import CrossEnd, HostPart
from drills.clock import SystemClock
from drills.netns.backend import NetnsBackend
from drills.netns.part import deploy_part, part_ops
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.scenario.resolved import Topology

UNDERLAY = ("198.19.253.1", "198.19.253.2")
PORT = 14789
MTU = 1450
VNI_BASE = 1000


def ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


def make_hosts(tag: str) -> tuple[str, str]:
    a, b = f"drillbench-wire-{tag}-A", f"drillbench-wire-{tag}-B"
    ip("netns", "add", a)
    ip("netns", "add", b)
    ip("-n", a, "link", "add", "under", "type", "veth", "peer", "name", "under", "netns", b)
    for ns, address in zip((a, b), UNDERLAY, strict=True):
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "under")
        ip("-n", ns, "link", "set", "under", "up")
    return a, b


def topology(directory: Path, links: int) -> Topology:
    nodes = {f"{side}{i}": {} for i in range(links) for side in "ab"}
    document = {
        "version": 1,
        "name": "wire-bench",
        "topology": {"nodes": nodes, "links": [{"name": f"c{i}", "endpoints": [f"a{i}:c", f"b{i}:c"]} for i in range(links)]},
    }
    path = directory / "wire-bench.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_scenario(path).topology


def parts(links: int) -> tuple[HostPart, HostPart]:
    a = tuple(CrossEnd(f"c{i}", f"a{i}", "c", VNI_BASE + i, UNDERLAY[0], UNDERLAY[1], PORT, MTU) for i in range(links))
    b = tuple(CrossEnd(f"c{i}", f"b{i}", "c", VNI_BASE + i, UNDERLAY[1], UNDERLAY[0], PORT, MTU) for i in range(links))
    return (
        HostPart("A", tuple(f"a{i}" for i in range(links)), a),
        HostPart("B", tuple(f"b{i}" for i in range(links)), b),
    )


def summary(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    return {
        "n": len(ordered),
        "min_ms": ordered[0] * 1e3,
        "p50_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1e3,
        "max_ms": ordered[-1] * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--links", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/wire.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="drills-bench-wire-"))
    states = [work / "state-a", work / "state-b", work / "state-one"]
    tag = uuid.uuid4().hex[:6]
    hosts: list[str] = []

    def cleanup() -> list[str]:
        left = [problem for state in states for problem in common.clean_state(state)]
        for name in hosts:
            ip("netns", "del", name, check=False)
        return left + common.clean_state(work / "none", work)

    # The load when the run began: on a shared machine, figures are only as quiet as it was.
    result: dict[str, Any] = {"meta": common.host_meta(), "links": args.links, "load_1min": os.getloadavg()[0]}
    with common.interruptible(cleanup) as stop:
        hosts.extend(make_hosts(tag))
        topo = topology(work, args.links)
        part_a, part_b = parts(args.links)
        times: dict[str, list[float]] = {"part A": [], "part B": [], "both parts": [], "one host": []}
        for _round in range(args.rounds):
            run_a = RunStore(states[0]).create("wire-bench", work / "wire-bench.yaml")
            run_b = RunStore(states[1]).create("wire-bench", work / "wire-bench.yaml", run_id=run_a.run_id)
            backend_a, backend_b = NetnsBackend(), NetnsBackend()
            started = time.perf_counter()
            deploy_part(backend_a, topo, part_a, run_a, underlay_ns=hosts[0])
            middle = time.perf_counter()
            deploy_part(backend_b, topo, part_b, run_b, underlay_ns=hosts[1])
            ended = time.perf_counter()
            times["part A"].append(middle - started)
            times["part B"].append(ended - middle)
            times["both parts"].append(ended - started)
            if _round == args.rounds - 1:
                result["cut"] = far_end_cuts(backend_b, topo, part_b, run_b, args.repeats, args.seed)
            for backend, run in ((backend_a, run_a), (backend_b, run_b)):
                assert backend.teardown(run).clean
                run.remove()
            one = RunStore(states[2]).create("wire-bench", work / "wire-bench.yaml")
            backend = NetnsBackend()
            started = time.perf_counter()
            backend.deploy(topo, one)
            times["one host"].append(time.perf_counter() - started)
            assert backend.teardown(one).clean
            one.remove()
        result["deploy"] = {name: summary(samples) for name, samples in times.items()}
    if stop.interrupted:
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    markdown = render(result, args)
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 1 if stop.left else 0


def far_end_cuts(backend: NetnsBackend, topo: Topology, part: HostPart, run: Any, repeats: int, seed: int) -> dict[str, Any]:
    ops = part_ops(backend, topo, part, run, SystemClock())
    chooser = random.Random(seed)
    call: dict[str, list[float]] = {"down": [], "up": []}
    seen: dict[str, list[float]] = {"down": [], "up": []}
    try:
        ops.warm()
        for _ in range(repeats):
            end = chooser.choice(part.cross)
            for up in (False, True):
                key = "up" if up else "down"
                started = time.perf_counter()
                ops.set_far_end(end.link, up)
                called = time.perf_counter()
                while ops.link_state(end.node, end.ifname).carrier != up:
                    pass  # a veth's carrier follows its peer in the same call: this loop runs once
                call[key].append(called - started)
                seen[key].append(time.perf_counter() - started)
    finally:
        ops.close()
    return {f"{key} {what}": summary(samples) for what, table in (("call", call), ("carrier", seen)) for key, samples in table.items()}


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    meta = result["meta"]
    lines = [
        f"# Cross-host links on two emulated hosts ({result['links']} links, {meta['date']})",
        "",
        f"Host {meta['host']}, kernel {meta['kernel']}, {meta['cpus']} CPUs (load {result['load_1min']:.1f} at the start), "
        f"Python {meta['python']}, pyroute2 {meta['pyroute2']}.",
        f"`bench/wire.py --links {args.links} --rounds {args.rounds} --repeats {args.repeats}`.",
        "",
        "## Deploy (s)",
        "",
        "| what | n | p50 | min | max |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["deploy"].items():
        lines.append(
            f"| {name} | {row['n']} | {row['p50_ms'] / 1e3:.3f} | {row['min_ms'] / 1e3:.3f} | {row['max_ms'] / 1e3:.3f} |"
        )
    lines += ["", "## The far end's cut on host B, warmed (ms)", "", "| what | n | p50 | p99 | max |", "|---|---|---|---|---|"]
    for name, row in result["cut"].items():
        lines.append(f"| {name} | {row['n']} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {row['max_ms']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

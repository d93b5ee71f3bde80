#!/usr/bin/env python3
"""Automatic placement (drills.hosts.placement, issue 13): time and cut against topology size.

    .venv/bin/python bench/placement.py [--sizes 1000,3000,5000] [--hosts 3,8] [--repeats 3]
        [--out bench/results/placement.json]

Topologies (written as scenarios with `hosts: {placement: auto}` and loaded by `load_scenario`,
so placement sees what `drill plan` gives it): *ring* of N nodes; *grid* of about N nodes (a
rectangle 8:5); *backbone*: N nodes, each joined to a random earlier node among the 20 before it
plus a chord every third node (seed 3: a sparse, local, mesh-like graph). Inventories of 3 and 8
hosts. Timed (`time.perf_counter`, min and median of `--repeats`): `place()` alone. Compared by
cut (links that cross hosts, the tunnels a drill needs): drills' placement, the file order cut
into equal chunks, and a random balanced placement (seed 1). Needs no root.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from drills.hosts.inventory import load_inventory
from drills.hosts.placement import place
from drills.scenario import load_scenario
from drills.scenario.resolved import Topology


def _graph(kind: str, size: int) -> tuple[int, list[tuple[int, int]]]:
    if kind == "ring":
        return size, [(i, (i + 1) % size) for i in range(size)]
    if kind == "grid":
        width = max(2, round((size * 8 / 5) ** 0.5))
        height = max(2, size // width)
        edges = [(x * height + y, (x + 1) * height + y) for x in range(width - 1) for y in range(height)]
        edges += [(x * height + y, x * height + y + 1) for x in range(width) for y in range(height - 1)]
        return width * height, edges
    rnd = random.Random(3)
    edges = [(i, rnd.randrange(max(0, i - 20), i)) for i in range(1, size)]
    edges += [(i, i + 2) for i in range(0, size - 2, 3)]
    return size, edges


def _scenario(directory: Path, nodes: int, edges: list[tuple[int, int]], hosts: int) -> Path:
    (directory / "hosts.ini").write_text("".join(f"h{i} ansible_host=192.0.2.{i + 1}\n" for i in range(hosts)))
    port = [0] * nodes
    lines = ["version: 1", "name: placement-bench", "hosts: {inventory: hosts.ini, placement: auto}", "topology:"]
    lines += ["  addressing: {ipv4: 10.0.0.0/8, loopbacks: 11.0.0.0/16}", "  nodes:"]
    lines += [f"    n{i}: {{}}" for i in range(nodes)]
    lines.append("  links:")
    for a, b in edges:
        lines.append(f"    - {{endpoints: [n{a}:e{port[a]}, n{b}:e{port[b]}]}}")
        port[a] += 1
        port[b] += 1
    path = directory / f"s-{nodes}-{hosts}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cut(topology: Topology, host_of: dict[str, str]) -> int:
    return sum(1 for link in topology.links if host_of[link.a.node] != host_of[link.b.node])


def _chunks(topology: Topology, hosts: int) -> dict[str, str]:
    size = len(topology.nodes)
    return {node.name: f"h{i * hosts // size}" for i, node in enumerate(topology.nodes)}


def _random(topology: Topology, hosts: int) -> dict[str, str]:
    chunks = list(_chunks(topology, hosts).values())
    random.Random(1).shuffle(chunks)
    return {node.name: chunks[i] for i, node in enumerate(topology.nodes)}


def measure(kind: str, size: int, hosts: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        nodes, edges = _graph(kind, size)
        path = _scenario(Path(tmp), nodes, edges, hosts)
        scenario = load_scenario(path)
        inventory = load_inventory(Path(tmp) / "hosts.ini")
    assert scenario.hosts is not None
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        placement = place(scenario.topology, inventory, scenario.hosts)
        times.append(time.perf_counter() - start)
    counts = [len(placement.nodes_on(f"h{i}")) for i in range(hosts)]
    return {
        "kind": kind,
        "nodes": nodes,
        "links": len(edges),
        "hosts": hosts,
        "place_s_min": min(times),
        "place_s_median": statistics.median(times),
        "cut": _cut(scenario.topology, dict(placement.host_of)),
        "cut_file_order": _cut(scenario.topology, _chunks(scenario.topology, hosts)),
        "cut_random": _cut(scenario.topology, _random(scenario.topology, hosts)),
        "nodes_per_host": f"{min(counts)}-{max(counts)}",
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "# Automatic placement: time and cross-host links",
        "",
        "`place()` alone (min / median), and the cut (links crossing hosts) of drills' placement beside the file",
        "order in equal chunks and a random balanced placement. `.venv/bin/python bench/placement.py`.",
        "",
        "| topology | nodes | links | hosts | place (min / median) | cut | file order | random | nodes per host |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['kind']} | {r['nodes']} | {r['links']} | {r['hosts']} | "
            f"{r['place_s_min'] * 1000:.1f} / {r['place_s_median'] * 1000:.1f} ms | {r['cut']} | "
            f"{r['cut_file_order']} | {r['cut_random']} | {r['nodes_per_host']} |"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,5000")
    parser.add_argument("--hosts", default="3,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "placement.json")
    args = parser.parse_args()
    rows = [
        measure(kind, int(size), int(hosts), args.repeats)
        for kind in ("ring", "grid", "backbone")
        for size in args.sizes.split(",")
        for hosts in args.hosts.split(",")
    ]
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    text = markdown(rows)
    args.out.with_suffix(".md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

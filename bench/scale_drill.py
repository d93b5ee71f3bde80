#!/usr/bin/env python3
"""A whole drill at scale: 100 probes on a 500-node imported topology, the senders' lateness.

    sudo .venv/bin/python bench/scale_drill.py [--nodes 500] [--probes 100] [--rates 10,50,100]
                                               [--seed 7] [--out bench/results/scale-drill.json]

The topology is imported as a team would import theirs: a GraphML file in the Topology Zoo's
schema (nodes with `label`, `Latitude`, `Longitude`; written here, seeded: `--nodes` sites at
random across Japan's and Australia's latitudes, each joined to its two nearest neighbours and
the graph made connected along a nearest-site chain), turned into a topology file by
`drill import zoo`'s own code (drills.zoo.importer.import_zoo), then included by a scenario with
`routing: static-shortest-path` (every node routed to every other, installed by deploy in
batches). The links' derived delays are then dropped: this kernel has no sch_netem, and 750
userspace relays would measure the relays, not the senders; on a netem kernel the delays are
qdiscs and cost the senders nothing.

For each rate: `--probes` udp-stream probes between seeded random pairs of nodes, each at the
rate (packets/s), one `link-down` of a seeded random link for 5 s at T+5 s, 15 s in all, run by
drills.lifecycle.run (the `drill run` path). Recorded: deploy and teardown time (the run's own
log lines), routes installed, the senders' lateness (actual send instant − scheduled, every
packet of every probe) p50 / p99 / max, the worst probe's p99, whether the drill passed.

Writes JSON (`--out`), Markdown and each drill's timed log (`-RATE.log`) beside it; prints the
Markdown. Run as root, alone (2 CPUs):
the lateness is the point.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import yaml

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR] + [str(BENCH_DIR)]

import common  # noqa: E402

from drills.lifecycle import run as run_drill  # noqa: E402
from drills.scenario import load_scenario  # noqa: E402
from drills.zoo.importer import import_zoo  # noqa: E402

TARGET_P99_MS = 2.0


def graphml(nodes: int, seed: int) -> str:
    """A Zoo-style GraphML graph of `nodes` sites (seeded), connected, mean degree about 3."""
    rng = random.Random(seed)
    # Japan (lat 31..43, lon 130..145) and Australia (lat -38..-12, lon 115..153), half each.
    sites = [
        (rng.uniform(31, 43), rng.uniform(130, 145)) if i % 2 == 0 else (rng.uniform(-38, -12), rng.uniform(115, 153))
        for i in range(nodes)
    ]

    def distance(a: int, b: int) -> float:
        (la1, lo1), (la2, lo2) = sites[a], sites[b]
        return math.hypot(la1 - la2, (lo1 - lo2) * math.cos(math.radians((la1 + la2) / 2)))

    edges: set[tuple[int, int]] = set()
    for a in range(nodes):
        for b in sorted((b for b in range(nodes) if b != a), key=lambda b: distance(a, b))[:2]:
            edges.add((min(a, b), max(a, b)))
    # Connected: a chain through the sites in a seeded order joins every component.
    order = list(range(nodes))
    rng.shuffle(order)
    parent = list(range(nodes))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    for a, b in itertools.pairwise(order):
        if find(a) != find(b):
            parent[find(a)] = find(b)
            edges.add((min(a, b), max(a, b)))
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">',
        '  <key attr.name="label" attr.type="string" for="node" id="d0"/>',
        '  <key attr.name="Latitude" attr.type="double" for="node" id="d1"/>',
        '  <key attr.name="Longitude" attr.type="double" for="node" id="d2"/>',
        '  <key attr.name="label" attr.type="string" for="graph" id="d3"/>',
        '  <graph edgedefault="undirected">',
        f"    <data key=\"d3\">Synthetic{nodes}</data>",
    ]
    for i, (lat, lon) in enumerate(sites):
        lines.append(
            f'    <node id="{i}"><data key="d0">site{i:04d}</data>'
            f'<data key="d1">{lat:.4f}</data><data key="d2">{lon:.4f}</data></node>'
        )
    for a, b in sorted(edges):
        lines.append(f"    <edge source={quoteattr(str(a))} target={quoteattr(str(b))}/>")
    lines += ["  </graph>", "</graphml>"]
    return "\n".join(lines) + "\n"


def random_pairs(names: list[str], probes: int, seed: int, rng: random.Random | None = None) -> list[list[str]]:
    rng = rng or random.Random(seed)
    return [rng.sample(names, 2) for _ in range(probes)]


def scenario(topology_file: str, names: list[str], links: list[str], probes: int, rate_pps: int, seed: int) -> str:
    rng = random.Random(seed)
    pairs = random_pairs(names, probes, seed, rng)
    cut = rng.choice(links)
    probe_lines = "\n".join(
        f"  - {{name: p{i:03d}, type: udp-stream, from: {a}, to: {b}, rate_pps: {rate_pps}}}"
        for i, (a, b) in enumerate(pairs)
    )
    return f"""\
version: 1
name: scale-drill-{rate_pps}
seed: {seed}
topology:
  include: [{topology_file}]
  routing: static-shortest-path
probes:
{probe_lines}
timeline:
  - {{id: cut, at: 5s, fault: link-down, link: {cut}, for: 5s}}
duration: 15s
"""


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine: user, nice, system, irq and softirq count as busy."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def mean_hops(data: dict[str, Any], pairs: list[list[str]]) -> float:
    """Mean shortest-path hop count of the probes' pairs (BFS over the links)."""
    neighbours: dict[str, list[str]] = {name: [] for name in data["nodes"]}
    for link in data["links"]:
        a, b = (end.split(":")[0] for end in link["endpoints"])
        neighbours[a].append(b)
        neighbours[b].append(a)
    total = 0
    for source, target in pairs:
        seen, frontier, hops = {source}, [source], 0
        while target not in seen:
            hops += 1
            frontier = [n for node in frontier for n in neighbours[node] if n not in seen]
            seen.update(frontier)
        total += hops
    return total / len(pairs)


def one(work: Path, state: Path, topology_file: Path, names: list[str], links: list[str], args: Any, rate: int) -> dict[str, Any]:
    path = work / f"scale-{rate}.yaml"
    path.write_text(scenario(topology_file.name, names, links, args.probes, rate, args.seed))
    lines: list[str] = []
    marks: dict[str, Any] = {}

    def log(message: str) -> None:
        lines.append(f"{time.monotonic() - started:8.3f} {message}")
        if "drill clock started" in message:
            marks["start"] = (cpu_jiffies(), os.times(), time.monotonic())
        elif " revert " in message:  # the drill's last event: 5 s of traffic after the start mark's 10 s
            marks["end"] = (cpu_jiffies(), os.times(), time.monotonic())

    started = time.monotonic()
    result = run_drill(path, state, log=log)
    wall_s = time.monotonic() - started
    ((busy0, total0), t0, w0), ((busy1, total1), t1, w1) = marks["start"], marks["end"]
    machine_busy = (busy1 - busy0) / max(1, total1 - total0)
    process_cpu = (t1.user + t1.system - t0.user - t0.system) / (w1 - w0)
    late = [x for record in result.records for x in getattr(record, "send_lateness_s", [])]
    per_probe = [quantile(list(r.send_lateness_s), 0.99) for r in result.records if getattr(r, "send_lateness_s", None)]
    (args.out.parent / f"{args.out.stem}-{rate}.log").write_text("\n".join(lines) + "\n")
    deploy = next((line for line in lines if " nodes and " in line and " up in " in line), "")
    return {
        "rate_pps": rate,
        "aggregate_pps": rate * args.probes,
        "packets": len(late),
        "lateness_p50_ms": round(quantile(late, 0.5) * 1e3, 3),
        "lateness_p99_ms": round(quantile(late, 0.99) * 1e3, 3),
        "lateness_max_ms": round(max(late) * 1e3, 3),
        "worst_probe_p99_ms": round(max(per_probe) * 1e3, 3),
        "machine_busy_pct": round(machine_busy * 100, 1),
        "drills_process_cpu_pct": round(process_cpu * 100, 1),
        "deploy_line": deploy.strip().split(" ", 1)[-1] if deploy else "",
        "wall_s": round(wall_s, 1),
        "passed": result.passed,
        "inconclusive": result.inconclusive,
    }


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        "# A drill at scale (`bench/scale_drill.py`)",
        "",
        f"{meta['date']} · kernel {meta['kernel']} · {meta['cpus']} CPUs · Python {meta['python']} · "
        f"load average at start {meta['load_at_start']}",
        "",
        f"Topology: {results['nodes']} nodes, {results['links']} links, a seeded Zoo-schema GraphML imported by "
        f"`drill import zoo`'s code, `routing: static-shortest-path` ({results['routes']:,} routes); link delays "
        "dropped (no netem here: see the script). "
        f"{results['probes']} udp-stream probes between seeded random pairs; one link cut for 5 s; 15 s drills.",
        "",
        f"Probe paths: {results['mean_hops']:.1f} hops on average (each packet forwarded by the kernel at every hop, "
        "both ways). CPU from the clock's start to the revert (10 s): the whole machine's (all its CPUs, softirq "
        "forwarding included) and the drills process's (100 % = one CPU).",
        "",
        "| per probe | aggregate | packets | lateness p50 | p99 | max | worst probe's p99 | p99 < 2 ms | machine busy | drills CPU | deploy | wall | drill |",
        "|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---|---:|---|",
    ]
    for row in results["rows"]:
        verdict = "inconclusive" if row["inconclusive"] else ("passed" if row["passed"] else "failed")
        out.append(
            f"| {row['rate_pps']} /s | {row['aggregate_pps']} /s | {row['packets']} | {row['lateness_p50_ms']} ms | "
            f"{row['lateness_p99_ms']} ms | {row['lateness_max_ms']} ms | {row['worst_probe_p99_ms']} ms | "
            f"{'yes' if row['lateness_p99_ms'] < TARGET_P99_MS else 'no'} | {row['machine_busy_pct']} % | "
            f"{row['drills_process_cpu_pct']} % | {row['deploy_line']} | {row['wall_s']} s | {verdict} |"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--rates", default="10,50,100")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "scale-drill.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="drills-scale-drill-"))
    state = work / "state"
    state.mkdir()
    rows: list[dict[str, Any]] = []
    with common.interruptible(lambda: common.clean_state(state, work)) as stop:
        graph = work / f"synthetic{args.nodes}.graphml"
        graph.write_text(graphml(args.nodes, args.seed))
        topology_file = work / "synthetic.yaml"
        import_zoo(graph, topology_file)
        data = yaml.safe_load(topology_file.read_text())
        for link in data["links"]:
            link.pop("delay", None)
            link.pop("rate", None)
        topology_file.write_text(yaml.safe_dump(data, sort_keys=False))
        names, links = list(data["nodes"]), [link["name"] for link in data["links"]]
        load = [round(x, 2) for x in os.getloadavg()]
        probe = work / "count.yaml"
        probe.write_text(scenario(topology_file.name, names, links, 1, 10, args.seed))
        routes = sum(len(node.routes) for node in load_scenario(probe).topology.nodes)
        for rate in (int(r) for r in args.rates.split(",")):
            rows.append(one(work, state, topology_file, names, links, args, rate))
            print(json.dumps(rows[-1]), flush=True)
    if stop.interrupted:
        return 130
    results = {
        "meta": {**common.host_meta(), "load_at_start": load},
        "nodes": len(names),
        "links": len(links),
        "routes": routes,
        "probes": args.probes,
        "mean_hops": mean_hops(data, random_pairs(names, args.probes, args.seed)),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 1 if stop.left else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Automatic routing (`routing: static-shortest-path`): resolve time and route counts by size.

    .venv/bin/python bench/routing.py [--nodes 500,1000,3000] [--seed 17] [--budget-s 900]
        [--out bench/results/routing.json]

Topology, written to a temporary directory: N nodes `r0..r{N-1}`, a random spanning tree (each
node i > 0 joined to a random earlier one) plus N/2 random chords (mean degree 3, the sparse
mesh of a backbone), each link given one of 20 profiles `d1..d20` (one-way delay 1..20 ms, drawn
at random) so that costs differ as an imported topology's do; seeded (`--seed`).

Timed once per size (`time.perf_counter`, in process): *load* (`load_scenario` of the file with
`routing: static-shortest-path`), *load without* (the same file without `routing:`), and the
parts of the computation on the resolved topology: *graph* (`routing.Graph.of`), *dijkstra*
(`routing.distances_to`: N Dijkstras), *routes* (`routing.static_routes` whole: the above plus
the next-hop scan and the Route records). Route counts: total, per node (mean, max), and how
many destinations have a backup (coverage: a node with a backup to a destination fails over
when carrier is lost on its primary link). Peak memory: the process's maximum resident set
(ru_maxrss) after each size (sizes run in increasing order, so each figure bounds that size).

A size whose load took longer than `--budget-s` ends the series (larger sizes are skipped).

`--install-routes N` (root): the deploy side. Two namespaces `drills-bench-rt-PID-a/b` joined by
a veth, and N /32 routes installed in one, side by side, two rounds alternating, flushed
between: as deploy does (drills.netns.batch.install_routes: 256 requests a datagram), as the
fault engine re-installs them after a link's revert (rtnl.RawLinks.replace_routes, batched
alike), through pyroute2 one request each (the path deploy used before), and by `ip -batch`
(iproute2); each timed, the count checked; the namespaces are deleted afterwards.

Writes JSON (`--out`) and Markdown (same name, `.md`) and prints the Markdown. Needs no root
without `--install-routes`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))  # bench/ is not a package: for common

import common  # noqa: E402

from drills.scenario import load_scenario, routing  # noqa: E402

PROFILES = 20


def _topology(nodes: int, seed: int, routed: bool) -> str:
    rng = random.Random(seed)
    edges: set[tuple[int, int]] = {(rng.randrange(i), i) for i in range(1, nodes)}
    while len(edges) < nodes - 1 + nodes // 2:
        a, b = sorted(rng.sample(range(nodes), 2))
        edges.add((a, b))
    lines = ["version: 1", "name: routing-bench", "profiles:"]
    lines += [f"  d{k}: {{delay: {k}ms}}" for k in range(1, PROFILES + 1)]
    lines += ["topology:", "  addressing: {ipv4: 10.0.0.0/8, loopbacks: 172.16.0.0/12}"]
    if routed:
        lines.append("  routing: static-shortest-path")
    lines.append("  nodes:")
    lines += [f"    r{i}: {{}}" for i in range(nodes)]
    lines.append("  links:")
    for a, b in sorted(edges):
        lines.append(f"    - {{endpoints: [r{a}:t{b}, r{b}:t{a}], profile: d{rng.randint(1, PROFILES)}}}")
    lines.append("duration: 5s")
    return "\n".join(lines) + "\n"


def _size(nodes: int, seed: int, work: Path) -> dict[str, Any]:
    plain, routed = work / f"plain-{nodes}.yaml", work / f"routed-{nodes}.yaml"
    plain.write_text(_topology(nodes, seed, routed=False))
    routed.write_text(_topology(nodes, seed, routed=True))
    started = time.perf_counter()
    base = load_scenario(plain)
    load_without_s = time.perf_counter() - started
    topology = base.topology
    # The parts first, on the topology without routes: with 18 million routes alive, the cyclic
    # collector's passes would be timed with them.
    started = time.perf_counter()
    graph = routing.Graph.of(topology)
    graph_s = time.perf_counter() - started
    started = time.perf_counter()
    routing.distances_to(graph)
    dijkstra_s = time.perf_counter() - started
    started = time.perf_counter()
    routing.static_routes(topology)
    routes_s = time.perf_counter() - started
    started = time.perf_counter()
    scenario = load_scenario(routed)
    load_s = time.perf_counter() - started
    counts = [len(node.routes) for node in scenario.topology.nodes]
    destinations = with_backup = 0
    for node in scenario.topology.nodes:
        per: dict[Any, int] = {}
        for route in node.routes:
            per[route.destination] = per.get(route.destination, 0) + 1
        destinations += len(per)
        with_backup += sum(1 for n in per.values() if n > 1)
    del scenario
    return {
        "nodes": nodes,
        "links": len(topology.links),
        "load_s": round(load_s, 3),
        "load_without_routing_s": round(load_without_s, 3),
        "graph_s": round(graph_s, 3),
        "dijkstra_s": round(dijkstra_s, 3),
        "routes_s": round(routes_s, 3),
        "routes_total": sum(counts),
        "routes_per_node_mean": round(sum(counts) / len(counts), 1),
        "routes_per_node_max": max(counts),
        "backup_coverage_pct": round(100 * with_backup / destinations, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


INSTALL_METHODS = ("deploy (batched)", "fault engine re-install (batched)", "pyroute2, one request each", "ip -batch")


def _install(count: int, repeats: int = 2) -> dict[str, Any]:
    """Install `count` routes in a fresh namespace by each method in turn (`repeats` rounds,
    alternating), flushing them between; time each."""
    import subprocess
    from ipaddress import IPv4Address, IPv4Interface, IPv4Network

    from drills.netns import backend, batch, kernel, rtnl
    from drills.scenario.resolved import Interface, Node, Route

    names = (f"drills-bench-rt-{os.getpid()}-a", f"drills-bench-rt-{os.getpid()}-b")
    kernel.require_root()
    kernel.create_namespaces(names, ())
    try:
        root = kernel.root_netlink()
        try:
            kernel.add_veth(root, names[0], "v", names[1], "v")
        finally:
            root.close()
        for name, address in zip(names, ("10.255.0.1/30", "10.255.0.2/30"), strict=True):
            def setup(_name: str, ipr: Any, address: str = address) -> None:
                kernel.add_address(ipr, "v", IPv4Interface(address))
                kernel.set_link(ipr, "v", up=True)
            kernel.in_each_namespace([name], setup)
        gateway = IPv4Address("10.255.0.2")
        base = int(IPv4Address("172.16.0.0"))
        routes = tuple(Route(IPv4Network((base + i, 32)), gateway, "v", 100 + i % 7, None) for i in range(count))
        node = Node("a", "netns", None, (Interface("a", "v", IPv4Interface("10.255.0.1/30"), None, None),), routes, (), ())
        script = "".join(f"route replace {r.destination} via {gateway} dev v metric {r.metric} proto static\n" for r in routes)
        elapsed: dict[str, list[float]] = {method: [] for method in INSTALL_METHODS}

        def installed() -> int:
            out = subprocess.run(["ip", "-4", "route", "show", "proto", "static"], capture_output=True, text=True, check=True)
            return out.stdout.count("\n")

        def one(method: str, ipr: Any) -> None:
            index = kernel.link_index(ipr, "v")
            subprocess.run(["ip", "-4", "route", "flush", "proto", "static"], check=True)
            started = time.perf_counter()
            if method == INSTALL_METHODS[0]:
                sock = batch.open_socket()
                try:
                    batch.install_routes(routes, sock, lambda _ifname: index)
                finally:
                    sock.close()
            elif method == INSTALL_METHODS[1]:
                links = rtnl.RawLinks(rtnl.RawLinks.new_socket())
                try:
                    links.replace_routes([rtnl.RouteSpec(r.destination, r.gateway, index, r.metric) for r in routes])
                finally:
                    links.close()
            elif method == INSTALL_METHODS[2]:
                backend.install_routes(node, ipr, lambda _ifname: index)
            else:
                subprocess.run(["ip", "-batch", "-"], input=script, text=True, check=True)
            elapsed[method].append(time.perf_counter() - started)
            assert installed() == count, method

        for _ in range(repeats):
            for method in INSTALL_METHODS:
                kernel.in_each_namespace([names[0]], lambda _name, ipr, method=method: one(method, ipr))
    finally:
        for name in names:
            kernel.delete_namespace(name)
    return {
        "routes": count,
        "methods": {
            method: {"seconds": [round(x, 3) for x in times], "routes_per_s": round(count / min(times))}
            for method, times in elapsed.items()
        },
    }


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Automatic routing: resolve time and route counts",
        "",
        f"Random connected graphs (spanning tree + N/2 chords, mean degree 3, delays 1-20 ms), seed {result['seed']}; "
        "`python bench/routing.py`. Times in seconds, one run each.",
        "",
        "| nodes | links | load (routed) | load (no routing) | graph | N Dijkstras | static_routes | routes | per node (mean / max) | destinations with a backup | max RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["sizes"]:
        lines.append(
            f"| {row['nodes']} | {row['links']} | {row['load_s']} | {row['load_without_routing_s']} | {row['graph_s']} | "
            f"{row['dijkstra_s']} | {row['routes_s']} | {row['routes_total']:,} | {row['routes_per_node_mean']} / "
            f"{row['routes_per_node_max']} | {row['backup_coverage_pct']} % | {row['max_rss_mib']} |"
        )
    install = result.get("install")
    if install:
        lines += [
            "",
            f"Deploy side: {install['routes']:,} routes installed in one namespace by each method in turn (same "
            "process, alternating, flushed between; best of the rounds):",
            "",
            "| method | seconds (each round) | routes/s |",
            "|---|---|---:|",
        ]
        for method, row in install["methods"].items():
            lines.append(f"| {method} | {', '.join(map(str, row['seconds']))} | {row['routes_per_s']:,} |")
    if result["skipped"]:
        lines += ["", f"Skipped (a smaller size exceeded the {result['budget_s']} s budget): {result['skipped']}"]
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="500,1000,3000")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--budget-s", type=float, default=900.0)
    parser.add_argument("--note", default="")
    parser.add_argument("--install-routes", type=int, default=0)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "routing.json")
    args = parser.parse_args()
    sizes = [int(n) for n in args.nodes.split(",")]
    result: dict[str, Any] = {"seed": args.seed, "budget_s": args.budget_s, "host": common.host_meta(), "sizes": [], "skipped": []}
    with tempfile.TemporaryDirectory(prefix="drills-routing-bench-") as work:
        for i, nodes in enumerate(sizes):
            row = _size(nodes, args.seed, Path(work))
            result["sizes"].append(row)
            print(json.dumps(row), file=sys.stderr)
            if row["load_s"] > args.budget_s:
                result["skipped"] = sizes[i + 1 :]
                break
    result["note"] = args.note
    if args.install_routes:
        result["install"] = _install(args.install_routes)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    text = _markdown(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Container testbeds: deploy/teardown time, and link-down apply latency on containers.

    .venv/bin/python bench/docker.py [--sizes 10,50] [--repeats 3] [--cycles 100] [--out bench/results/docker.json]

(a) deploy and teardown: a chain of N container nodes (drills-node image, links
    c{i}:east <-> c{i+1}:west, automatic addressing) deployed with the Docker backend and torn
    down from the journal, `--repeats` times per size, alternating with the same chain of
    namespace nodes (the namespace backend) in the same run.
(b) link-down apply latency on a 10-node chain, `--cycles` apply/revert cycles on random links
    (seeded), methods alternating cycle by cycle:
    * drills on container nodes: the `link-down` fault (struct-built rtnetlink through the
      container's namespace bound at /run/netns, read-back of both ends), handles warmed first;
    * drills on namespace nodes: the same fault on the namespace chain (deployed beside it);
    * docker exec: `docker exec C ip link set dev IF down|up` for both ends, then
      `docker exec C ip -o link show IF` for both ends (the same two changes and read-backs),
      through the docker CLI as a script would.
    Timed from the call to the confirmed state on both ends (ms).

Results: JSON (`--out`) and Markdown beside it (`.md`), printed. Everything is removed at the end,
also on Ctrl-C or SIGTERM. Needs root, a running dockerd and the drills-node image
(`./dev docker-setup`). Never touches /var/lib/drills.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

# This file is called docker.py, and Python puts its directory first on sys.path, where it would
# shadow the Docker SDK: import the SDK with that entry removed, then put it back for `common`.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
import docker  # noqa: E402, F401

sys.path.insert(0, str(HERE))
import common  # noqa: E402

from drills import backends, lifecycle  # noqa: E402
from drills.clock import SystemClock  # noqa: E402
from drills.docker.api import Docker  # noqa: E402
from drills.engine.faults import FaultContext  # noqa: E402
from drills.runs import RunStore  # noqa: E402
from drills.scenario.loader import load_scenario  # noqa: E402

IMAGE = "drills-node:latest"


def chain(directory: Path, count: int, container: bool) -> Path:
    node = {"kind": "container", "image": IMAGE} if container else {}
    nodes = {f"c{i}": dict(node) for i in range(count)}
    links = [{"name": f"l{i}", "endpoints": [f"c{i}:east", f"c{i + 1}:west"]} for i in range(count - 1)]
    kind = "containers" if container else "namespaces"
    path = directory / f"chain-{kind}-{count}.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": f"chain-{kind}-{count}", "topology": {"nodes": nodes, "links": links}}))
    return path


def deploy_once(path: Path, state: Path) -> tuple[float, float]:
    scenario = load_scenario(path)
    backend = backends.for_topology(scenario.topology, lambda _m: None)
    run = RunStore(state).create(scenario.name, path)
    started = time.perf_counter()
    try:
        backend.deploy(scenario.topology, run)
        deployed = time.perf_counter()
    finally:
        torn = time.perf_counter()
        report = backend.teardown(run)
        ended = time.perf_counter()
        if report.clean:
            run.remove()
        else:
            raise RuntimeError(f"teardown left {report.left}")
    return deployed - started, ended - torn


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "min": ordered[0],
        "max": ordered[-1],
    }


def exec_ip(container: str, *args: str) -> str:
    return subprocess.run(["docker", "exec", container, "ip", *args], check=True, capture_output=True, text=True, timeout=30).stdout


def bench_apply(directory: Path, state: Path, cycles: int, seed: int) -> dict[str, list[float]]:
    up_c = lifecycle.up(chain(directory, 10, True), state)
    up_n = lifecycle.up(chain(directory, 10, False), state)
    samples: dict[str, list[float]] = {"drills-containers": [], "drills-namespaces": [], "docker-exec": []}
    contexts = {}
    try:
        for key, up in (("drills-containers", up_c), ("drills-namespaces", up_n)):
            ops = common.node_ops(up.topology, dict(up.meta.nodes), RunStore(state).get(up.meta.run_id))
            contexts[key] = (FaultContext(ops, SystemClock(), lambda _m: None, random.Random(seed)), up)
        rng = random.Random(seed)
        methods = list(samples)
        for cycle in range(cycles):
            link_name = f"l{rng.randrange(9)}"
            for method in methods[cycle % 3 :] + methods[: cycle % 3]:
                if method == "docker-exec":
                    link = up_c.topology.links[int(link_name[1:])]
                    for up_state in ("down", "up"):
                        t = time.perf_counter()
                        for end in (link.a, link.b):
                            exec_ip(up_c.meta.nodes[end.node], "link", "set", "dev", end.name, up_state)
                        shown = [exec_ip(up_c.meta.nodes[end.node], "-o", "link", "show", end.name) for end in (link.a, link.b)]
                        samples[method].append((time.perf_counter() - t) * 1e3)
                        assert all(("NO-CARRIER" in s or "state DOWN" in s) == (up_state == "down") for s in shown), shown
                    continue
                ctx, up = contexts[method]
                fault = common.link_down(up.topology, up.topology.link(link_name))
                t = time.perf_counter()
                fault.apply(ctx)
                samples[method].append((time.perf_counter() - t) * 1e3)
                t = time.perf_counter()
                fault.revert(ctx)
                samples[method].append((time.perf_counter() - t) * 1e3)
    finally:
        for ctx, _up in contexts.values():
            ctx.handles.close()
        lifecycle.down(state, up_c.meta.run_id)
        lifecycle.down(state, up_n.meta.run_id)
    return samples


def render(result: dict[str, Any]) -> str:
    lines = [
        f"# Container testbeds ({result['meta']['date']}, {result['meta']['cpus']} CPUs, kernel {result['meta']['kernel']}, Docker {result['docker']})",
        "",
        "## Deploy and teardown of a chain (seconds, median [min–max])",
        "",
        "| nodes | containers deploy | containers teardown | per container | namespaces deploy | namespaces teardown |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["deploy"]:
        c, n = row["containers"], row["namespaces"]
        lines.append(
            f"| {row['nodes']} | {c['deploy']['p50']:.2f} [{c['deploy']['min']:.2f}–{c['deploy']['max']:.2f}] "
            f"| {c['teardown']['p50']:.2f} [{c['teardown']['min']:.2f}–{c['teardown']['max']:.2f}] "
            f"| {c['deploy']['p50'] / row['nodes'] * 1e3:.0f} ms | {n['deploy']['p50']:.3f} | {n['teardown']['p50']:.3f} |"
        )
    lines += ["", f"## link-down apply and revert, to confirmed on both ends ({result['cycles']} cycles; ms)", ""]
    lines += ["| method | p50 | p99 | max |", "|---|---:|---:|---:|"]
    for method, stats in result["apply"].items():
        lines.append(f"| {method} | {stats['p50']:.2f} | {stats['p99']:.2f} | {stats['max']:.2f} |")
    ratio = result["apply"]["docker-exec"]["p99"] / result["apply"]["drills-containers"]["p99"]
    lines += ["", f"docker exec ÷ drills on containers at p99: {ratio:.0f}×", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "docker.json")
    args = parser.parse_args()
    engine = Docker.connect()
    if not engine.image_exists(IMAGE):
        print(f"no image {IMAGE}: run ./dev docker-setup", file=sys.stderr)
        return 2
    version = engine._client.version()["Version"]
    tmp = Path(tempfile.mkdtemp(prefix="drills-bench-docker-"))
    state = tmp / "state"

    def cleanup() -> list[str]:
        return common.clean_state(state, tmp)

    result: dict[str, Any] = {"meta": common.host_meta(), "docker": version, "deploy": [], "cycles": args.cycles}
    with common.interruptible(cleanup) as stop:
        for size in (int(s) for s in args.sizes.split(",")):
            times: dict[str, dict[str, list[float]]] = {k: {"deploy": [], "teardown": []} for k in ("containers", "namespaces")}
            for _ in range(args.repeats):
                for kind, container in (("containers", True), ("namespaces", False)):
                    up_s, down_s = deploy_once(chain(tmp, size, container), state)
                    times[kind]["deploy"].append(up_s)
                    times[kind]["teardown"].append(down_s)
            row = {"nodes": size, **{k: {m: summary(v) for m, v in t.items()} for k, t in times.items()}}
            result["deploy"].append(row)
            print(f"{size} nodes: containers up {row['containers']['deploy']['p50']:.2f} s", flush=True)
        samples = bench_apply(tmp, state, args.cycles, args.seed)
        result["apply"] = {method: summary(values) for method, values in samples.items()}
    if stop.interrupted:
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    text = render(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0 if not stop.left else 5


if __name__ == "__main__":
    sys.exit(main())

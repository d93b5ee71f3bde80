#!/usr/bin/env python3
"""The resident agent (`drill agent`), started locally as the controller starts it over SSH:
what a node operation costs through its channel, how fast its dead-man switch clears a host,
how tight its clock offset is.

    .venv/bin/python bench/agent.py [--calls 2000] [--deadman 5] [--out bench/results/agent.json]

- `op link_state` round trip through the agent (AgentOps) against the same NetnsOps call made
  in this process on the same namespaces (the floor), and the `time` request (answered by the
  agent's reader thread, never queued); calls interleaved so load hits both alike;
- link down then up through the agent, each confirmed by reading link_state back until the
  kernel shows it (two round trips at least);
- the engine's link-down fault (both ends down, both ends read back; revert: up, routes
  re-installed) through the agent against the same fault in process, alternating (the issue's
  target: p99 <= 3 ms through an agent);
- the dead-man switch: a 2-node part deployed, both pipes closed, until its namespaces are gone
  and the agent has exited (`--deadman` repeats; silence adds its 2 s window on top);
- the clock offset: `estimate(client, rounds=16)` five times, offset and bound.

Run as root. State lives in a temporary directory, cleaned on exit (Ctrl-C and SIGTERM too).
Results: JSON (`--out`) and Markdown beside it (`.md`), printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from drills.backend import HostPart
from drills.clock import SystemClock
from drills.engine.fault import FaultContext
from drills.remote import codec
from drills.remote.agent_ops import AgentOps
from drills.remote.client import AgentClient
from drills.remote.frames import FrameReader, FrameWriter
from drills.remote.offset import estimate
from drills.runs import RunStore
from drills.scenario import load_scenario

AGENT = [sys.executable, "-m", "drills", "agent"]


def quantiles_ms(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50": pick(0.5), "p99": pick(0.99), "max": ordered[-1] * 1000, "n": len(ordered)}


def topology(work: Path) -> Any:
    path = work / "pair.yaml"
    path.write_text(
        json.dumps({"version": 1, "name": "pair", "topology": {"nodes": {"a": {}, "b": {}}, "links": [{"name": "ab", "endpoints": ["a:e1", "b:e1"]}]}})
    )
    return load_scenario(path).topology


def round_trips(state_dir: Path, work: Path, calls: int) -> dict[str, Any]:
    topo = topology(work)
    client = AgentClient("local", AGENT, lambda line: print(line, file=sys.stderr))
    try:
        client.call("hello", "be0001", "local", "run", str(state_dir))
        client.call("deploy", topo, HostPart("local", ("a", "b")), 1)
        remote = AgentOps(client)
        remote.warm()
        namespaces = {n: f"drill-be0001-{n}" for n in ("a", "b")}
        local = common.node_ops(topo, namespaces, RunStore(state_dir).get("be0001"))
        via_agent, in_process, clock_reads, toggles = [], [], [], []
        for _ in range(calls):
            started = time.perf_counter()
            remote.link_state("a", "e1")
            via_agent.append(time.perf_counter() - started)
            started = time.perf_counter()
            local.link_state("a", "e1")
            in_process.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.call("time")
            clock_reads.append(time.perf_counter() - started)
        for i in range(calls // 10):
            up = i % 2 == 1
            started = time.perf_counter()
            remote.set_link("a", "e1", up=up)
            while remote.link_state("a", "e1").admin_up != up:
                pass
            toggles.append(time.perf_counter() - started)
        # The link-down fault itself (both ends down, both ends' state read back), through the
        # agent and in process, alternating: the target is p99 <= 3 ms through an agent.
        fault = common.link_down(topo, topo.links[0])
        contexts = {
            "via agent": FaultContext(remote, SystemClock(), lambda _m: None, random.Random(1)),
            "in process": FaultContext(local, SystemClock(), lambda _m: None, random.Random(1)),
        }
        fault_times: dict[str, list[float]] = {f"link-down {verb} {where}": [] for verb in ("apply", "revert") for where in contexts}
        for _ in range(calls // 10):
            for where, ctx in contexts.items():
                started = time.perf_counter()
                fault.apply(ctx)
                fault_times[f"link-down apply {where}"].append(time.perf_counter() - started)
                started = time.perf_counter()
                fault.revert(ctx)
                fault_times[f"link-down revert {where}"].append(time.perf_counter() - started)
        offsets = [estimate(client, rounds=16) for _ in range(5)]
        local.close()
        report = client.call("teardown")
        assert report.clean, report.left
    finally:
        client.close()
    return {
        "link_state via agent": quantiles_ms(via_agent),
        "link_state in process (floor)": quantiles_ms(in_process),
        "time via agent": quantiles_ms(clock_reads),
        "set_link + read back until the kernel shows it, via agent": quantiles_ms(toggles),
        **{f"{name} (confirmed)": quantiles_ms(samples) for name, samples in fault_times.items()},
        "offsets": [{"offset_ms": o.offset_s * 1000, "bound_ms": o.bound_s * 1000} for o in offsets],
    }


def deadman(state_dir: Path, work: Path, repeats: int) -> dict[str, Any]:
    topo = topology(work)
    gone = []
    for i in range(repeats):
        run_id = f"be00{i + 10:02d}"
        proc = subprocess.Popen(AGENT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        assert proc.stdin and proc.stdout
        writer, reader = FrameWriter(proc.stdin.fileno()), FrameReader(proc.stdout.fileno())
        for ident, (method, args) in enumerate(
            [("hello", [run_id, "local", "run", str(state_dir)]), ("deploy", [topo, HostPart("local", ("a", "b")), 1])], 1
        ):
            writer.write({"id": ident, "method": method, "args": codec.encode(args), "kwargs": {}})
            answer = reader.read()
            assert answer is not None and "result" in answer, answer
        started = time.perf_counter()
        proc.stdin.close()
        proc.stdout.close()
        while any(n.startswith(f"drill-{run_id}-") for n in os.listdir("/run/netns")) and time.perf_counter() - started < 30:
            time.sleep(0.001)
        proc.wait(30)
        gone.append(time.perf_counter() - started)
    return {"pipes closed -> namespaces gone and agent exited": quantiles_ms(gone)}


def markdown(result: dict[str, Any]) -> str:
    meta = result["host"]
    lines = [
        f"# The agent's channel ({meta['date']}, {meta['cpus']} CPUs, kernel {meta['kernel']}, local agent process)",
        "",
        "| what | p50 ms | p99 ms | max ms | n |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, q in {**result["round_trips"], **result["deadman"]}.items():
        if isinstance(q, dict):
            lines.append(f"| {name} | {q['p50']:.3f} | {q['p99']:.3f} | {q['max']:.3f} | {q['n']} |")
    offsets = result["round_trips"]["offsets"]
    lines += [
        "",
        "Clock offset (16 rounds, minimum-rtt round kept), five estimates: "
        + ", ".join(f"{o['offset_ms']:+.4f} ms ± {o['bound_ms']:.4f}" for o in offsets)
        + " (one machine: the truth is 0).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--deadman", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "agent.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="drills-bench-agent-"))
    state_dir = work / "state"
    state_dir.mkdir(mode=0o700)
    with common.interruptible(lambda: common.clean_state(state_dir, work)) as stop:
        result = {
            "host": common.host_meta(),
            "round_trips": round_trips(state_dir, work, args.calls),
            "deadman": deadman(state_dir, work, args.deadman),
        }
        args.out.write_text(json.dumps(result, indent=2))
        args.out.with_suffix(".md").write_text(markdown(result))
        print(markdown(result))
    return 130 if stop.interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main())

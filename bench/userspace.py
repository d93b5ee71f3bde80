#!/usr/bin/env python3
"""The userspace link engine's speed: where it stops being accurate, what it adds, what it costs.

    .venv/bin/python bench/userspace.py [--engine userspace|kernel] [--links 4] [--out bench/results/userspace.json]

A testbed of `--links` node pairs (a_i <-> b_i, one link each, served by `--engine`) plus one
plain veth pair (never impaired: the reference) is deployed with the netns backend in a temporary
state directory. Traffic: paced, sequence-numbered UDP from a_i to b_i (64-byte payloads),
one-way delay from the sender's clock to the kernel's receive timestamp (SO_TIMESTAMPNS, same
host clock), every flow bounded in count and time. Measured:

(a) added latency at zero configured delay: median and p99 one-way delay of the engine's link
    against the veth pair, side by side, at 100 and 1000 packets/s;
(b) maximum packets/s of one link before the engine adds error: with `delay: 10ms` applied
    through `LinkDegrade` (the drill's path), offered rates rise step by step; a rate passes when
    loss <= 0.1 % and the median added delay is within 1 ms of 10 ms (the conformance bound);
(c) the same in aggregate, with every link loaded at once (threads, one flow per link);
(d) CPU per 1000 packets/s: the relay process's user+system time during a flow (userspace only;
    netem works in the kernel's softirq context, which this does not attribute).

`--engine kernel` runs the same on a kernel with netem (the VM lane) for netem's figures.
Results go to JSON (`--out`) and Markdown next to it; the Markdown is printed. Run as root.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from drills.engine.degrade import LinkDegrade
from drills.engine.faults import FaultContext, Handles
from drills.netns import kernel
from drills.netns.backend import NetnsBackend
from drills.runs import RunStore
from drills.scenario import load_scenario, model

PORT = 47_321
HEADER = struct.Struct("!IQ")
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("qq")
RATES_PPS = (1000, 2000, 5000, 10_000, 20_000, 40_000, 80_000)
STEP_S = 1.5  # traffic per rate step
TARGET_DELAY_S = 0.010
MAX_LOSS = 0.001
MAX_ERROR_S = 0.001


def topology_yaml(links: int, engine: str) -> str:
    nodes = "".join(f"    a{i}: {{loopback: none}}\n    b{i}: {{loopback: none}}\n" for i in range(links))
    edges = "".join(f"    - {{name: l{i}, endpoints: [a{i}:e0, b{i}:e0], engine: {engine}}}\n" for i in range(links))
    return (
        "version: 1\nname: bench-userspace\nseed: 9\ntopology:\n  nodes:\n"
        + nodes
        + "    va: {loopback: none}\n    vb: {loopback: none}\n  links:\n"
        + edges
        + "    - {name: veth, endpoints: [va:e0, vb:e0], engine: kernel}\n"
    )


def flow(ns_a: str, ip_a: str, ns_b: str, ip_b: str, rate_pps: float, seconds: float) -> dict[str, Any]:
    """Send for `seconds` at `rate_pps` (in 1 ms batches); delays of first arrivals, loss."""
    rx = kernel.run_in_namespace(ns_b, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    tx = kernel.run_in_namespace(ns_a, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sent: list[int] = []
    arrivals: dict[int, int] = {}
    stop = threading.Event()

    def receive() -> None:
        space = socket.CMSG_SPACE(TIMESPEC.size)
        while not stop.is_set():
            if not select.select([rx], [], [], 0.05)[0]:
                continue
            data, ancillary, _f, _a = rx.recvmsg(2048, space)
            seq = HEADER.unpack_from(data)[0]
            for _level, _kind, payload in ancillary:
                sec, nsec = TIMESPEC.unpack(payload[: TIMESPEC.size])
                arrivals.setdefault(seq, sec * 1_000_000_000 + nsec)

    try:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        rx.bind((ip_b, PORT))
        tx.bind((ip_a, 0))
        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        pad = b"\0" * (64 - HEADER.size)
        count = int(rate_pps * seconds)
        start = time.monotonic()
        seq = 0
        while seq < count and time.monotonic() < start + seconds * 3:
            due = int((time.monotonic() - start) * rate_pps) + 1
            while seq < min(due, count):
                now = time.time_ns()
                sent.append(now)
                tx.sendto(HEADER.pack(seq, now) + pad, (ip_b, PORT))
                seq += 1
            time.sleep(0.001)
        time.sleep(0.5)
        stop.set()
        thread.join(5)
    finally:
        stop.set()
        rx.close()
        tx.close()
    delays = sorted((at - sent[s]) / 1e9 for s, at in arrivals.items() if s < len(sent))
    return {
        "offered_pps": rate_pps,
        "sent": len(sent),
        "lost": len(sent) - len(delays),
        "median_s": statistics.median(delays) if delays else None,
        "p99_s": delays[int(0.99 * (len(delays) - 1))] if delays else None,
    }


class Bench:
    def __init__(self, engine: str, links: int, state: Path) -> None:
        path = state / "bench.yaml"
        path.write_text(topology_yaml(links, engine))
        self.scenario = load_scenario(path)
        self.backend = NetnsBackend(seed=9)
        self.run = RunStore(state).create(self.scenario.name, path)
        self.ns = {n.name: self.backend.namespace_of(self.run, n.name) for n in self.scenario.topology.nodes}
        self.handles = Handles(self.ns)
        self.ctx = FaultContext(self.scenario.topology, self.handles, self.ns, lambda _m: None, random.Random(9))
        self.engine = engine

    def ends(self, link: str) -> tuple[str, str, str, str]:
        li = next(x for x in self.scenario.topology.links if x.name == link)
        assert li.a.ipv4 is not None and li.b.ipv4 is not None
        return self.ns[li.a.node], str(li.a.ipv4.ip), self.ns[li.b.node], str(li.b.ipv4.ip)

    def degrade(self, link: str, **params: Any) -> LinkDegrade:
        step = model.Degrade.model_validate({"at": 0, "fault": "degrade", "link": link, "direction": "a-to-b", **params})
        fault = LinkDegrade.build(self.scenario.topology, step, {})
        fault.apply(self.ctx)
        return fault

    def cpu_s(self, link: str) -> float | None:
        relay = self.backend.relays.get(link)
        if relay is None:
            return None
        raw = Path(f"/proc/{relay.pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> list[str]:
        self.handles.close()
        report = self.backend.teardown(self.run)
        if report.clean:
            self.run.remove()
        return report.left


def measure(bench: Bench, links: int) -> dict[str, Any]:
    out: dict[str, Any] = {"engine": bench.engine, "links": links}
    # (a) zero configured delay, against the veth pair
    out["zero_delay"] = [
        {"rate_pps": rate, "engine": flow(*bench.ends("l0"), rate, 2.0), "veth": flow(*bench.ends("veth"), rate, 2.0)}
        for rate in (100, 1000)
    ]
    out["apply"] = apply_latency(bench)
    base = {link: flow(*bench.ends(link), 1000, 1.0)["median_s"] for link in [f"l{i}" for i in range(links)]}
    faults = [bench.degrade(f"l{i}", delay="10ms") for i in range(links)]
    # (b) one link, rising rates
    single = []
    for rate in RATES_PPS:
        before = bench.cpu_s("l0")
        result = flow(*bench.ends("l0"), rate, STEP_S)
        after = bench.cpu_s("l0")
        result["added_median_s"] = (result["median_s"] or 0) - base["l0"]
        result["ok"] = _ok(result)
        if before is not None and after is not None:
            result["relay_cpu_s"] = after - before
            result["cpu_per_1000pps"] = (after - before) / STEP_S / (rate / 1000)
        single.append(result)
        print(f"one link {rate} pps: {_row(result)}", flush=True)
        if not result["ok"] and rate >= 5000:
            break
    out["single"] = single
    # (c) every link at once
    aggregate = []
    for rate in RATES_PPS:
        results: dict[str, dict[str, Any]] = {}

        def one(link: str, rate: int = rate, results: dict[str, dict[str, Any]] = results) -> None:
            results[link] = flow(*bench.ends(link), rate, STEP_S)

        threads = [threading.Thread(target=one, args=(f"l{i}",)) for i in range(links)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for link, r in results.items():
            r["added_median_s"] = (r["median_s"] or 0) - base[link]
            r["ok"] = _ok(r)
        row = {"per_link_pps": rate, "total_pps": rate * links, "ok": all(r["ok"] for r in results.values()), "links": results}
        aggregate.append(row)
        print(f"{links} links x {rate} pps: {'ok' if row['ok'] else 'ERROR'}", flush=True)
        if not row["ok"]:
            break
    out["aggregate"] = aggregate
    for fault in faults:
        fault.revert(bench.ctx)
    return out


def apply_latency(bench: Bench, repeats: int = 200) -> dict[str, Any]:
    """A degrade applied and reverted through the drill's path (`LinkDegrade`): the time from the
    call to the engine's confirmation (the relay's read-back, or the kernel's qdisc dump)."""
    step = model.Degrade.model_validate({"at": 0, "fault": "degrade", "link": "l0", "delay": "10ms", "loss": "1%"})
    fault = LinkDegrade.build(bench.scenario.topology, step, {})
    applied, reverted = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        fault.apply(bench.ctx)
        applied.append(time.perf_counter() - t)
        t = time.perf_counter()
        fault.revert(bench.ctx)
        reverted.append(time.perf_counter() - t)
    quantile = statistics.quantiles
    return {
        "repeats": repeats,
        "apply_p50_s": statistics.median(applied),
        "apply_p99_s": quantile(applied, n=100)[98],
        "revert_p50_s": statistics.median(reverted),
        "revert_p99_s": quantile(reverted, n=100)[98],
    }


def _ok(r: dict[str, Any]) -> bool:
    return r["lost"] <= MAX_LOSS * r["sent"] and abs(r["added_median_s"] - TARGET_DELAY_S) <= MAX_ERROR_S


def _row(r: dict[str, Any]) -> str:
    return f"lost {r['lost']}/{r['sent']}, added median {r['added_median_s'] * 1e3:.3f} ms, {'ok' if r['ok'] else 'ERROR'}"


def markdown(data: dict[str, Any]) -> str:
    m = data["measured"]
    lines = [f"# Userspace link engine ({m['engine']} engine, {m['links']} links)", "", f"Host: {data['host']}", ""]
    a = m["apply"]
    lines += [
        "## Apply latency of a degrade (call to confirmed read-back, both directions)",
        "",
        f"apply p50 {a['apply_p50_s'] * 1e3:.2f} ms, p99 {a['apply_p99_s'] * 1e3:.2f} ms; "
        f"revert p50 {a['revert_p50_s'] * 1e3:.2f} ms, p99 {a['revert_p99_s'] * 1e3:.2f} ms ({a['repeats']} each; "
        "a revert on the userspace engine also reconnects to the relay on the next apply)",
        "",
    ]
    lines += ["## Added latency at zero configured delay (one-way, vs a plain veth pair)", ""]
    lines += ["| packets/s | engine median | engine p99 | veth median | veth p99 | added (median) |", "|---|---|---|---|---|---|"]
    for z in m["zero_delay"]:
        e, v = z["engine"], z["veth"]
        lines.append(
            f"| {z['rate_pps']} | {e['median_s'] * 1e6:.0f} µs | {e['p99_s'] * 1e6:.0f} µs | {v['median_s'] * 1e6:.0f} µs | "
            f"{v['p99_s'] * 1e6:.0f} µs | {(e['median_s'] - v['median_s']) * 1e6:.0f} µs |"
        )
    lines += ["", "## One link, `delay: 10ms`, rising rate (ok: loss <= 0.1 %, median within 1 ms)", ""]
    lines += ["| offered packets/s | lost | added median | p99 | relay CPU per 1000 packets/s | verdict |", "|---|---|---|---|---|---|"]
    for r in m["single"]:
        cpu = f"{r['cpu_per_1000pps'] * 100:.1f} % of a core" if "cpu_per_1000pps" in r else "in-kernel"
        p99 = f"{(r['p99_s'] or 0) * 1e3:.2f} ms"
        lines.append(f"| {r['offered_pps']} | {r['lost']}/{r['sent']} | {r['added_median_s'] * 1e3:.3f} ms | {p99} | {cpu} | {'ok' if r['ok'] else 'ERROR'} |")
    best = max((r["offered_pps"] for r in m["single"] if r["ok"]), default=0)
    total = max((a["total_pps"] for a in m["aggregate"] if a["ok"]), default=0)
    lines += ["", f"**Maximum before error: {best} packets/s on one link; {total} packets/s in aggregate over {m['links']} links.**", ""]
    lines += ["## Aggregate (every link loaded at once)", ""]
    lines += ["| per link | total | lost (all links) | worst added median | verdict |", "|---|---|---|---|---|"]
    for a in m["aggregate"]:
        per = a["links"].values()
        lost = f"{sum(r['lost'] for r in per)}/{sum(r['sent'] for r in per)}"
        worst = max(abs(r["added_median_s"] - TARGET_DELAY_S) for r in per) + TARGET_DELAY_S
        lines.append(f"| {a['per_link_pps']} | {a['total_pps']} | {lost} | {worst * 1e3:.3f} ms | {'ok' if a['ok'] else 'ERROR'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("userspace", "kernel"), default="userspace")
    parser.add_argument("--links", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "userspace.json")
    args = parser.parse_args()
    kernel.require_root()
    with tempfile.TemporaryDirectory(prefix="drills-bench-us-") as tmp:
        bench = Bench(args.engine, args.links, Path(tmp))
        result: dict[str, Any] = {}
        with common.interruptible(bench.close) as state:
            bench.backend.deploy(bench.scenario.topology, bench.run)
            result = measure(bench, args.links)
        if state.interrupted:
            return 130
    data = {"host": common.host_meta(), "measured": result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2))
    text = markdown(data)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The userspace link engine's speed: where it stops being accurate, what it adds, what it costs.

    .venv/bin/python bench/userspace.py [--engine userspace|kernel ...] [--links 4] [--quick] [--out bench/results/userspace.json]

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
(d) CPU per 1000 packets/s, two ways: the relay process's user+system time during the flows of
    (b) (userspace only), and, for both engines, the whole machine's busy CPU time (/proc/stat:
    user, system, irq and softirq, where netem works) during a 1000 packets/s flow over the
    engine's link (10 ms delay) less the same flow over the veth pair, alternated three times
    (median of the differences): what the engine adds, whatever context it runs in.

`--engine` may be given more than once: the engines are measured one after the other in the same
process on the same machine, and the Markdown puts them side by side. netem's figures need a
kernel with sch_netem: `./dev vm-bench` runs `--engine kernel --engine userspace` in the VM lane's
kernel (under software emulation: compare the two engines there, not with the host's figures).
`--quick` (fewer rates, shorter steps) is the smoke test's setting; its figures are not results.
Results go to JSON (`--out`) and Markdown next to it; the Markdown is printed. Run as root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from drills.clock import SystemClock
from drills.engine.degrade import LinkDegrade
from drills.engine.faults import FaultContext
from drills.errors import DrillError
from drills.netns import kernel, tc
from drills.netns.backend import NetnsBackend
from drills.netns.handles import Handles
from drills.netns.ops import NetnsOps
from drills.netns.qdisc import HANDLE
from drills.runs import RunStore
from drills.scenario import load_scenario, model
from drills.scenario.resolved import Link
from drills.scenario.steps import DegradeStep, resolve_step

PORT = 47_321
HEADER = struct.Struct("!IQ")
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
TIMESPEC = struct.Struct("qq")


@dataclass(frozen=True)
class Settings:
    rates_pps: tuple[int, ...] = (1000, 2000, 5000, 10_000, 20_000, 40_000, 80_000)
    step_s: float = 1.5  # traffic per rate step
    zero_delay_s: float = 2.0  # traffic per zero-delay flow
    apply_repeats: int = 200
    cpu_flow_s: float = 3.0
    cpu_rounds: int = 3


QUICK = Settings(rates_pps=(500, 1000), step_s=0.5, zero_delay_s=0.5, apply_repeats=20, cpu_flow_s=0.5, cpu_rounds=1)
TARGET_DELAY_S = 0.010
MAX_LOSS = 0.001
MAX_ERROR_S = 0.001
NOT_OFFERED = "not offered"
DRAIN_S = 20.0  # longest a receiver keeps draining its backlog after the sender stopped


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
    """Send for `seconds` at `rate_pps` (in 1 ms batches); delays of first arrivals, loss, and
    whether the sender managed to offer the rate at all (`offered`: under emulation, or with many
    flows in one process, the Python sender is the limit before the engine is)."""
    rx = kernel.run_in_namespace(ns_b, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    tx = kernel.run_in_namespace(ns_a, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sent: list[int] = []
    arrivals: dict[int, int] = {}
    stop = threading.Event()

    def receive() -> None:
        space = socket.CMSG_SPACE(TIMESPEC.size)
        # After `stop`, drain what is queued (for at most DRAIN_S): a receiver thread held back
        # (GIL, slow CPU) must not count its own backlog as the engine's loss. Arrival times are
        # the kernel's receive timestamps, so a late read does not change a delay.
        drain_until: float | None = None
        while drain_until is None or time.monotonic() < drain_until:
            if not select.select([rx], [], [], 0.05)[0]:
                if stop.is_set():
                    break
                continue
            if drain_until is None and stop.is_set():
                drain_until = time.monotonic() + DRAIN_S
            data, ancillary, _f, _a = rx.recvmsg(2048, space)
            seq = HEADER.unpack_from(data)[0]
            for _level, _kind, payload in ancillary:
                sec, nsec = TIMESPEC.unpack(payload[: TIMESPEC.size])
                arrivals.setdefault(seq, sec * 1_000_000_000 + nsec)

    thread = threading.Thread(target=receive, daemon=True)
    count = int(rate_pps * seconds)
    try:
        # FORCE (root): past net.core.rmem_max, so a receiver thread that the GIL or a slow
        # (emulated) CPU holds back queues instead of dropping what the engine delivered
        rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        rx.bind((ip_b, PORT))
        tx.bind((ip_a, 0))
        thread.start()
        pad = b"\0" * (64 - HEADER.size)
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
        send_s = time.monotonic() - start
        time.sleep(0.5)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(DRAIN_S + 5)
        rx.close()
        tx.close()
    delays = sorted((at - sent[s]) / 1e9 for s, at in dict(arrivals).items() if s < len(sent))
    return {
        "offered_pps": rate_pps,
        "achieved_pps": len(sent) / send_s if send_s > 0 else 0.0,
        # the whole count sent within 10 % of the planned time: the rate was really offered
        "offered": len(sent) == count and send_s <= seconds * 1.1,
        "sent": len(sent),
        "lost": len(sent) - len(delays),
        "median_s": statistics.median(delays) if delays else None,
        "p99_s": delays[int(0.99 * (len(delays) - 1))] if delays else None,
    }


def flows_in_processes(flows: dict[str, tuple[str, str, str, str, float, float]]) -> dict[str, dict[str, Any]]:
    """Run `flow(*args)` for every entry at once, each in a forked process (bounded like every
    flow: count and time), and collect the results."""
    context = multiprocessing.get_context("fork")
    running = []
    for name, args in flows.items():
        receiver, sender = context.Pipe(duplex=False)

        def target(args: tuple[str, str, str, str, float, float] = args, sender: Any = sender) -> None:
            sender.send(flow(*args))

        process = context.Process(target=target, daemon=True)
        process.start()
        sender.close()
        running.append((name, process, receiver))
    results = {}
    for name, process, receiver in running:
        if receiver.poll(DRAIN_S + 60):
            results[name] = receiver.recv()
        process.join(10)
        if process.is_alive():
            process.kill()
        if name not in results:
            raise RuntimeError(f"the flow over {name} did not report (exit code {process.exitcode})")
    return results


class Bench:
    def __init__(self, engine: str, links: int, state: Path) -> None:
        path = state / "bench.yaml"
        path.write_text(topology_yaml(links, engine))
        self.scenario = load_scenario(path)
        self.backend = NetnsBackend(seed=9)
        self.run = RunStore(state).create(self.scenario.name, path)
        self.ns = {n.name: self.backend.namespace_of(self.run, n.name) for n in self.scenario.topology.nodes}
        self._ops: NetnsOps | None = None
        self._ctx: FaultContext | None = None
        self.engine = engine

    @property
    def ops(self) -> NetnsOps:
        """The deployed run's node operations (opened on first use: after deploy)."""
        if self._ops is None:
            ops = self.backend.ops(self.run, SystemClock())
            assert isinstance(ops, NetnsOps)
            self._ops = ops
        return self._ops

    @property
    def handles(self) -> Handles:
        return self.ops.handles

    @property
    def ctx(self) -> FaultContext:
        if self._ctx is None:
            self._ctx = FaultContext(self.ops, SystemClock(), lambda _m: None, random.Random(9))
        return self._ctx

    def degrade_fault(self, **params: Any) -> LinkDegrade:
        """The `degrade` fault of a step with `params`, resolved as the loader resolves it."""
        parsed = model.Degrade.model_validate({"at": 0, "fault": "degrade", **params})
        step = resolve_step(0, parsed, self.scenario.topology, {}, {})
        assert isinstance(step, DegradeStep)
        return LinkDegrade.from_step(step)

    def link(self, name: str) -> Link:
        return next(x for x in self.scenario.topology.links if x.name == name)

    def ends(self, link: str) -> tuple[str, str, str, str]:
        li = self.link(link)
        assert li.a.ipv4 is not None and li.b.ipv4 is not None
        return self.ns[li.a.node], str(li.a.ipv4.ip), self.ns[li.b.node], str(li.b.ipv4.ip)

    def degrade(self, link: str, **params: Any) -> LinkDegrade:
        fault = self.degrade_fault(link=link, direction="a-to-b", **params)
        fault.apply(self.ctx)
        return fault

    @contextlib.contextmanager
    def zero_netem(self, link: str) -> Iterator[None]:
        """A netem qdisc with every parameter zero on the a-end of `link` (drills' handle), read
        back, for the duration of the block."""
        li = self.link(link)
        control = tc.Tc(self.handles.raw(li.a.node))
        index = self.handles.index(li.a.node, li.a.name)
        control.replace(index, HANDLE, tc.TC_H_ROOT, tc.Netem(), f"zero netem on {li.a.endpoint}")
        if not any(q.kind == "netem" and q.handle == HANDLE for q in control.qdiscs(index)):
            raise RuntimeError(f"the zero netem on {li.a.endpoint} is not in the kernel")
        try:
            yield
        finally:
            control.delete(index, HANDLE, tc.TC_H_ROOT, f"zero netem on {li.a.endpoint}")

    def cpu_s(self, link: str) -> float | None:
        relay = self.backend.relays.get(link)
        if relay is None:
            return None
        raw = Path(f"/proc/{relay.pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> list[str]:
        if self._ops is not None:
            self._ops.close()
        report = self.backend.teardown(self.run)
        if report.clean:
            self.run.remove()
        return report.left


def measure(bench: Bench, links: int, settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"engine": bench.engine, "links": links}
    # (a) zero configured delay, against the veth pair. A kernel-engine link without impairment
    # has no qdisc at all; what netem costs at zero delay is measured with a netem qdisc of all
    # zeros on the sending end (the userspace engine's relay is always in the path).
    with bench.zero_netem("l0") if bench.engine == "kernel" else contextlib.nullcontext():
        out["zero_delay"] = [
            {
                "rate_pps": rate,
                "engine": flow(*bench.ends("l0"), rate, settings.zero_delay_s),
                "veth": flow(*bench.ends("veth"), rate, settings.zero_delay_s),
            }
            for rate in (100, 1000)
        ]
    out["apply"] = apply_latency(bench, settings.apply_repeats)
    base = {link: flow(*bench.ends(link), 1000, 1.0)["median_s"] for link in [f"l{i}" for i in range(links)]}
    faults = [bench.degrade(f"l{i}", delay="10ms") for i in range(links)]
    # (b) one link, rising rates
    single = []
    for rate in settings.rates_pps:
        before = bench.cpu_s("l0")
        result = flow(*bench.ends("l0"), rate, settings.step_s)
        after = bench.cpu_s("l0")
        _judge(result, base["l0"])
        if before is not None and after is not None:
            result["relay_cpu_s"] = after - before
            result["cpu_per_1000pps"] = (after - before) / settings.step_s / (rate / 1000)
        single.append(result)
        print(f"{bench.engine}: one link {rate} pps: {_row(result)}", flush=True)
        if result["verdict"] == NOT_OFFERED or (result["verdict"] != "ok" and rate >= 5000):
            break
    out["single"] = single
    # (c) every link at once: one process per flow, so that the senders do not share one GIL
    aggregate = []
    for rate in settings.rates_pps:
        results = flows_in_processes({f"l{i}": (*bench.ends(f"l{i}"), rate, settings.step_s) for i in range(links)})
        for link, r in results.items():
            _judge(r, base[link])
        verdicts = {r["verdict"] for r in results.values()}
        verdict = NOT_OFFERED if NOT_OFFERED in verdicts else "ERROR" if "ERROR" in verdicts else "ok"
        aggregate.append({"per_link_pps": rate, "total_pps": rate * links, "verdict": verdict, "links": results})
        print(f"{bench.engine}: {links} links x {rate} pps: {verdict}", flush=True)
        if verdict != "ok":
            break
    out["aggregate"] = aggregate
    # (d) the whole machine's CPU, engine link (10 ms delay) against the veth pair
    out["machine_cpu"] = machine_cpu(bench, settings)
    for fault in faults:
        fault.revert(bench.ctx)
    return out


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (every CPU: user, nice, system, irq, softirq,
    steal), from /proc/stat's first line."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def machine_cpu(bench: Bench, settings: Settings, rate_pps: int = 1000) -> dict[str, Any]:
    """Busy CPU during a flow over l0 less during the same flow over the veth pair (the traffic's
    own cost: sender, receiver, veth), alternated; per 1000 packets/s, median over the rounds."""
    added = []
    for _ in range(settings.cpu_rounds):
        spent = {}
        for link in ("l0", "veth"):
            before = busy_cpu_s()
            flow(*bench.ends(link), rate_pps, settings.cpu_flow_s)
            spent[link] = busy_cpu_s() - before
        added.append((spent["l0"] - spent["veth"]) / settings.cpu_flow_s / (rate_pps / 1000))
    return {"rate_pps": rate_pps, "flow_s": settings.cpu_flow_s, "rounds": added, "added_per_1000pps": statistics.median(added)}


def apply_latency(bench: Bench, repeats: int) -> dict[str, Any]:
    """A degrade applied and reverted through the drill's path (`LinkDegrade`): the time from the
    call to the engine's confirmation (the relay's read-back, or the kernel's qdisc dump)."""
    fault = bench.degrade_fault(link="l0", delay="10ms", loss="1%")
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


def _judge(r: dict[str, Any], base_median_s: float) -> None:
    """Add to a flow's result its added median delay (over the link's own, measured before the
    delay was applied) and its verdict: ok; ERROR (the engine lost or delayed too much); or
    NOT_OFFERED: the sender could not send at that rate, so the step says nothing about the engine."""
    r["added_median_s"] = (r["median_s"] or 0) - base_median_s
    ok = r["lost"] <= MAX_LOSS * r["sent"] and abs(r["added_median_s"] - TARGET_DELAY_S) <= MAX_ERROR_S
    r["verdict"] = NOT_OFFERED if not r["offered"] else "ok" if ok else "ERROR"


def _row(r: dict[str, Any]) -> str:
    return f"lost {r['lost']}/{r['sent']}, added median {r['added_median_s'] * 1e3:.3f} ms, {r['verdict']}"


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.3f} ms"


def _maxima(m: dict[str, Any]) -> tuple[str, str]:
    """Highest rate without error, on one link and in aggregate; "≥ N" when even the highest
    rate offered passed (the engine's limit is beyond what the benchmark offers)."""

    def highest(rows: list[dict[str, Any]], key: str) -> str:
        passed = [r[key] for r in rows if r["verdict"] == "ok"]
        if not passed and rows and rows[-1]["verdict"] == NOT_OFFERED:
            return f"not measured (the sender could not offer {rows[-1][key]})"
        if not passed:
            return "none (the lowest rate already failed)"
        if rows[-1]["verdict"] == NOT_OFFERED:
            return f"≥ {max(passed)} (the sender's limit)"
        return f"≥ {max(passed)}" if all(r["verdict"] == "ok" for r in rows) else f"{max(passed)}"

    return highest(m["single"], "offered_pps"), highest(m["aggregate"], "total_pps")


def comparison(runs: list[dict[str, Any]]) -> list[str]:
    """The engines side by side: the issue's figures, one column per engine."""
    names = [m["engine"] for m in runs]
    rows: list[tuple[str, list[str]]] = [
        ("degrade apply p50 / p99 (call to confirmed read-back)", [f"{m['apply']['apply_p50_s'] * 1e3:.2f} / {m['apply']['apply_p99_s'] * 1e3:.2f} ms" for m in runs]),
    ]
    for index, z in enumerate(runs[0]["zero_delay"]):
        rate = z["rate_pps"]
        rows.append(
            (
                f"added one-way latency at zero delay, median, {rate} packets/s",
                [f"{(m['zero_delay'][index]['engine']['median_s'] - m['zero_delay'][index]['veth']['median_s']) * 1e6:.0f} µs" for m in runs],
            )
        )
    rows.append(("maximum packets/s on one link before error (10 ms delay)", [f"{_maxima(m)[0]}" for m in runs]))
    rows.append((f"maximum packets/s in aggregate over {runs[0]['links']} links", [f"{_maxima(m)[1]}" for m in runs]))
    rows.append(
        (
            "machine CPU added per 1000 packets/s (against the veth pair)",
            [f"{m['machine_cpu']['added_per_1000pps'] * 100:.1f} % of a core" for m in runs],
        )
    )
    lines = ["## Side by side (same process, same machine, one engine after the other)", ""]
    lines += ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return [*lines, ""]


def engine_section(m: dict[str, Any]) -> list[str]:
    lines = [f"## {m['engine']} engine, {m['links']} links", ""]
    a = m["apply"]
    lines += [
        "### Apply latency of a degrade (call to confirmed read-back, both directions)",
        "",
        f"apply p50 {a['apply_p50_s'] * 1e3:.2f} ms, p99 {a['apply_p99_s'] * 1e3:.2f} ms; "
        f"revert p50 {a['revert_p50_s'] * 1e3:.2f} ms, p99 {a['revert_p99_s'] * 1e3:.2f} ms ({a['repeats']} each; "
        "a revert on the userspace engine also reconnects to the relay on the next apply)",
        "",
    ]
    lines += ["### Added latency at zero configured delay (one-way, vs a plain veth pair)", ""]
    lines += ["| packets/s | engine median | engine p99 | veth median | veth p99 | added (median) |", "|---|---|---|---|---|---|"]
    for z in m["zero_delay"]:
        e, v = z["engine"], z["veth"]
        lines.append(
            f"| {z['rate_pps']} | {e['median_s'] * 1e6:.0f} µs | {e['p99_s'] * 1e6:.0f} µs | {v['median_s'] * 1e6:.0f} µs | "
            f"{v['p99_s'] * 1e6:.0f} µs | {(e['median_s'] - v['median_s']) * 1e6:.0f} µs |"
        )
    lines += ["", "### One link, `delay: 10ms`, rising rate (ok: loss <= 0.1 %, median within 1 ms; not offered: the sender could not reach the rate)", ""]
    lines += ["| offered packets/s | sent at | lost | added median | p99 | relay CPU per 1000 packets/s | verdict |", "|---|---|---|---|---|---|---|"]
    for r in m["single"]:
        cpu = f"{r['cpu_per_1000pps'] * 100:.1f} % of a core" if "cpu_per_1000pps" in r else "in-kernel"
        lines.append(
            f"| {r['offered_pps']} | {r['achieved_pps']:.0f} | {r['lost']}/{r['sent']} | {_ms(r['added_median_s'])} | {_ms(r['p99_s'])} | {cpu} | {r['verdict']} |"
        )
    best, total = _maxima(m)
    lines += ["", f"**Maximum before error: {best} packets/s on one link; {total} packets/s in aggregate over {m['links']} links.**", ""]
    lines += ["### Aggregate (every link loaded at once)", ""]
    lines += ["| per link | total | lost (all links) | worst added median | verdict |", "|---|---|---|---|---|"]
    for row in m["aggregate"]:
        per = row["links"].values()
        lost = f"{sum(r['lost'] for r in per)}/{sum(r['sent'] for r in per)}"
        worst = max(abs(r["added_median_s"] - TARGET_DELAY_S) for r in per) + TARGET_DELAY_S
        lines.append(f"| {row['per_link_pps']} | {row['total_pps']} | {lost} | {_ms(worst)} | {row['verdict']} |")
    c = m["machine_cpu"]
    rounds = ", ".join(f"{x * 100:.1f} %" for x in c["rounds"])
    lines += [
        "",
        f"Machine CPU added by the engine at {c['rate_pps']} packets/s ({c['flow_s']} s flows, engine link against veth, "
        f"rounds: {rounds}): **{c['added_per_1000pps'] * 100:.1f} % of a core per 1000 packets/s**.",
        "",
    ]
    return lines


def markdown(data: dict[str, Any]) -> str:
    runs = data["runs"]
    engines = ", ".join(m["engine"] for m in runs)
    lines = [f"# Link engines: {engines}", "", f"Host: {data['host']}", ""]
    if data.get("quick"):
        lines += ["**`--quick` run (smoke test settings): these figures are not results.**", ""]
    if len(runs) > 1:
        lines += comparison(runs)
    for m in runs:
        lines += engine_section(m)
    return "\n".join(lines).rstrip("\n") + "\n"


def run_engine(engine: str, links: int, settings: Settings, state_dir: Path | None) -> tuple[dict[str, Any] | None, bool]:
    """Deploy, measure and tear down one engine's testbed; (figures, interrupted). The run's state
    lives in `state_dir`/ENGINE when given (tests watch it), else in a temporary directory."""
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="drills-bench-us-")))
        else:
            state = state_dir / engine
            state.mkdir(parents=True, exist_ok=True)
        bench = Bench(engine, links, state)
        result: dict[str, Any] | None = None
        with common.interruptible(bench.close) as guard:
            bench.backend.deploy(bench.scenario.topology, bench.run)
            result = measure(bench, links, settings)
        return result, guard.interrupted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("userspace", "kernel"), action="append", help="repeatable; default: userspace")
    parser.add_argument("--links", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="smoke-test settings: few, short steps (not results)")
    parser.add_argument("--state-dir", type=Path, help="keep run state in DIR/ENGINE (default: a temporary directory)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "userspace.json")
    args = parser.parse_args()
    kernel.require_root()
    engines = list(dict.fromkeys(args.engine or ["userspace"]))
    if "kernel" in engines:
        from drills import doctor

        if not doctor.capabilities()[doctor.NETEM]:
            print("this kernel has no sch_netem: the kernel engine's figures come from `./dev vm-bench`", file=sys.stderr)
            return 2
    settings = QUICK if args.quick else Settings()
    runs = []
    for engine in engines:
        try:
            result, interrupted = run_engine(engine, args.links, settings, args.state_dir)
        except DrillError as exc:
            print(f"{engine} engine: {exc}", file=sys.stderr)
            return 1
        if interrupted or result is None:
            return 130
        runs.append(result)
    data = {"host": common.host_meta(), "quick": args.quick, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2))
    text = markdown(data)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

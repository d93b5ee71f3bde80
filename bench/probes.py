#!/usr/bin/env python3
"""Probe engine: highest loss-free aggregate udp-stream rate, CPU cost at 1000 packets/s, and
resolution against `ping -i 0.2` on the same scripted outage.

    .venv/bin/python bench/probes.py [--seconds 3] [--outages 3] [--out bench/results/probes.json]

Testbed: a hub `a` and ten spokes `b0..b9` (one veth each, automatic addressing), brought up with
`lifecycle.up` in a temporary state directory. In one run:

(a) rate ramp: ten `UdpStream`s a -> b{i} (echoed back by b{i}), each at R packets/s for
    `--seconds`, R rising (aggregate 2,000 .. 80,000 packets/s), each step with every
    `--lanes` count of sender lanes per stream in turn (drills runs two; the order alternating). A step is *sustained* when
    every packet was echoed (loss 0; on an unimpaired testbed any loss is the engine's own) and
    the senders kept the offered rate (at least 99 % of R x seconds sent). The thread switch
    interval is the drill's (0.2 ms). Reported: per step the packets sent and lost, the rate
    achieved, the sender's lateness p50/p99; the highest sustained aggregate rate.
(b) CPU cost: one stream at 1000 packets/s for `--seconds` x 2, with each `--lanes` count in
    turn; process CPU time (user + system, every thread; the kernel's veth work done in the
    process's context included) over wall time, minus the idle process measured just before.
(c) resolution: a stream at 1000 packets/s and `ping -i 0.2` (iputils, run in node a's
    namespace) to the same spoke, while the a-b0 link is set down for exactly 1.000 s on the
    drill's precise clock (`LinkDown`, as `drill run` does), `--outages` times. Each method's
    loss-derived outage (lost x interval) and its bound (one interval; the stream's also the
    sender's lateness p99 and the kernel's confirmation times).
(d) live view: sender lateness p99 of a 1000 packets/s stream in `run_drill` with and without
    the live view drawing (`drills.live.LiveView` on a terminal-like console writing to
    /dev/null), alternating, `--live-runs` each.

Writes JSON (`--out`) and Markdown (same name, `.md`) and prints the Markdown. Everything created
is removed at the end, also on Ctrl-C or SIGTERM. Run as root. Never touches /var/lib/drills.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))  # bench/ is not a package: for common

import common  # noqa: E402
from rich.console import Console  # noqa: E402

from drills import lifecycle  # noqa: E402
from drills.clock import SystemClock  # noqa: E402
from drills.engine.faults import FaultContext  # noqa: E402
from drills.lifecycle import run as run_drill  # noqa: E402
from drills.live import LiveView  # noqa: E402
from drills.measure import percentile, timestamp_jitter_s  # noqa: E402
from drills.netns import kernel  # noqa: E402
from drills.netns.sockets import NamespaceSockets  # noqa: E402
from drills.probes import udp_stream  # noqa: E402
from drills.probes.udp_stream import UdpStream  # noqa: E402
from drills.runs import RunStore  # noqa: E402
from drills.scenario.resolved import Topology  # noqa: E402

SPOKES = 10
PER_STREAM_PPS = (200, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000)
ON_SCHEDULE_P99_S = 0.010  # "on schedule": the sender's lateness p99 stays under this
SWITCH_INTERVAL_S = 0.0002  # run_drill's
TARGET_PPS = 20_000
PING_INTERVAL_S = 0.2
OUTAGE_S = 1.000


def star_yaml() -> str:
    nodes = ["    a:", "      routes:"]
    nodes += [f"        - {{to: b{i}, via: b{i}:a}}" for i in range(SPOKES)]
    nodes += [f"    b{i}: {{routes: [{{to: a, via: a:b{i}}}]}}" for i in range(SPOKES)]
    links = [f"    - {{name: l{i}, endpoints: [a:b{i}, b{i}:a]}}" for i in range(SPOKES)]
    return "\n".join(
        ["version: 1", "name: bench-probes", "topology:", "  addressing: {ipv4: 198.18.96.0/22, loopbacks: 198.19.96.0/24}",
         "  nodes:", *nodes, "  links:", *links, ""]
    )  # fmt: skip


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    return {"p50": percentile(ordered, 0.5), "p99": percentile(ordered, 0.99), "max": ordered[-1]}


STREAM_CLASS: Any = UdpStream  # --stream-module swaps in another implementation (before/after)


def load_stream_class(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("bench_udp_stream", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.UdpStream


def streams(top: Topology, ns: dict[str, str], rate_pps: int, count: int, tag: int) -> list[UdpStream]:
    source = top.node("a")
    out = []
    for i in range(count):
        target = top.node(f"b{i}")
        assert source.primary_address is not None and target.primary_address is not None
        # A stream class from before the seam (--stream-module) takes namespaces, today's takes
        # the backend's sockets and node names.
        if "sockets" in inspect.signature(STREAM_CLASS).parameters:
            ends: tuple[Any, ...] = (NamespaceSockets(ns), "a", source.primary_address, f"b{i}")
        else:
            ends = (ns["a"], source.primary_address, ns[f"b{i}"])
        out.append(STREAM_CLASS(f"s{i}", *ends, target.primary_address, rate_pps, 64, SystemClock(), tag=tag + i))
    return out


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rate_step(top: Topology, ns: dict[str, str], per_stream_pps: int, seconds: float, tag: int) -> dict[str, Any]:
    running = streams(top, ns, per_stream_pps, SPOKES, tag)
    cpu0, wall0 = cpu_s(), time.monotonic()
    for s in running:
        s.start()
    time.sleep(seconds)
    for s in running:
        s.stop_sending()
    time.sleep(0.5)  # every echo in flight comes back before any socket closes
    records = [s.stop(drain_s=0.0) for s in running]
    wall, cpu = time.monotonic() - wall0, cpu_s() - cpu0
    sent = sum(len(r.sent) for r in records)
    lost = sum(len(r.sent) - sum(1 for i in range(len(r.sent)) if i in r.received) for r in records)
    lateness = [x for r in records for x in r.send_lateness_s]
    offered = per_stream_pps * SPOKES * seconds
    late = summary(lateness)
    return {
        "per_stream_pps": per_stream_pps,
        "aggregate_pps": per_stream_pps * SPOKES,
        "seconds": seconds,
        "sent": sent,
        "lost": lost,
        "duplicates": sum(r.duplicates for r in records),
        "achieved_pps": sent / seconds,
        "lateness_p50_ms": late["p50"] * 1e3,
        "lateness_p99_ms": late["p99"] * 1e3,
        "cpu_share": cpu / wall,
        "sustained": lost == 0 and sent >= 0.99 * offered,
    }


def cpu_at_1000(top: Topology, ns: dict[str, str], seconds: float) -> dict[str, Any]:
    cpu0, wall0 = cpu_s(), time.monotonic()
    time.sleep(seconds)
    idle = (cpu_s() - cpu0) / (time.monotonic() - wall0)
    (stream,) = streams(top, ns, 1000, 1, tag=0xC0)
    stream.start()
    cpu0, wall0 = cpu_s(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = cpu_s() - cpu0, time.monotonic() - wall0
    record = stream.stop(drain_s=0.2)
    lost = len(record.sent) - len(record.received)
    return {"idle_share": idle, "share": cpu / wall - idle, "seconds": seconds, "sent": len(record.sent), "lost": lost}


def outage_run(top: Topology, ns: dict[str, str], ctx: FaultContext, tag: int) -> dict[str, Any]:
    """A 1.000 s link-down of a-b0 seen by a 1000 packets/s stream and by `ping -i 0.2`."""
    clock = SystemClock()
    (stream,) = streams(top, ns, 1000, 1, tag)
    target = top.node("b0").primary_address
    count = 20  # 4 s of ping
    argv = ["ping", "-n", "-i", str(PING_INTERVAL_S), "-W", "1", "-c", str(count), str(target)]

    def spawn() -> subprocess.Popen[str]:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    stream.start()
    ping = kernel.run_in_namespace(ns["a"], spawn)
    link = next(lk for lk in top.links if lk.name == "l0")
    fault = common.link_down(top, link)
    # A random phase against ping's 200 ms grid: a fixed one would always favour or hurt ping.
    down_at = clock.now_s() + 1.5 + random.random() * PING_INTERVAL_S
    clock.sleep_until(down_at, precise=True)
    issued_down = clock.now_s()
    fault.apply(ctx)
    confirmed_down = clock.now_s()
    clock.sleep_until(issued_down + OUTAGE_S, precise=True)
    issued_up = clock.now_s()
    fault.revert(ctx)
    confirmed_up = clock.now_s()
    out, _ = ping.communicate(timeout=30)
    record = stream.stop(drain_s=0.3)
    replied = {int(m) for m in re.findall(r"icmp_seq=(\d+)", out)}
    ping_lost = sum(1 for seq in range(1, count + 1) if seq not in replied)
    lost = len(record.sent) - len(record.received)
    stream_bound_s = 1 / 1000 + timestamp_jitter_s(record) + (confirmed_down - issued_down) + (confirmed_up - issued_up)
    return {
        "down_s": issued_up - issued_down,
        "apply_confirm_ms": (confirmed_down - issued_down) * 1e3,
        "revert_confirm_ms": (confirmed_up - issued_up) * 1e3,
        "stream_lost": lost,
        "stream_outage_s": lost / 1000,
        "stream_bound_s": stream_bound_s,
        "ping_sent": count,
        "ping_lost": ping_lost,
        "ping_outage_s": ping_lost * PING_INTERVAL_S,
        "ping_bound_s": PING_INTERVAL_S,
    }


def live_runs(work: Path, state: Path, runs: int) -> list[dict[str, Any]]:
    """Sender lateness p99 in run_drill, with the live view drawing and without, alternating."""
    path = work / "live.yaml"
    path.write_text(common.line_drill_yaml("bench-live", 100, 1000, 9.0))
    out: list[dict[str, Any]] = []
    for k in range(runs * 2):
        with_view = k % 2 == 1
        if with_view:
            console = Console(file=open(os.devnull, "w"), force_terminal=True, width=120)  # noqa: SIM115
            view = LiveView(console)
            with view:
                result = run_drill(path, state, log=view.log, progress=view.event)
            frames = view.frames
        else:
            result = run_drill(path, state, log=lambda _m: None)
            frames = 0
        lateness = result.records[0].send_lateness_s
        skew = [s.issued_s - s.scheduled_s for s in result.steps]
        out.append(
            {
                "live_view": with_view,
                "frames": frames,
                "lateness_p50_ms": summary(lateness)["p50"] * 1e3,
                "lateness_p99_ms": summary(lateness)["p99"] * 1e3,
                "step_skew_max_ms": max(skew) * 1e3,
            }
        )
    return out


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Probe engine benchmark (`bench/probes.py`)",
        "",
        f"{data['when']} · kernel {data['kernel']} · {data['cpus']} CPUs · Python {data['python']} · "
        f"load average at start {data['loadavg_start']}",
        "",
        "## (a) Highest loss-free aggregate rate, 10 streams",
        "",
        "| per stream | aggregate | sender lanes | sent | lost | achieved | lateness p50 | lateness p99 | process CPU | sustained |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for s in data["ramp"]:
        lines.append(
            f"| {s['per_stream_pps']} | {s['aggregate_pps']} | {s['lanes']} | {s['sent']} | {s['lost']} | {s['achieved_pps']:.0f} | "
            f"{s['lateness_p50_ms']:.2f} ms | {s['lateness_p99_ms']:.2f} ms | {s['cpu_share'] * 100:.0f} % | "
            f"{'yes' if s['sustained'] else 'no'} |"
        )
    lines += [
        "",
        "| sender lanes | highest aggregate rate, no packet lost in every run of its step | in at least one run | "
        f"also with the sender's lateness p99 ≤ {ON_SCHEDULE_P99_S * 1e3:g} ms | CPU of one stream at 1000 packets/s (median; each run) |",
        "|---:|---:|---:|---:|---|",
    ]
    for lanes in data["lane_counts"]:
        runs = [r for r in data["cpu_runs"] if r["lanes"] == lanes]
        median = statistics.median([r["share"] for r in runs] or [0.0])
        best = data["highest_sustained_pps"][str(lanes)]
        each = ", ".join(f"{r['share'] * 100:.1f} %" for r in runs)
        lines.append(
            f"| {lanes} | {best} packets/s (target ≥ {TARGET_PPS}: {'met' if best >= TARGET_PPS else 'not met'}) | "
            f"{data['highest_sustained_any_pps'][str(lanes)]} | {data['highest_on_schedule_pps'][str(lanes)]} | "
            f"{median * 100:.1f} % of one core ({each}) |"
        )
    lines += [
        "",
        "Sustained = no packet lost and ≥ 99 % of the offered packets sent. CPU (b): process CPU time over wall time "
        f"({data['cpu_runs'][0]['seconds'] if data['cpu_runs'] else 0:g} s a run), the idle process's subtracted; "
        "every packet echoed. The lane counts ran side by side, the order alternating.",
        "",
        f"## (c) Resolution on a {OUTAGE_S:.3f} s link-down: stream at 1000 packets/s against `ping -i 0.2`",
        "",
        "| run | link down for | stream outage | stream bound | ping outage | ping bound |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for k, r in enumerate(data["outages"], 1):
        lines.append(
            f"| {k} | {r['down_s'] * 1e3:.2f} ms | {r['stream_outage_s'] * 1e3:.0f} ms | ± {r['stream_bound_s'] * 1e3:.2f} ms | "
            f"{r['ping_outage_s'] * 1e3:.0f} ms | ± {r['ping_bound_s'] * 1e3:.0f} ms |"
        )
    lines += [
        "",
        "The stream's figure is lost ÷ rate; its bound is one packet gap + the sender's lateness p99 + the kernel's "
        "confirmation times of both changes. ping's is lost replies × 0.2 s, ± one interval.",
        "",
        "## (d) The live view's cost: sender lateness in `run_drill`, 1000 packets/s",
        "",
        "| live view | frames | lateness p50 | lateness p99 | worst step skew |",
        "|:---:|---:|---:|---:|---:|",
    ]
    live = data.get("live_summary", {})
    for r in data["live"]:
        lines.append(
            f"| {'yes' if r['live_view'] else 'no'} | {r['frames']} | {r['lateness_p50_ms']:.3f} ms | "
            f"{r['lateness_p99_ms']:.3f} ms | {r['step_skew_max_ms']:.3f} ms |"
        )
    if live:
        lines += [
            "",
            f"Median lateness p99: {live['with_view_p99_ms']:.3f} ms with the view, "
            f"{live['without_view_p99_ms']:.3f} ms without.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each ramp step")
    parser.add_argument("--outages", type=int, default=3, help="scripted 1 s outages")
    parser.add_argument("--step-repeats", type=int, default=2, help="runs of each ramp step")
    parser.add_argument("--live-runs", type=int, default=2, help="run_drill runs with and without the live view")
    parser.add_argument("--parts", default="abcd", help="which parts to run (a: ramp, b: CPU, c: outages, d: live view)")
    parser.add_argument(
        "--stream-module", type=Path, default=None,
        help="a file defining UdpStream to measure instead of drills' (e.g. an older version, for before/after)",
    )  # fmt: skip
    parser.add_argument("--lanes", default="2,1", help="sender lanes per stream to compare side by side (drills runs 2)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "probes.json")
    args = parser.parse_args(argv)
    lane_counts = [int(x) for x in args.lanes.split(",") if x.strip()]
    if not lane_counts or not all(1 <= n <= 4 for n in lane_counts):
        parser.error("--lanes: counts from 1 to 4, comma-separated")
    global STREAM_CLASS
    if args.stream_module is not None:
        STREAM_CLASS = load_stream_class(args.stream_module)
    if os.geteuid() != 0:
        print("bench/probes.py needs root (network namespaces)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="drills-bench-probes-"))
    state = work / "state"
    state.mkdir()
    data: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "stream_module": str(args.stream_module) if args.stream_module else "drills.probes.udp_stream",
        "lane_counts": lane_counts,
        "ramp": [],
        "outages": [],
    }
    ops: Any = None  # the node operations while the outage runs hold them
    previous_switch = sys.getswitchinterval()

    def cleanup() -> list[str]:
        sys.setswitchinterval(previous_switch)
        if ops is not None:
            ops.close()
        return common.clean_state(state, work)

    with common.interruptible(cleanup) as stop:
        path = work / "star.yaml"
        path.write_text(star_yaml())
        up = lifecycle.up(path, state)
        top, ns = up.topology, dict(up.meta.nodes)
        print(f"star of {SPOKES} spokes up (run {up.meta.run_id})", flush=True)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        failed_in_a_row = 0
        for k, rate in enumerate(PER_STREAM_PPS if "a" in args.parts else ()):
            # Each step twice: on a shared machine one run can be hit by another job's burst.
            steps = []
            for r in range(args.step_repeats):
                for n, lanes in enumerate(lane_counts if r % 2 == 0 else lane_counts[::-1]):
                    udp_stream.SENDER_LANES = lanes
                    step = rate_step(top, ns, rate, args.seconds, tag=0x5000 + 100 * k + 10 * r + n) | {"lanes": lanes}
                    steps.append(step)
                    data["ramp"].append(step)
                    print(f"ramp {step['aggregate_pps']} pps, {lanes} lane(s): lost {step['lost']}, achieved "
                          f"{step['achieved_pps']:.0f}, p99 lateness {step['lateness_p99_ms']:.2f} ms", flush=True)  # fmt: skip
            udp_stream.SENDER_LANES = 2
            failed_in_a_row = 0 if any(s["sustained"] for s in steps) else failed_in_a_row + 1
            if failed_in_a_row == 2:
                break  # two steps failed in every repeat: the ceiling is found

        def highest(ok: Any, lanes: int) -> int:
            ramp = [s for s in data["ramp"] if s["lanes"] == lanes]
            rates = sorted({s["aggregate_pps"] for s in ramp})
            return max((r for r in rates if ok([s for s in ramp if s["aggregate_pps"] == r])), default=0)

        for key, ok in (
            ("highest_sustained_pps", lambda runs: all(s["sustained"] for s in runs)),
            ("highest_sustained_any_pps", lambda runs: any(s["sustained"] for s in runs)),
            ("highest_on_schedule_pps",
             lambda runs: all(s["sustained"] and s["lateness_p99_ms"] <= ON_SCHEDULE_P99_S * 1e3 for s in runs)),
        ):  # fmt: skip
            data[key] = {str(lanes): highest(ok, lanes) for lanes in lane_counts}
        data["cpu_runs"] = []
        for r in range(3 if "b" in args.parts else 0):
            for lanes in lane_counts if r % 2 == 0 else lane_counts[::-1]:
                udp_stream.SENDER_LANES = lanes
                run = cpu_at_1000(top, ns, args.seconds * 2) | {"lanes": lanes}
                data["cpu_runs"].append(run)
                print(f"cpu at 1000 pps, {lanes} lane(s): {run['share'] * 100:.1f} %", flush=True)
        udp_stream.SENDER_LANES = 2
        ops = common.node_ops(top, ns, RunStore(state).get(up.meta.run_id))
        ctx = FaultContext(ops, SystemClock(), lambda _m: None, random.Random(1))
        for k in range(args.outages if "c" in args.parts else 0):
            run = outage_run(top, ns, ctx, tag=0x7000 + k)
            data["outages"].append(run)
            print(f"outage {k + 1}: stream {run['stream_outage_s'] * 1e3:.0f} ms, ping {run['ping_outage_s'] * 1e3:.0f} ms",
                  flush=True)  # fmt: skip
        ops.close()
        ops = None
        sys.setswitchinterval(previous_switch)
        lifecycle.down(state, up.meta.run_id)
        data["live"] = live_runs(work, state, args.live_runs if "d" in args.parts else 0)
        for run in data["live"]:
            print(f"live view {run['live_view']}: lateness p99 {run['lateness_p99_ms']:.3f} ms", flush=True)
        data["live_summary"] = {
            key: statistics.median([r["lateness_p99_ms"] for r in data["live"] if r["live_view"] == on] or [0.0])
            for key, on in (("with_view_p99_ms", True), ("without_view_p99_ms", False))
        }
    if stop.interrupted:
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2))
    text = markdown(data)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 1 if stop.left else 0


if __name__ == "__main__":
    raise SystemExit(main())


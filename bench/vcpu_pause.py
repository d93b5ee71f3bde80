#!/usr/bin/env python3
"""Why a stream's real-time sender lanes still left a gap: the guest, or the host taking vCPUs away?

    sudo .venv/bin/python bench/vcpu_pause.py [--class exec] [--load 2] [--drills 10] [--min-ms 2]

Runs drills of one fault class (bench/fault_accuracy.py's line a — b — c, 1000 pps) with N busy
processes competing for the CPUs, each under the kernel's tracer (tracefs: scheduler switches
and wake-ups, local timer interrupts, hrtimer expiries, on the monotonic clock that the drill
uses). After each drill it takes the widest interval between two of the stream's sends; one of
`--min-ms` or more is explained from the trace. The stream sends from two lanes held to two
CPUs (drills.probes.udp_stream), so a gap means neither sent. Per CPU, the longest stretch of
the overdue part of the interval with no event at all on it, not even its own scheduler tick
(every 4 ms on a busy CPU), and what it ran otherwise:

- **no vCPU running**: every CPU silent for most of the overdue time (half of it, and 0.5 ms at
  least), though the lane held to it had a timer due as that time began (a packet is due every
  gap) and a running CPU takes that interrupt on time: the hypervisor ran none of this machine's
  vCPUs then. The kernel counts such time as steal (drills.realtime.steal_s).
- **a vCPU not running, the other lane held**: one CPU silent, the other lane held up anyway
  (it waited for the GIL or the stream's lock, held by a thread on the silent CPU; or the other
  CPU ran something above it).
- **guest**: no CPU silent: work inside this machine held both lanes back.

Writes bench/results/vcpu-pause.md (each explained stall with a trace excerpt) and .json. Run
as root; tracefs is mounted at /sys/kernel/tracing if it is not (and unmounted after), and the
events it enables are disabled again.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402
import fault_accuracy  # noqa: E402

from drills.lifecycle import run as run_drill  # noqa: E402

TRACING = Path("/sys/kernel/tracing")
EVENTS = ("sched/sched_switch", "sched/sched_wakeup", "irq_vectors/local_timer_entry", "timer/hrtimer_expire_entry")
SENDER_PRIO = 97  # the kernel's prio of a SCHED_FIFO 2 thread (99 - 2): the probe senders only
LINE = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>\d+\.\d+): (?P<event>\w+): (?P<rest>.*)$")


@dataclass(frozen=True)
class Event:
    ts_s: float
    cpu: int
    task: str
    event: str
    rest: str
    text: str


def parse(trace: str) -> list[Event]:
    events = []
    for text in trace.splitlines():
        match = LINE.match(text)
        if match:
            events.append(Event(float(match["ts"]), int(match["cpu"]), f"{match['task']}-{match['pid']}", match["event"], match["rest"], text.strip()))
    return events


def _woken(event: Event) -> str:
    """The task a sched_wakeup woke (the line's own task is the one that was running)."""
    match = re.search(r"comm=(\S+) pid=(\d+)", event.rest)
    return f"{match[1]}-{match[2]}" if match else "?"


def explain(events: list[Event], last_sent_s: float, next_sent_s: float, gap_s: float) -> dict[str, Any]:
    """Why no sender lane sent between `last_sent_s` and `next_sent_s`: per CPU, the longest
    stretch of the interval's overdue part in which it shows no event at all (the hypervisor not
    running it: no interrupt, not even its own tick), and what it ran otherwise."""
    due_s = last_sent_s + gap_s  # the next packet was due then: the lanes' timers were set for it
    excerpt = [e.text for e in events if last_sent_s - 0.0002 <= e.ts_s <= next_sent_s + 0.0001][:200]
    overdue_s = max(next_sent_s - due_s, 1e-9)
    cpus = sorted({e.cpu for e in events})
    per_cpu: dict[str, Any] = {}
    silent_cpus = 0
    for cpu in cpus:
        instants = [e.ts_s for e in events if e.cpu == cpu and due_s < e.ts_s < next_sent_s]
        before = [e.ts_s for e in events if e.cpu == cpu and e.ts_s <= due_s]
        edges = [before[-1] if before else due_s, *instants, next_sent_s]
        silent_s = max(min(b, next_sent_s) - max(a, due_s) for a, b in itertools.pairwise(edges))
        ran = sorted({e.task for e in events if e.cpu == cpu and due_s < e.ts_s < next_sent_s and e.event == "sched_switch"})
        # The lane held to this CPU had a timer due as the overdue part began (a packet is due
        # every gap): a CPU that runs takes that interrupt on time, so one silent for most of it
        # was not running.
        silent_cpus += silent_s >= max(0.0005, 0.5 * overdue_s)
        per_cpu[str(cpu)] = {"silent_ms": round(silent_s * 1e3, 3), "ran": ran[:8]}
    woken = [f"{_woken(e)} on CPU {e.cpu} at +{(e.ts_s - due_s) * 1e3:.2f} ms" for e in events
             if e.event == "sched_wakeup" and f"prio={SENDER_PRIO}" in e.rest and due_s - 0.0005 <= e.ts_s <= next_sent_s]
    if not cpus:
        verdict = "not traced"
    elif silent_cpus == len(cpus):
        verdict = "no vCPU running"
    elif silent_cpus:
        verdict = "a vCPU not running, the other lane held"
    else:
        verdict = "guest"
    why = "; ".join(f"CPU {cpu}: silent {v['silent_ms']} ms of {overdue_s * 1e3:.2f}, ran {', '.join(v['ran']) or 'nothing traced'}"
                    for cpu, v in per_cpu.items())
    return {"verdict": verdict, "why": f"{why}; sender wake-ups: {', '.join(woken) or 'none'}", "cpus": per_cpu, "excerpt": excerpt}


def write(name: str, value: str) -> None:
    (TRACING / name).write_text(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--class", dest="fault_class", default="exec", choices=sorted(fault_accuracy.CLASSES))
    parser.add_argument("--load", type=int, default=2, choices=range(0, 9), metavar="N", help="busy processes (0-8)")
    parser.add_argument("--drills", type=int, default=10, choices=range(1, 101), metavar="N", help="drills to run (1-100)")
    parser.add_argument("--min-ms", type=float, default=2.0, help="explain intervals between sends at least this wide")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "vcpu-pause.json")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/vcpu_pause.py needs root", file=sys.stderr)
        return 2
    mounted = not (TRACING / "trace").exists()
    if mounted:
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=True)
    work = Path(tempfile.mkdtemp(prefix="drills-bench-vcpu-"))
    name, fault = args.fault_class, fault_accuracy.CLASSES[args.fault_class]
    engine = ", engine: userspace" if "userspace" in name else ""
    path = work / "drill.yaml"
    path.write_text(fault_accuracy.LINE.format(name=name.split()[0], service=fault_accuracy.SERVICE, engine=engine, fault=fault))
    drills: list[dict[str, Any]] = []
    # Bounded: killed below, and each loop ends by itself after an hour whatever happens.
    loops = [subprocess.Popen([sys.executable, "-c", fault_accuracy.BUSY]) for _ in range(args.load)]
    try:
        write("trace_clock", "mono")  # time.monotonic's clock: the drill's instants line up with the trace
        write("buffer_size_kb", "40000")
        for event in EVENTS:
            write(f"events/{event}/enable", "1")
        with common.interruptible(lambda: common.clean_state(work / "state", work)) as stop:
            (work / "state").mkdir(exist_ok=True)
            for number in range(args.drills):
                write("trace", "")
                write("tracing_on", "1")
                result = run_drill(path, work / "state")
                write("tracing_on", "0")
                [record] = result.records
                sent, gap_s = record.sent, 1.0 / record.rate_pps
                widest_s, at = max((sent[i + 1] - sent[i], i) for i in range(len(sent) - 1))
                row: dict[str, Any] = {
                    "drill": number, "widest_ms": round(widest_s * 1e3, 3), "at_s": round(sent[at] - result.t0_s, 4),
                    "host_steal_ms": None if result.host_steal_s is None else round(result.host_steal_s * 1e3),
                }  # fmt: skip
                if widest_s * 1e3 >= args.min_ms:
                    row |= explain(parse((TRACING / "trace").read_text()), sent[at], sent[at + 1], gap_s)
                drills.append(row)
                print({k: v for k, v in row.items() if k != "excerpt"}, flush=True)
    finally:
        # As it was: tracing off, its events disabled, its buffer back to the default size.
        for name_value in [*((f"events/{event}/enable", "0") for event in EVENTS), ("tracing_on", "0"), ("trace", ""),
                           ("buffer_size_kb", "1408"), ("trace_clock", "local")]:  # fmt: skip
            with contextlib.suppress(OSError):
                write(*name_value)
        if mounted:
            subprocess.run(["umount", str(TRACING)], check=False)
        for loop in loops:
            loop.kill()
            loop.wait()
    if stop.interrupted:
        return 130
    explained = [d for d in drills if "verdict" in d]
    lines = [
        f"# Widest interval between two sends, {args.drills} `{name}` drills at 1000 pps, {args.load} busy processes\n",
        "| drill | widest interval (ms) | at (drill s) | host steal in the drill (ms) | verdict | why |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {d['drill']} | {d['widest_ms']} | {d['at_s']} | {'–' if d['host_steal_ms'] is None else d['host_steal_ms']} | "
        f"{d.get('verdict', f'under {args.min_ms:g} ms')} | {d.get('why', '')} |"
        for d in drills
    ]
    for d in explained:
        if d.get("excerpt"):
            lines += ["", f"## Drill {d['drill']}: {d['verdict']}", "", "```", *d["excerpt"], "```"]
    table = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {**common.host_meta(), "loadavg": os.getloadavg(), "busy_processes": args.load, "class": name}
    args.out.write_text(json.dumps({"meta": meta, "drills": drills, "cleanup_problems": stop.left}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 1 if stop.left else 0


if __name__ == "__main__":
    raise SystemExit(main())

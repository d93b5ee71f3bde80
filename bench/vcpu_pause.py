#!/usr/bin/env python3
"""Why a real-time probe sender still left late: the guest, or the host taking the vCPU away?

    sudo .venv/bin/python bench/vcpu_pause.py [--class exec] [--load 2] [--drills 10] [--min-ms 2]

Runs drills of one fault class (bench/fault_accuracy.py's line a — b — c, 1000 pps) with N busy
processes competing for the CPUs, each under the kernel's tracer (tracefs: scheduler switches
and wake-ups, local timer interrupts, hrtimer expiries, on the monotonic clock that the drill
uses). After each drill it takes the widest interval between two of the stream's sends; one of
`--min-ms` or more is explained from the trace:

- **vCPU not running**: the sender's timer, due when the interval was one gap old, fired late,
  and its CPU shows no event at all in between, not even its own scheduler tick (every 4 ms on
  a busy CPU), while the other CPU's ticks came on time. Nothing in the guest can hold off a
  CPU's timer interrupt that long: the hypervisor was not running that vCPU. The kernel counts
  such time as steal (drills.realtime.steal_s).
- **guest**: the CPU ran something else (its events are listed): work inside this machine that
  held the sender back, which drills could act on.

Writes bench/results/vcpu-pause.md (each explained stall with a trace excerpt) and .json. Run
as root; tracefs is mounted at /sys/kernel/tracing if it is not (and unmounted after), and the
events it enables are disabled again.
"""

from __future__ import annotations

import argparse
import contextlib
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


def explain(events: list[Event], last_sent_s: float, next_sent_s: float, gap_s: float) -> dict[str, Any]:
    """Why the sender sent nothing between `last_sent_s` and `next_sent_s`."""
    due_s = last_sent_s + gap_s  # its next packet was due then: its timer was set for it
    woken = [e for e in events if e.event == "sched_wakeup" and f"prio={SENDER_PRIO}" in e.rest and due_s - 0.0005 <= e.ts_s <= next_sent_s]
    excerpt = [e.text for e in events if last_sent_s - 0.0002 <= e.ts_s <= next_sent_s + 0.0001][:200]
    if not woken:
        return {"verdict": "not traced", "why": "no wake-up of the sender in the trace", "excerpt": excerpt}
    timer, last = woken[0], woken[-1]
    cpu = timer.cpu
    # The interrupt that fired the sender's timer: the last timer interrupt on its CPU before the wake-up.
    irq = [e for e in events if e.cpu == cpu and e.event == "local_timer_entry" and due_s - 0.0005 <= e.ts_s <= timer.ts_s]
    irq_s = irq[-1].ts_s if irq else timer.ts_s
    before = [e for e in events if e.cpu == cpu and e.ts_s < irq_s]
    silent_since_s = before[-1].ts_s if before else due_s
    others = [e for e in events if e.cpu != cpu and e.event == "local_timer_entry" and silent_since_s < e.ts_s < irq_s]
    late_ms = (irq_s - due_s) * 1e3
    row: dict[str, Any] = {"sender_cpu": cpu, "timer_late_ms": round(late_ms, 3), "excerpt": excerpt}
    if late_ms >= 1.0 and silent_since_s <= due_s:
        row["verdict"] = "vCPU not running"
        row["why"] = (
            f"the sender's timer on CPU {cpu} fired {late_ms:.2f} ms after it was due, and CPU {cpu} shows no event for "
            f"{(irq_s - silent_since_s) * 1e3:.2f} ms before that interrupt (not even its own 4 ms tick), while the other "
            f"CPU took {len(others)} timer interrupt(s) in that time"
        )
    elif late_ms >= 1.0:
        row["verdict"] = "guest"
        tasks = sorted({e.task for e in events if e.cpu == cpu and due_s < e.ts_s < irq_s})
        row["why"] = f"the sender's timer on CPU {cpu} fired {late_ms:.2f} ms late while it ran {', '.join(tasks)}"
    else:
        # On time, yet it sent late: it blocked again after its timer (the GIL, or a lock).
        blocked = [e for e in events if e.event == "sched_switch" and "prev_prio=97 prev_state=S" in e.rest and timer.ts_s < e.ts_s < last.ts_s]
        row["verdict"] = "guest"
        row["why"] = (
            f"the sender's timer fired on time ({late_ms:.2f} ms), but it blocked {len(blocked)} time(s) after it and was woken "
            f"again {(last.ts_s - timer.ts_s) * 1e3:.2f} ms later, by {last.task} on CPU {last.cpu}"
        )
    return row


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

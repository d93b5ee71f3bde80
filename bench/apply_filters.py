"""bench/apply.py's packet-filter and node-loss rows (`bench/apply.py --filters`, or part of a full run).

A star (hub x, leaves a1 a2 b1 b2, IPv4 and IPv6) is brought up with `lifecycle.up` in the
caller's state directory. Then, in one run, `repeats` cycles, each applying and reverting:
* `blackhole` of link a1-x (two netdev tables) and `partition` [[a1, a2], [b1, b2]] (four inet
  tables), each with both ways of talking to nftables in turn (order rotating per cycle):
  - armed in-process (drills' default): each table armed before the clock (`NodeOps.arm_rules`,
    as run_drill does: its hooked chains empty, its rules loaded in chains nothing jumps to),
    then netlink batches built in-process add a jump per hooked chain (confirmed from the
    kernel's echo) and flush it; the armed tables are deleted after each cycle, so the other
    methods find no table of that name;
  - armed, read back: the same, but confirmed by reading the hooked chains back after the
    commit instead of from the kernel's echo of the commit;
  - in-process: the same netlink batches creating and deleting the whole table on the clock;
  - `nft` subprocess: the same commands and read-backs through the `nft` command (drills'
    fallback where the library is missing);
  timed as run_drill's `_perform` times a step (under SCHED_FIFO, as it runs it): issued -> confirmed (apply: created, read back,
  carrier checked), and issued -> in force when the fault marks it (FaultContext.mark_in_force);
* `node-loss` of a1 with three processes in its namespace (started off the clock before each
  cycle): issued -> in force (links read back down: the event's window) beside issued ->
  confirmed (every process killed and confirmed gone).
Each action is scheduled 5-15 ms ahead and waited for precisely, as in apply.py.
"""

from __future__ import annotations

import math
import random
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import common

from drills import lifecycle, realtime
from drills.clock import SystemClock
from drills.engine.faults import Fault, FaultContext, build
from drills.netns.ops import NetnsOps
from drills.runs import RunStore
from drills.scenario import load_scenario

LEAD_S = (0.005, 0.015)
PROCESSES = 3  # in the lost node, each a `sleep`, so the kill has something to wait for
STAR = """
version: 1
name: apply-filters
topology:
  addressing: {ipv4: 198.18.60.0/24, loopbacks: 198.19.60.0/24, ipv6: "fd00:d811:60::/48"}
  nodes: {x: {}, a1: {}, a2: {}, b1: {}, b2: {}}
  links:
    - {name: a1x, endpoints: [a1:x, x:a1]}
    - {name: a2x, endpoints: [a2:x, x:a2]}
    - {name: b1x, endpoints: [b1:x, x:b1]}
    - {name: b2x, endpoints: [b2:x, x:b2]}
timeline:
  - {id: gray, at: 1s, fault: blackhole, link: a1x, for: 1s}
  - {id: split, at: 3s, fault: partition, groups: [[a1, a2], [b1, b2]], for: 1s}
  - {id: crash, at: 5s, fault: node-loss, node: a1, for: 1s}
duration: 7s
"""
METHODS = ("armed in-process", "armed, read back", "in-process", "nft subprocess")
ARMED = "armed in-process"  # each table armed (hooked chains empty, rules loaded) before each action, as run_drill does
READ_BACK = "armed, read back"  # the same, confirmed by reading the table back after the commit (before 2026-12-04)
ARMED_METHODS = (ARMED, READ_BACK)
TARGET_P99_S = 0.0015  # issue 14: blackhole and partition apply -> confirmed, p99


def timed_step(ctx: FaultContext, fault: Fault, apply: bool, rng: random.Random) -> dict[str, float]:
    """One action, scheduled ahead and timed as `_perform` times it (seconds after its instant)."""
    clock = ctx.clock
    scheduled = clock.now_s() + rng.uniform(*LEAD_S)
    clock.sleep_until(scheduled, precise=True)
    ctx.in_force_s = None
    issued = clock.now_s()
    with realtime.applying():  # as drills.engine.drill._perform runs it
        if apply:
            fault.apply(ctx)
        else:
            fault.revert(ctx)
    confirmed = clock.now_s()
    sample = {"issued_s": issued - scheduled, "confirmed_s": confirmed - scheduled}
    if apply and ctx.in_force_s is not None:
        sample["in_force_s"] = min(confirmed, max(issued, ctx.in_force_s)) - scheduled
    return sample


def _spawn(namespace: str, count: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(["ip", "netns", "exec", namespace, "sleep", "60"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]


def measure(work: Path, state: Path, repeats: int, rng: random.Random, progress: Callable[[str], None]) -> dict[str, Any]:
    """Every sample: {fault: {method: {"apply": [...], "revert": [...]}}}, plus the node loss."""
    path = work / "filters.yaml"
    path.write_text(STAR)
    scenario = load_scenario(path)
    up = lifecycle.up(path, state)
    namespaces = dict(up.meta.nodes)
    run = RunStore(state).get(up.meta.run_id)
    ops: dict[str, NetnsOps] = {}
    try:
        for method in METHODS:
            ops[method] = common.node_ops(up.topology, namespaces, run)
        ops["nft subprocess"].use_nft_library(None, netlink=False)  # every command runs `nft`
        ops[READ_BACK].echo_confirms = False
        ctxs = {m: FaultContext(o, SystemClock(), lambda _m: None, random.Random(0)) for m, o in ops.items()}
        faults = {s.id: build(s) for s in scenario.steps if s.id}
        samples: dict[str, Any] = {
            kind: {m: {"apply": [], "revert": []} for m in METHODS} for kind in ("blackhole", "partition")
        }
        samples["node-loss"] = {"apply": [], "revert": []}
        for label in ("gray", "split"):  # warm-up, not recorded
            for method in METHODS:
                if method in ARMED_METHODS:
                    ops[method].arm_rules(faults[label].tables)  # type: ignore[attr-defined]
                faults[label].apply(ctxs[method])
                faults[label].revert(ctxs[method])
                ops[method].disarm_rules()
        for cycle in range(repeats):
            shift = cycle % len(METHODS)
            for kind, label in (("blackhole", "gray"), ("partition", "split")):
                for method in METHODS[shift:] + METHODS[:shift]:
                    if method in ARMED_METHODS:
                        ops[method].arm_rules(faults[label].tables)  # type: ignore[attr-defined]
                    samples[kind][method]["apply"].append(timed_step(ctxs[method], faults[label], True, rng))
                    samples[kind][method]["revert"].append(timed_step(ctxs[method], faults[label], False, rng))
                    if method in ARMED_METHODS:
                        ops[method].disarm_rules()
            children = _spawn(namespaces["a1"], PROCESSES)
            try:
                # Started off the clock; given time to exec into `sleep` so they are the node's.
                SystemClock().sleep_until(SystemClock().now_s() + 0.05)
                samples["node-loss"]["apply"].append(timed_step(ctxs["in-process"], faults["crash"], True, rng))
                samples["node-loss"]["revert"].append(timed_step(ctxs["in-process"], faults["crash"], False, rng))
            finally:
                for child in children:
                    child.kill()
                    child.wait()
            if (cycle + 1) % 50 == 0:
                progress(f"filters: {cycle + 1}/{repeats} cycles")
    finally:
        for o in ops.values():
            o.close()
        lifecycle.down(state, up.meta.run_id)
    return samples


# --------------------------------------------------------------------------- figures


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "p50": _pct(values, 50), "p99": _pct(values, 99), "max": max(values)}


def analyse(samples: dict[str, Any]) -> dict[str, Any]:
    """p50/p99/max of issued -> confirmed (and -> in force where marked), per fault, method, action."""
    rows: list[dict[str, Any]] = []

    def add(fault: str, method: str, action: str, found: list[dict[str, float]]) -> None:
        confirmed = _stats([s["confirmed_s"] - s["issued_s"] for s in found])
        row: dict[str, Any] = {"fault": fault, "method": method, "action": action, "confirmed": confirmed}
        marked = [s["in_force_s"] - s["issued_s"] for s in found if "in_force_s" in s]
        if marked:
            row["in_force"] = _stats(marked)
        if fault in ("blackhole", "partition") and action == "apply":
            row["target_p99_met"] = confirmed["p99"] <= TARGET_P99_S
        rows.append(row)

    for fault in ("blackhole", "partition"):
        for method in METHODS:
            for action in ("apply", "revert"):
                add(fault, method, action, samples[fault][method][action])
    for action in ("apply", "revert"):
        add("node-loss", "in-process", action, samples["node-loss"][action])
    return {"rows": rows, "target_p99_s": TARGET_P99_S}


def markdown(result: dict[str, Any]) -> str:
    """The rows as a Markdown table (milliseconds)."""

    def ms(stat: dict[str, float] | None) -> str:
        if stat is None:
            return "–"
        return f"{stat['p50'] * 1e3:.2f} / {stat['p99'] * 1e3:.2f} / {stat['max'] * 1e3:.2f}"

    lines = [
        "| fault | method | action | issued → confirmed p50 / p99 / max (ms) | issued → in force p50 / p99 / max (ms) | p99 ≤ 1.5 ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        met = row.get("target_p99_met")
        lines.append(
            f"| {row['fault']} | {row['method']} | {row['action']} | {ms(row['confirmed'])} | {ms(row.get('in_force'))} | "
            f"{'' if met is None else ('yes' if met else 'no')} |"
        )
    return "\n".join(lines) + "\n"

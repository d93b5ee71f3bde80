#!/usr/bin/env python3
"""Several machines (issue 13) on the test lane's three SSH hosts: a fault timed by the resident
agent against an Ansible task per fault, side by side, and deploy of a large topology over
three hosts against the same on one.

    .venv/bin/python bench/hosts.py [--faults 200] [--ansible 6] [--nodes 300] [--cuts 5] [--out bench/results/hosts.json]

The lane (tests/lane_testing.py): three containers running a real sshd, reached over SSH with a
key through the lane's underlay, drills installed on each by `ansible/prepare.yml`. Figures:

- **fault apply through the agent**: a link-down's apply as the engine does it (set the end
  down, then read both ends back until the kernel shows no carrier), scheduled → confirmed on
  the remote host (its own stamp, mapped onto the drill clock), on a link inside one remote host
  and on a link crossing two hosts (the far end's carrier cut on the other host too); sent
  ahead of the instant as the engine does, and at the instant, side by side; apply and revert
  alternate, `--faults` of each way;
- **the same through an Ansible task per fault** (`ansible-runner`, one `command` task that
  sets the interface down and reads it back with `ip`), `--ansible` of each;
- **a whole drill** of the lane test's 2 s cross-host cut, `--cuts` times: its outage, the
  stated accuracy, the apply's lag;
- **deploy** of a `--nodes`-node line (static routes end to end) through the agents, placed
  automatically over three hosts and all on one host: connect + deploy, then teardown,
  alternating, two rounds.

Run as root; the lane and everything deployed on it are removed on exit (Ctrl-C and SIGTERM
too). Results: JSON (`--out`) and Markdown beside it, printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
# Last on the path, not first (where Python puts a script's directory): bench/docker.py must not
# shadow the docker SDK.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR] + [str(BENCH_DIR), str(BENCH_DIR.parent / "tests")]

import common  # noqa: E402

from drills.backend import TimedOps  # noqa: E402
from drills.clock import SystemClock  # noqa: E402
from drills.hosts import ansible_edge, provision  # noqa: E402
from drills.hosts.placement import assign_vnis, for_scenario  # noqa: E402
from drills.remote.backend import MultiHostBackend  # noqa: E402
from drills.runs import RUN_ID_BYTES, RunStore  # noqa: E402
from drills.scenario import load_scenario  # noqa: E402

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: link {state}
      ansible.builtin.command: >-
        sh -c 'ip -n {ns} link set e1 {state} && ip -n {ns} -o link show e1'
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1e3, 3),
        "p99_ms": round(percentile(values, 0.99) * 1e3, 3),
        "max_ms": round(max(values) * 1e3, 3),
    }


def scenario_file(directory: Path, name: str, nodes: dict[str, str], links: list[tuple[str, str]]) -> Path:
    """A scenario whose nodes are pinned to hosts (`nodes`: node -> host, "" for automatic)."""
    lines = ["version: 1", f"name: {name}", "topology:", "  nodes:"]
    for node, host in nodes.items():
        lines.append(f"    {node}: {{host: {host}}}" if host else f"    {node}: {{}}")
    lines.append("  links:")
    for a, b in links:
        lines.append(f"    - {{endpoints: [{a}, {b}]}}")
    path = directory / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def deployed(path: Path, inventory: Path, state: Path) -> tuple[MultiHostBackend, Any, Any, float]:
    """Connect every host's agent and deploy the scenario at `path`; the seconds it took."""
    clock = SystemClock()
    scenario = load_scenario(path)
    placed = for_scenario(scenario, inventory)
    assert placed is not None
    run_id = secrets.token_hex(RUN_ID_BYTES)
    started = time.perf_counter()
    backend = MultiHostBackend(placed[0], assign_vnis(placed[1], run_id), lambda _m: None, clock)
    backend.connect(run_id)
    run = RunStore(state).create(scenario.name, path, run_id=run_id)
    backend.deploy(scenario.topology, run)
    return backend, run, scenario, time.perf_counter() - started


def link_down_times(backend: MultiHostBackend, run: Any, link: tuple[str, str], far: tuple[str, str], faults: int) -> dict[str, list[float]]:
    """Apply/revert a link-down as the engine does (drills.engine.link_faults), scheduled →
    confirmed: set the end, then read both ends back until they show it. Two ways, alternating:
    *ahead*, as the engine issues a step on other hosts (drills.engine.drill: `lead_s` before its
    instant, each agent holding it until then on its own clock), and *at the instant* (sent when
    it is due, the channel's latency in the way)."""
    clock = SystemClock()
    ops = backend.ops(run, clock)
    ops.warm()
    sys.setswitchinterval(0.0002)  # as the engine does while its clock runs (drills.engine.drill)
    assert isinstance(ops, TimedOps)
    lead_s = ops.lead_s()
    times: dict[str, list[float]] = {}
    for i in range(4 * faults):
        down, ahead = i % 2 == 0, i % 4 < 2
        scheduled = clock.now_s() + 0.05
        ops.take_span()
        clock.sleep_until(scheduled - (lead_s if ahead else 0.0), precise=True)
        ops.due_at(scheduled if ahead else None)
        ops.set_link(*link, up=not down)
        for end in (link, far):
            while True:
                admin_up, carrier = ops.link_state(*end)
                if (not carrier) if down else (admin_up and carrier):
                    break
        ops.due_at(None)
        answered = clock.now_s()
        span = ops.take_span()
        assert span is not None
        # As the engine records a step (drills.engine.drill._perform): confirmed on the remote
        # host by its stamps, the clock offset's bound added, never after the answer came.
        key = f"{'apply' if down else 'revert'}, {'ahead' if ahead else 'at the instant'}"
        times.setdefault(key, []).append(min(answered, span[1]) - scheduled)
        times.setdefault(f"{key}, answered", []).append(answered - scheduled)
    ops.close()
    times["lead"] = [lead_s]
    return times


def ansible_times(lane: Any, namespace: str, runs: int, directory: Path) -> dict[str, list[float]]:
    """The same link-down as one Ansible task per fault (h1 only), scheduled → playbook done."""
    times: dict[str, list[float]] = {"apply": [], "revert": []}
    for i in range(2 * runs):
        state = "down" if i % 2 == 0 else "up"
        playbook = directory / f"link-{state}.yml"
        playbook.write_text(PLAYBOOK.format(state=state, ns=namespace))
        started = time.monotonic()
        ansible_edge.run_playbook(playbook, lane.inventory, limit=["h1"], timeout_s=120)
        times["apply" if state == "down" else "revert"].append(time.monotonic() - started)
    return times


def cut_drills(lane: Any, runs: int, directory: Path, state: Path) -> list[dict[str, float]]:
    """The lane test's 2 s cross-host cut (tests/test_hosts_drills.py), `runs` whole drills: the
    outage against the span between the steps, its stated accuracy, and the steps' lags."""
    import lane_testing

    from drills.lifecycle import run as run_drill
    from drills.measure import timestamp_jitter_s

    path = directory / "cut.yaml"
    path.write_text(lane_testing.CHAIN)
    rows = []
    for _ in range(runs):
        result = run_drill(path, state, inventory=lane.inventory)
        apply, revert = (s for s in result.steps if s.label == "cut")
        cut = next(m for m in result.metrics if m.kind == "apply")
        record = next(r for r in result.records if getattr(r, "name", "") == "stream")
        rows.append({
            "lateness_p99_ms": round(timestamp_jitter_s(record) * 1e3, 3),
            "h1_bound_ms": round(next(float(h["bound_s"]) for h in result.hosts if h["host"] == "h1") * 1e3, 3),
            "outage_s": cut.outage_s,
            "span_s": round(revert.issued_s - apply.issued_s, 6),
            "accuracy_ms": round(cut.accuracy_s * 1e3, 3),
            "apply_confirmed_ms": round((apply.confirmed_s - apply.scheduled_s) * 1e3, 3),
            "apply_window_ms": round((apply.confirmed_s - apply.issued_s) * 1e3, 3),
            "in_force_window_ms": round((apply.effect_by_s - apply.issued_s) * 1e3, 3),
            "revert_confirmed_ms": round((revert.confirmed_s - revert.scheduled_s) * 1e3, 3),
        })
        print("2 s cut:", rows[-1], flush=True)
    return rows


def measure(lane: Any, args: argparse.Namespace, directory: Path, state: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"cuts": cut_drills(lane, args.cuts, directory, state)}
    inside = scenario_file(directory, "inside", {"a": "h1", "b": "h1"}, [("a:e1", "b:e1")])
    across = scenario_file(directory, "across", {"a": "h1", "b": "h2"}, [("a:e1", "b:e1")])
    for name, path in (("inside one remote host", inside), ("across two hosts", across)):
        backend, run, _scenario, _ = deployed(path, lane.inventory, state)
        try:
            times = link_down_times(backend, run, ("a", "e1"), ("b", "e1"), args.faults)
            if name == "inside one remote host":
                namespace = backend.namespace_of(run, "a")
                results["ansible"] = {k: summary_ms(v) for k, v in ansible_times(lane, namespace, args.ansible, directory).items()}
        finally:
            report = backend.teardown(run)
            run.remove() if report.clean else None
        results[f"agent, {name}"] = {k: summary_ms(v) for k, v in times.items()}
        print(name, results[f"agent, {name}"], flush=True)
    print("ansible", results["ansible"], flush=True)
    nodes = [f"n{i}" for i in range(args.nodes)]
    line = [(f"{a}:r", f"{b}:l") for a, b in itertools.pairwise(nodes)]
    spread = scenario_file(directory, "spread", dict.fromkeys(nodes, ""), line)
    single = scenario_file(directory, "single", dict.fromkeys(nodes, "h1"), line)
    deploys: dict[str, list[float]] = {"three hosts": [], "one host": []}
    for _round in range(2):
        for name, path in (("three hosts", spread), ("one host", single)):
            backend, run, _scenario, seconds = deployed(path, lane.inventory, state)
            deploys[name].append(seconds)
            report = backend.teardown(run)
            run.remove() if report.clean else None
            print(f"deploy {args.nodes} nodes on {name}: {seconds:.2f} s", flush=True)
    results["deploy"] = {name: {"nodes": args.nodes, "median_s": round(statistics.median(v), 3), "runs_s": [round(x, 3) for x in v]} for name, v in deploys.items()}
    return results


def markdown(results: dict[str, Any], facts: dict[str, Any]) -> str:
    out = [
        "# Several machines: faults through the agent against Ansible, deploy over three hosts",
        "",
        f"Host: {facts}",
        "",
        "Through the agent, *confirmed on the host*: the host's own stamp of the read-back that",
        "confirmed the change, on the drill clock with the clock offset's bound added (what a drill",
        "records as the step's confirmation); *answered*: when that answer reached the controller.",
        "*Ahead*: sent `lead` before the instant and held by the agent until then on its own clock,",
        "as the engine does across hosts; *at the instant*: sent when due.",
        "",
        "| fault apply/revert, scheduled → confirmed | n | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for path in ("agent, inside one remote host", "agent, across two hosts"):
        for key, row in results[path].items():
            if key != "lead":
                what = key if key.endswith("answered") else f"{key}, confirmed on the host"
                out.append(f"| {path}: link-down {what} | {row['n']} | {row['p50_ms']} | {row['p99_ms']} | {row['max_ms']} |")
    for action in ("apply", "revert"):
        row = results["ansible"][action]
        out.append(f"| ansible: link-down {action}, playbook done | {row['n']} | {row['p50_ms']} | {row['p99_ms']} | {row['max_ms']} |")
    out += [
        "",
        "The lane test's drill, a 2 s cut of a cross-host link (a–b–c over three hosts, a 1000 pps",
        "stream), whole drills: the outage against the span between the steps, its stated accuracy,",
        "and the apply's lag (scheduled → confirmed on the host), its window (issued → confirmed on",
        "every host) and its in-force window (issued → the first end confirmed down on its host: a",
        "cut link is in force once either end is down). The accuracy is the sum of a packet gap",
        "(1 ms), the sender's lateness p99, the in-force window and h1's clock bound.",
        "",
        "| drill | outage s | span s | stated accuracy ms | lateness p99 ms | in-force window ms | apply window ms | h1 bound ms | apply confirmed ms | revert confirmed ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, row in enumerate(results["cuts"], 1):
        out.append(
            f"| {i} | {row['outage_s']} | {row['span_s']} | ±{row['accuracy_ms']} | {row['lateness_p99_ms']} | {row['in_force_window_ms']} | {row['apply_window_ms']} "
            f"| {row['h1_bound_ms']} | {row['apply_confirmed_ms']} | {row['revert_confirmed_ms']} |"
        )
    out += ["", "| deploy (connect + deploy through the agents) | nodes | median s | runs s |", "|---|---:|---:|---|"]
    for name, row in results["deploy"].items():
        out.append(f"| {name} | {row['nodes']} | {row['median_s']} | {', '.join(map(str, row['runs_s']))} |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--ansible", type=int, default=6)
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--cuts", type=int, default=5, help="whole drills of the lane's 2 s cross-host cut")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "hosts.json")
    args = parser.parse_args()
    import docker
    import lane_testing

    from drills.docker import images
    from drills.docker.api import Docker

    engine = Docker.connect(timeout_s=20)
    images.ensure(lane_testing.HOST_IMAGE_NAME, engine, print)
    engine.close()
    client = docker.from_env(timeout=60)
    image = images.load_definition(images.definition_path(lane_testing.HOST_IMAGE_NAME)).tag
    directory = Path(tempfile.mkdtemp(prefix="drills-bench-hosts-"))
    state = directory / "state"
    state.mkdir(mode=0o700)
    lane = lane_testing.new_lane(directory / "lane")
    lane.directory.mkdir(mode=0o700)
    results: dict[str, Any] = {}

    def cleanup() -> list[str]:
        return lane_testing.tear_down(client, lane)

    with common.interruptible(cleanup) as state_of:
        lane_testing.bring_up(client, image, lane)
        lane_testing.LANE_STATE_DIR.mkdir(mode=0o700, exist_ok=True)
        provision.prepare(lane.inventory, progress=print, state_dir=lane_testing.LANE_STATE_DIR, timeout_s=600)
        results = measure(lane, args, directory, state)
    if state_of.interrupted:
        return 130
    facts = common.host_meta()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"host": facts, "results": results}, indent=2) + "\n")
    text = markdown(results, facts)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

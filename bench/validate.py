#!/usr/bin/env python3
"""Validation time against scenario size: is `drill validate` linear?

    .venv/bin/python bench/validate.py [--links 1000,2000,5000,10000] [--addressed 1000,10000]
        [--steps 1000,2000,5000,10000]
        [--probes 1000,2000,5000] [--repeats 3] [--budget-s 60] [--out bench/results/validate.json]

Scenarios, written to a temporary directory:

* *links N*: a ring of N nodes `r0..r{N-1}` and N links `r{i}:e <-> r{i+1}:w` (automatic
  addressing: a /30 per link, a /32 loopback per node from a pool wide enough for 10,000), each
  node with static routes to its two neighbours' loopbacks, and one icmp probe to the next node
  from every tenth node (N/10 probes, so the static-reachability replay runs too). Past
  `limits.MAX_NODES` (5,000) nodes, the ring stays at that many nodes and the remaining links are
  chords `r{i}:c <-> r{i+2}:d` (10,000 links: 5,000 nodes, each with a chord).
* *addressed N*: the same ring with every link subnet and loopback given by hand.
* *steps N*: a ring of 10 nodes with those routes and one probe, and N timeline steps cycling
  through link-down, degrade (delay) and node-freeze on the ten links and nodes, each 0.5 s long,
  one a second, so no two of them overlap (every step is checked against the others).
* *probes N*: the ring of 100 nodes and N icmp probes in all between neighbours (both directions).

Timed (`time.perf_counter`, in process, `--repeats` times, min and median): the phases of
`load_scenario` separately, *read* (`yamlpos.read_located`: YAML to positioned data), *parse*
(`loader.parse`: read plus shape validation, so shape = parse - read), *resolve*
(`resolve.resolve` on what parse gave: references, addresses, overlaps), *load*
(`load_scenario`), *checks* (`engine.drill.requirements` on the loaded scenario, without the
host's capabilities: what `drill validate` adds after loading); for comparison, *libyaml*
(`yaml.compose` with PyYAML's C loader: the YAML part of *read* in C, without positions); and
once, *command*: `python -m drills validate FILE` as a process (interpreter start-up, imports and
the host's capability probe included). The growth ratio of a size is time(n) / time(previous n)
divided by n / previous n: about 1 is linear, about n / previous n is quadratic.

A size whose first load took longer than `--budget-s` ends the series (larger sizes are listed
as skipped): the quadratic code took minutes at 10,000.

Writes JSON (`--out`) and Markdown (same name, `.md`) and prints the Markdown. Needs no root.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))  # bench/ is not a package: for common

import common  # noqa: E402
import yaml  # noqa: E402

from drills import doctor  # noqa: E402
from drills.engine.drill import requirements  # noqa: E402
from drills.scenario import limits, loader  # noqa: E402
from drills.scenario.resolve import resolve  # noqa: E402
from drills.scenario.yamlpos import read_located  # noqa: E402

PHASES = ("read", "libyaml", "parse", "resolve", "load", "checks")
# The checks run against a host that has everything, without probing this one.
ALL_CAPABILITIES = {doctor.NAMESPACES: True, doctor.NETEM: True, doctor.TBF: True, doctor.TUNTAP: True}


def _all_capabilities() -> dict[str, bool]:
    return ALL_CAPABILITIES


def _ip(base: str, offset: int) -> str:
    return str(ipaddress.ip_address(base) + offset)


def _ring(nodes: int, probe_every: int, addressed: bool = False, chords: int = 0) -> list[str]:
    """YAML lines of a ring topology with neighbour routes, and its probes section; `addressed`:
    every link subnet and loopback written by hand (on the east end of each link); `chords`: that
    many extra links `r{i}:c <-> r{i+2}:d`, carrying no route (more links than the node cap)."""
    lines = [
        "version: 1",
        f"name: ring-{nodes}",
        "topology:",
        "  addressing: {ipv4: 10.0.0.0/8, loopbacks: 172.16.0.0/12}",
        "  nodes:",
    ]
    for i in range(nodes):
        nxt, prev = (i + 1) % nodes, (i - 1) % nodes
        lines.append(f"    r{i}:")
        lines.append(f"      routes: [{{to: r{nxt}, via: 'r{nxt}:w'}}, {{to: r{prev}, via: 'r{prev}:e'}}]")
        if addressed:
            lines.append(f"      loopback: {_ip('172.16.0.1', i)}/32")
            chord = f", c: {{ipv4: {_ip('10.64.0.1', 4 * i)}/30}}" if i < chords else ""
            lines.append(f"      interfaces: {{e: {{ipv4: {_ip('10.0.0.1', 4 * i)}/30}}{chord}}}")
    lines.append("  links:")
    lines += [f"    - {{endpoints: ['r{i}:e', 'r{(i + 1) % nodes}:w']}}" for i in range(nodes)]
    lines += [f"    - {{endpoints: ['r{i}:c', 'r{(i + 2) % nodes}:d']}}" for i in range(chords)]
    lines.append("probes:")
    lines += [
        f"  - {{name: p{i}, type: icmp, from: r{i}, to: r{(i + 1) % nodes}}}" for i in range(0, nodes, probe_every)
    ]
    return lines


def _ring_of_links(n: int, addressed: bool) -> str:
    nodes = min(n, limits.MAX_NODES)
    return "\n".join(_ring(nodes, 10, addressed=addressed, chords=n - nodes)) + "\n"


def links_yaml(n: int) -> str:
    return _ring_of_links(n, addressed=False)


def addressed_yaml(n: int) -> str:
    return _ring_of_links(n, addressed=True)


def steps_yaml(n: int) -> str:
    nodes = 10
    lines = _ring(nodes, nodes)
    lines.append("timeline:")
    for k in range(n):
        at = f"at: {k}s, for: 500ms"
        target = k % nodes
        kind = (k // nodes) % 3
        if kind == 0:
            lines.append(f"  - {{id: s{k}, {at}, fault: link-down, link: 'r{target}:e'}}")
        elif kind == 1:
            lines.append(f"  - {{id: s{k}, {at}, fault: degrade, link: 'r{target}:e', delay: 20ms}}")
        else:
            lines.append(f"  - {{id: s{k}, {at}, fault: node-freeze, node: r{target}}}")
    return "\n".join(lines) + "\n"


def probes_yaml(n: int) -> str:
    nodes = 100
    lines = _ring(nodes, nodes)  # holds one probe already: N probes in all
    for k in range(n - 1):
        i = k % nodes
        to = (i + 1) % nodes if (k // nodes) % 2 == 0 else (i - 1) % nodes
        lines.append(f"  - {{name: q{k}, type: icmp, from: r{i}, to: r{to}}}")
    return "\n".join(lines) + "\n"


SERIES: dict[str, Callable[[int], str]] = {
    "links": links_yaml,
    "addressed": addressed_yaml,
    "steps": steps_yaml,
    "probes": probes_yaml,
}


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def measure(path: Path, repeats: int) -> dict[str, Any]:
    """Each phase `repeats` times; the scenario must be valid."""
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for _ in range(repeats):
        times["read"].append(_timed(read_located, path)[0])
        text = path.read_text(encoding="utf-8")
        times["libyaml"].append(_timed(yaml.compose, text, yaml.CSafeLoader)[0])
        parse_s, (located, whole, parts, _) = _timed(loader.parse, path)
        times["parse"].append(parse_s)
        profiles = {**loader.builtin_profiles(), **parts.profiles}
        times["resolve"].append(_timed(resolve, path, located, whole, parts, profiles)[0])
        load_s, scenario = _timed(loader.load_scenario, path)
        times["load"].append(load_s)
        checks_s, problems = _timed(requirements, scenario, _all_capabilities)
        if problems:
            raise SystemExit(f"{path}: the generated scenario is not valid: {problems[0]}")
        times["checks"].append(checks_s)
    return {
        phase: {"min_s": min(values), "median_s": statistics.median(values), "runs": len(values)}
        for phase, values in times.items()
    }


def command_s(path: Path) -> float:
    """`drill validate FILE` as a process, once (exit 0 expected)."""
    start = time.perf_counter()
    # Run from the scenario's directory, so that `-m drills` finds the installed package, not
    # a checkout in the current directory.
    out = subprocess.run(
        [sys.executable, "-m", "drills", "validate", path.name], capture_output=True, text=True, cwd=path.parent
    )
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"drill validate {path} exited {out.returncode}: {out.stdout}{out.stderr}")
    return elapsed


def run_series(
    name: str, sizes: list[int], repeats: int, budget_s: float, work: Path, cli: bool
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    over_budget = False
    for n in sizes:
        if over_budget:
            rows.append({"series": name, "size": n, "skipped": f"a smaller size took over {budget_s:g} s"})
            continue
        path = work / f"{name}-{n}.yaml"
        path.write_text(SERIES[name](n), encoding="utf-8")
        first_s, _ = _timed(loader.load_scenario, path)  # also warms the imports
        runs = 1 if first_s > budget_s / 4 else repeats
        row: dict[str, Any] = {"series": name, "size": n, "bytes": path.stat().st_size, **measure(path, runs)}
        if cli:
            row["command_s"] = command_s(path)
        rows.append(row)
        print(f"{name} {n}: load {row['load']['min_s']:.3f} s", file=sys.stderr, flush=True)
        over_budget = first_s > budget_s
    return rows


def _growth(rows: list[dict[str, Any]]) -> None:
    """Add each row's growth ratio: (t(n) / t(prev)) / (n / prev); ~1 is linear."""
    previous: dict[str, Any] | None = None
    for row in rows:
        if "load" not in row:
            continue
        if previous is not None and previous["series"] == row["series"]:
            time_ratio = row["load"]["min_s"] / previous["load"]["min_s"]
            row["growth"] = time_ratio / (row["size"] / previous["size"])
        previous = row


def markdown(result: dict[str, Any]) -> str:
    meta = result["host"]
    lines = [
        "# Validation time against scenario size",
        "",
        f"{meta['date']}, {meta['host']}, kernel {meta['kernel']}, {meta['cpus']} CPUs, Python {meta['python']}. "
        f"In process: min of {result['repeats']} runs (one run when a load took over a quarter of the budget); "
        "command: `python -m drills validate FILE` once. growth = (t(n)/t(prev)) / (n/prev) on load: "
        "about 1 is linear, about n/prev quadratic.",
        "",
        "| series | size | read s | (libyaml s) | shape s | resolve s | load s | checks s | command s | growth |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        if "load" not in row:
            lines.append(f"| {row['series']} | {row['size']:,} | | | | | skipped: {row['skipped']} | | | |")
            continue
        read, parse, load = (row[p]["min_s"] for p in ("read", "parse", "load"))
        # Results from before `resolve` was timed on its own: load less parse.
        resolved = row["resolve"]["min_s"] if "resolve" in row else max(load - parse, 0)
        command = f"{row['command_s']:.2f}" if "command_s" in row else ""
        libyaml = f"{row['libyaml']['min_s']:.3f}" if "libyaml" in row else ""
        growth = f"{row['growth']:.2f}" if "growth" in row else ""
        lines.append(
            f"| {row['series']} | {row['size']:,} | {read:.3f} | {libyaml} | {max(parse - read, 0):.3f} | {resolved:.3f} "
            f"| {load:.3f} | {row['checks']['min_s']:.3f} | {command} | {growth} |"
        )
    lines += [
        "",
        "read: YAML to positioned data (`yamlpos.read_located`); libyaml: `yaml.compose` with PyYAML's C loader "
        "(for comparison, not part of load); shape: pydantic validation (`loader.parse` less read); "
        "resolve: references, addresses and overlaps (`resolve.resolve` on the parsed file); checks: `requirements` "
        "(reachability replay, degrade and nft checks) without the host probe.",
    ]
    return "\n".join(lines) + "\n"


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", default="1000,2000,5000,10000")
    parser.add_argument("--addressed", default="1000,10000")
    parser.add_argument("--steps", default="1000,2000,5000,10000")
    parser.add_argument("--probes", default=f"250,500,{limits.MAX_PROBES}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--no-cli", action="store_true", help="skip the `drill validate` process timings")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "validate.json")
    parser.add_argument("--from-json", type=Path, help="re-render a result file, no measurement")
    args = parser.parse_args()
    if args.from_json:
        print(markdown(json.loads(args.from_json.read_text())), end="")
        return 0
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="drills-bench-validate-") as tmp:
        for name in SERIES:
            rows += run_series(
                name, _sizes(getattr(args, name)), args.repeats, args.budget_s, Path(tmp), not args.no_cli
            )
    _growth(rows)
    result = {"host": common.host_meta(), "repeats": args.repeats, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

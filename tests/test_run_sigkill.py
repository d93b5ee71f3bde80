"""`drill run` killed with SIGKILL at 20 seeded-random moments, then one `drill clean`: nothing of
the 20 runs remains (namespaces, and with them their links, qdiscs, routes and rules; service
processes; any process carrying this test's token), and the host's own interfaces, routes,
rules and qdiscs are unchanged.

Each kill moment is a phase of the run plus a seeded-random delay after the moment the run
reaches that phase (read from its journal and meta.json). A uniform draw over 0-3 s after launch
would leave a phase uncovered whenever interpreter start-up is slower or faster than usual; the
phases cycle so that every one of them is hit three or four times:

* launch:     0-1.5 s after the process starts (start-up, scenario load, deploy, probing)
* namespaces: 0-10 ms after the first namespace is journaled (namespaces and veths being made)
* service:    after the service is journaled (started, its readiness check running)
* probing:    after the fault intents are journaled (probes start, drill clock running, link up)
* fault:      after the link-down was applied (link down, its revert pending on the undo stack)
* teardown:   after meta.json says tearing-down (service stopped, namespaces being removed)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drills.scenario import load_scenario

pytestmark = pytest.mark.netns

SEED = 20261121
KILLS = 20
NETNS_DIR = Path("/run/netns")
TOKEN_ENV = "DRILLS_TEST_TOKEN"

SCENARIO = """\
version: 1
name: sigkill
seed: 7
topology:
  nodes:
    a: {routes: [{to: b, via: b:e1}]}
    b:
      routes: [{to: a, via: a:e1}]
      services:
        - {name: idle, command: sleep 300, ready: {command: sleep 0.1, timeout: 10s}}
  links: [{name: wire, endpoints: [a:e1, b:e1]}]
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 200}
timeline:
  - {id: cut, at: 1200ms, fault: link-down, link: wire, for: 800ms}
expect:
  - {probe: stream, step: cut, max_recovery: 3s}
duration: 3s
"""

# Phase -> the longest delay after it is reached (each within the phase on this scenario).
PHASES: dict[str, float] = {
    "launch": 1.5,
    "namespaces": 0.01,
    "service": 0.1,
    "probing": 1.1,
    "fault": 0.7,
    "teardown": 0.03,
}


@dataclass
class Kill:
    phase: str
    delay_s: float
    at_s: float | None = None  # seconds after launch when SIGKILL was sent
    returncode: int | None = None
    run_id: str | None = None
    seen: str = ""  # what the journal showed right after the kill

    def line(self, index: int) -> str:
        at = f"{self.at_s:.3f}" if self.at_s is not None else "-"
        return (
            f"  #{index:2d} {self.phase:<10} +{self.delay_s * 1e3:6.1f} ms  killed at {at} s  rc={self.returncode}"
            f"  run={self.run_id}  {self.seen}"
        )


def plan(seed: int = SEED, count: int = KILLS) -> list[Kill]:
    rng = random.Random(seed)
    names = list(PHASES)
    return [Kill(names[i % len(names)], rng.uniform(0.0, PHASES[names[i % len(names)]])) for i in range(count)]


def run_dirs(state_dir: Path) -> set[str]:
    root = state_dir / "runs"
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


def journal_ops(state_dir: Path, run_id: str) -> list[str]:
    try:
        lines = (state_dir / "runs" / run_id / "journal.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    ops = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):  # a line being written right now
            ops.append(str(json.loads(line).get("op")))
    return ops


def status(state_dir: Path, run_id: str) -> str | None:
    try:
        return str(json.loads((state_dir / "runs" / run_id / "meta.json").read_text()).get("status"))
    except (OSError, ValueError):
        return None


def reached(phase: str, state_dir: Path, run_id: str | None) -> bool:
    if phase == "launch":
        return True
    if run_id is None:
        return False
    if phase == "teardown":
        return status(state_dir, run_id) == "tearing-down"
    wanted = {"namespaces": "netns", "service": "service", "probing": "fault", "fault": "fault-apply"}[phase]
    return wanted in journal_ops(state_dir, run_id)


def describe(state_dir: Path, run_id: str | None) -> str:
    if run_id is None:
        return "no run directory yet"
    ops = journal_ops(state_dir, run_id)
    if not ops:
        return "run directory gone" if run_id not in run_dirs(state_dir) else "empty journal"
    counts = {op: ops.count(op) for op in dict.fromkeys(ops)}
    return f"status={status(state_dir, run_id)} journal={counts}"


def namespaces_of(run_ids: set[str]) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith("drill-") and n.split("-")[1] in run_ids)


def token_processes(token: str) -> list[str]:
    """Live processes (not zombies) other than this one whose environment carries the token."""
    found = []
    needle = f"{TOKEN_ENV}={token}".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry.name}/environ").read_bytes()
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if needle in environ.split(b"\0") and stat[stat.rindex(")") + 2] != "Z":
            found.append(f"{entry.name} ({cmdline})")
    return found


def _lines(*argv: str) -> list[str]:
    out = subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=30).stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def root_rules_and_qdiscs() -> list[str]:
    """The root namespace's policy rules and qdiscs (host_snapshot covers interfaces and routes)."""
    return (
        [f"rule {r}" for r in _lines("ip", "rule", "show")]
        + [f"rule6 {r}" for r in _lines("ip", "-6", "rule", "show")]
        + [f"qdisc {q}" for q in _lines("tc", "qdisc", "show")]
    )


def scenario_marks(path: Path) -> set[str]:
    """Interface names and addresses of the scenario: what its leak into the root would carry."""
    marks: set[str] = set()
    for node in load_scenario(path).topology.nodes:
        if node.loopback is not None:
            marks.add(str(node.loopback.ip))
        for iface in node.interfaces:
            marks.add(iface.name)
            for address in (iface.ipv4, iface.ipv6):
                if address is not None:
                    marks.update((str(address.ip), str(address.network)))
    return marks


def kill_at(kill: Kill, scenario: Path, state_dir: Path, out: Path) -> None:
    """Start `drill run`, wait for the kill's phase, wait its delay, SIGKILL it."""
    before = run_dirs(state_dir)
    argv = [sys.executable, "-m", "drills", "--state-dir", str(state_dir), "run", str(scenario), "--out", str(out)]
    log = out.with_suffix(".log")
    with open(log, "wb") as sink:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    launched = time.monotonic()
    try:
        deadline = launched + 30
        while True:
            new = run_dirs(state_dir) - before
            kill.run_id = next(iter(new), None)
            if reached(kill.phase, state_dir, kill.run_id):
                break
            if proc.poll() is not None:
                raise AssertionError(
                    f"drill run exited ({proc.returncode}) before reaching phase {kill.phase}:\n{log.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"drill run did not reach phase {kill.phase} within 30 s")
            time.sleep(0.001)
        time.sleep(kill.delay_s)
        kill.at_s = time.monotonic() - launched
        proc.kill()
        kill.returncode = proc.wait(timeout=30)
        kill.run_id = kill.run_id or next(iter(run_dirs(state_dir) - before), None)
        kill.seen = describe(state_dir, kill.run_id)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_run_sigkill_at_random_moments_then_clean(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    scenario = tmp_path / "sigkill.yaml"
    scenario.write_text(SCENARIO)
    marks = scenario_marks(scenario)
    root_before = root_rules_and_qdiscs()
    kills = plan()
    started = time.monotonic()

    def report() -> str:
        lines = [f"kill moments (seed {SEED}; phase + delay after it was reached):"]
        lines += [kill.line(i) for i, kill in enumerate(kills)]
        return "\n".join(lines)

    try:
        for i, kill in enumerate(kills):
            kill_at(kill, scenario, state_dir, tmp_path / f"out-{i}")
        print(report())
        ids = host_snapshot.run_ids()
        debris = namespaces_of(ids)
        services = [p for p in token_processes(host_snapshot.token) if "sleep 300" in p]

        # Every kill but the teardown ones landed while `drill run` was alive; and the runs left
        # something for clean to do.
        missed = [k for k in kills if k.phase != "teardown" and k.returncode != -9]
        assert not missed, f"killed too late (the run had finished):\n{report()}"
        assert debris, f"no namespace outlived the killed runs; nothing was tested\n{report()}"
        assert services, f"no service outlived the killed runs; nothing was tested\n{report()}"

        clean = subprocess.run(
            [sys.executable, "-m", "drills", "--state-dir", str(state_dir), "clean"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert clean.returncode == 0, f"drill clean failed:\n{clean.stdout}{clean.stderr}\n{report()}"

        assert run_dirs(state_dir) == set(), f"runs left in the state directory\n{report()}"
        assert namespaces_of(host_snapshot.run_ids()) == [], f"namespaces of the runs remain\n{report()}"
        deadline = time.monotonic() + 3  # a killed process may take a moment to be reaped
        while token_processes(host_snapshot.token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert token_processes(host_snapshot.token) == [], f"processes of the runs remain\n{report()}"
        root_after = root_rules_and_qdiscs()
        changed = sorted(set(root_before) ^ set(root_after))
        if not host_snapshot.strict:  # a shared host: only what carries this scenario's names counts
            changed = [line for line in changed if set(line.split()) & marks]
        assert not changed, f"root rules/qdiscs changed: {changed}\n{report()}"
        assert host_snapshot.leftovers() == [], report()
        print(f"20 kills and clean in {time.monotonic() - started:.1f} s")
    finally:
        # Whatever an assertion above left, leave the host clean for the next test.
        subprocess.run(
            [sys.executable, "-m", "drills", "--state-dir", str(state_dir), "clean", "--all"],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip

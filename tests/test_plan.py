"""`drill plan`: the resolved plan of every example, with no side effects; and the overlapping
faults the loader lets through because they compose (their refusals are pinned in test_loader)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from drills.backends import layout
from drills.engine.plan import NOT_SUPPORTED, RANDOM_SEED, RUN_PLACEHOLDER, Plan, build_plan, clock_text
from drills.engine.timeline import expand
from drills.hosts import describe, placement
from drills.netns.backend import NODE_SYSCTLS
from drills.scenario import Scenario, load_scenario

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "scenarios").glob("*.yaml"))
BROKEN = REPO / "tests" / "broken" / "overlap-link-faults.yaml"
WIDE = {"COLUMNS": "250"}  # table cells then hold whole lines: substrings can be looked for


def _plan(scenario: Scenario, kinds: set[str] | None = None) -> Plan:
    """The plan as `drill plan` builds it: laid out by the backend that would deploy it."""
    return build_plan(scenario, layout(scenario.topology, RUN_PLACEHOLDER), kinds)


def _drill_argv() -> list[str]:
    beside = Path(sys.executable).parent / "drill"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "drills"]


def _drill(*args: str, state_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_drill_argv(), "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


# Other tests on this host create and remove namespaces all the time, so `ip netns list` is
# compared inside a private mount namespace with its own empty /run/netns: a namespace made the
# iproute2 way (as drills makes them) by the command would show up there, and only there.
_ISOLATED = """
mkdir -p /run/netns
mount -t tmpfs drills-plan-test /run/netns
ip netns list > "$0/before"
"$@" > "$0/stdout" 2> "$0/stderr" && echo 0 > "$0/rc" || echo $? > "$0/rc"
ip netns list > "$0/after"
"""


def _plan_isolated(path: Path, state_dir: Path, work: Path) -> tuple[str, str, str, int, str]:
    """`drill plan PATH` in a private /run/netns: (netns before, after, stdout, exit code, stderr)."""
    work.mkdir()
    unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-ec", _ISOLATED, str(work)]
    argv = [*_drill_argv(), "--state-dir", str(state_dir), "plan", str(path)]
    subprocess.run([*unshare, *argv], check=True, timeout=60, env={**os.environ, **WIDE})
    read = {name: (work / name).read_text() for name in ("before", "after", "stdout", "stderr", "rc")}
    return read["before"], read["after"], read["stdout"], int(read["rc"]), read["stderr"]


def _load(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return load_scenario(path)


# --------------------------------------------------------------------------- the examples


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_plan_of_each_example_has_no_side_effects(path: Path, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"  # not created: the plan must not create it either
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("compares `ip netns list` in a private mount namespace: needs root, unshare and ip")
    before, after, out, code, err = _plan_isolated(path, state_dir, tmp_path / "isolated")
    assert code == 0, err
    assert before == after == ""
    assert not state_dir.exists()

    scenario = load_scenario(path)
    assert "nothing was changed" in out
    for node in scenario.topology.nodes:
        assert f"drill-RUN-{node.name}" in out
        if node.loopback is not None:
            assert str(node.loopback) in out
        for iface in node.interfaces:
            for address in (iface.ipv4, iface.ipv6):
                if address is not None:
                    assert str(address) in out, (node.name, iface.name)
    plan = _plan(scenario)
    for action in plan.actions:
        assert action.at in out
        assert action.describe in out
        for touch in action.touches:
            assert touch.what in out
            if touch.namespace is not None:
                assert f"{touch.namespace}: {touch.what}" in out
    for probe in plan.probes:
        assert probe.name in out


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_plan_json_parses_and_matches_the_library(path: Path, tmp_path: Path) -> None:
    result = _drill("plan", "--json", str(path), state_dir=tmp_path / "state")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    scenario = load_scenario(path)
    placed = placement.for_scenario(scenario)
    assert data.pop("hosts", None) == (describe.plan_json(*placed) if placed is not None else None)
    assert data == json.loads(json.dumps(_plan(scenario).to_json()))
    assert data["namespace_pattern"] == "drill-RUN-<node>"
    assert [a["at_s"] for a in data["actions"]] == sorted(a["at_s"] for a in data["actions"])
    assert not (tmp_path / "state").exists()


def test_quickstart_plan_contents() -> None:
    plan = _plan(load_scenario(REPO / "scenarios" / "quickstart-fibre-cut.yaml"))
    assert isinstance(plan, Plan)
    assert (plan.seed, plan.seed_text, plan.duration_s, plan.duration_given) == (1, "1", 15.0, True)
    cp = plan.nodes[0]
    assert (cp.name, cp.namespace, cp.loopback) == ("cp", "drill-RUN-cp", "198.19.0.1/32")
    assert [(i.name, i.ipv4, i.link, i.peer) for i in cp.interfaces] == [
        ("fibre0", "198.18.0.1/30", "fibre", "eoc:fibre0"),
        ("sat0", "198.18.0.5/30", "vsat", "eoc:sat0"),
    ]
    assert cp.routes == [
        "198.19.0.3/32 via 198.18.0.2 metric 10 src 198.19.0.1",
        "198.19.0.3/32 via 198.18.0.6 metric 100 src 198.19.0.1",
    ]
    assert plan.node_sysctls == [f"{key}={value}" for key, value in NODE_SYSCTLS]
    assert [(a.at, a.kind, a.label, a.fault) for a in plan.actions] == [
        ("T+00:03.000", "apply", "step0", "note"),
        ("T+00:05.000", "apply", "fibre-cut", "link-down"),
        ("T+00:10.000", "revert", "fibre-cut", "link-down"),
    ]
    cut = plan.actions[1]
    assert cut.supported and cut.describe == "link fibre: cp:fibre0, eoc:fibre0 down"
    assert [(t.namespace, t.what.split()[0]) for t in cut.touches] == [
        ("drill-RUN-cp", "cp:fibre0"),
        ("drill-RUN-eoc", "eoc:fibre0"),
    ]
    assert plan.actions[0].touches == []
    voice = plan.probes[0]
    assert (voice.source, voice.source_address, voice.to, voice.target_address) == (
        "cp",
        "198.19.0.1",
        "dispatch",
        "198.19.0.3",
    )
    assert plan.objectives[0].bounds == ["max_outage 50 ms", "max_recovery 1 s"]
    assert plan.refused == []


def test_plan_needs_no_root(tmp_path: Path) -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("runs the plan as nobody: needs root (to drop it) and setpriv")
    path = REPO / "scenarios" / "quickstart-fibre-cut.yaml"
    result = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *_drill_argv(), "plan", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    if result.returncode != 0 and "Permission denied" in result.stderr:
        pytest.skip("the virtualenv is not readable by nobody")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scenario"] == "quickstart-fibre-cut"


def test_broken_file_exits_2(tmp_path: Path) -> None:
    for args in (("plan",), ("plan", "--json")):
        result = _drill(*args, str(BROKEN), state_dir=tmp_path / "state")
        assert result.returncode == 2
        assert result.stdout == ""
        assert "overlaps link-flap 'wobble' on link fibre" in result.stderr
        assert "nothing was changed" in result.stderr
    assert not (tmp_path / "state").exists()


# --------------------------------------------------------------------------- timeline details

FLAPS = """\
version: 1
name: flaps
{seed}
topology:
  nodes: {{a: {{}}, b: {{}}}}
  links: [{{name: l, endpoints: [a:e1, b:e1]}}]
timeline:
  - {{id: wobble, at: 2s, fault: link-flap, link: l, period: 4s, duty: 25%, count: 2, jitter: 1s}}
  - {{id: hold, at: 20s, fault: link-down, link: l}}
"""


def test_flap_jitter_is_seeded_when_there_is_a_seed(tmp_path: Path) -> None:
    scenario = _load(tmp_path, FLAPS.format(seed="seed: 5"))
    plan = _plan(scenario)
    assert plan.seed_text == "5"
    flap = [a for a in plan.actions if a.fault == "link-flap"]
    expected = [a for a in expand(scenario, 5) if a.step.kind == "link-flap"]
    assert [(a.at_s, a.kind, a.label) for a in flap] == [(a.at_s, a.kind, a.label) for a in expected]
    assert all(a.jitter_s is None for a in flap)


def test_flap_jitter_without_a_seed_is_said_to_be_random(tmp_path: Path) -> None:
    plan = _plan(_load(tmp_path, FLAPS.format(seed="")))
    assert plan.seed is None and plan.seed_text == RANDOM_SEED
    flap = [(a.at_s, a.kind, a.label, a.jitter_s) for a in plan.actions if a.fault == "link-flap"]
    # The earliest instants (no jitter drawn), each said to be up to 1 s later.
    assert flap == [
        (2.0, "apply", "wobble", 1.0),
        (3.0, "revert", "wobble", 1.0),
        (6.0, "apply", "wobble#1", 1.0),
        (7.0, "revert", "wobble#1", 1.0),
    ]


def test_a_fault_never_reverted_on_the_timeline_is_undone_at_teardown(tmp_path: Path) -> None:
    plan = _plan(_load(tmp_path, FLAPS.format(seed="seed: 5")))
    last = plan.actions[-1]
    assert (last.label, last.kind, last.at_teardown, last.at_s) == ("hold", "revert", True, plan.duration_s)
    assert last.at == clock_text(30.0)
    assert last.describe == "link l: a:e1, b:e1 up again"
    assert sum(a.at_teardown for a in plan.actions) == 1


def test_faults_run_cannot_apply_are_marked_not_failed(tmp_path: Path) -> None:
    scenario = _load(tmp_path, FLAPS.format(seed="seed: 5"))
    plan = _plan(scenario, kinds={"note"})  # as if only `note` were registered
    hold = [a for a in plan.actions if a.label == "hold"]
    assert [(a.kind, a.supported, a.touches) for a in hold] == [("apply", False, []), ("revert", False, [])]
    assert hold[0].describe == f"link-down: link l ({NOT_SUPPORTED})"
    assert hold[1].describe == f"link-down: link l reverted ({NOT_SUPPORTED})"


def test_clock_text() -> None:
    assert clock_text(0.0) == "T+00:00.000"
    assert clock_text(5.25) == "T+00:05.250"
    assert clock_text(59.9996) == "T+01:00.000"
    assert clock_text(3725.25) == "T+62:05.250"


# --------------------------------------------------------------------------- overlaps that compose

COMPOSE = """\
version: 1
name: composing
seed: 3
topology:
  nodes:
    a:
      services:
        - {name: web, command: sleep 1000}
        - {name: dns, command: sleep 1000}
    b: {}
    c: {}
  links:
    - {name: ab, endpoints: [a:b, b:a]}
    - {name: bc, endpoints: [b:c, c:b]}
timeline:
  - {id: fade, at: 1s, fault: degrade, link: ab, direction: a-to-b, delay: 50ms, for: 20s}
  - {id: fade-back, at: 2s, fault: degrade, link: ab, direction: b-to-a, loss: 1%, for: 5s}
  - {id: cut, at: 3s, fault: link-down, link: ab, for: 2s}
  - {id: gray, at: 6s, fault: blackhole, link: ab, for: 2s}
  - {id: gray-too, at: 7s, fault: blackhole, link: ab, for: 2s}
  - {id: web-down, at: 10s, fault: service-stop, node: a, service: web, for: 5s}
  - {id: dns-down, at: 11s, fault: service-stop, node: a, service: dns, for: 5s}
  - {id: split, at: 12s, fault: partition, groups: [[a], [c]], for: 20s}
  - {id: split-too, at: 13s, fault: partition, groups: [[a, b], [c]], for: 5s}
  - {id: hang, at: 22s, fault: node-freeze, node: a, for: 5s}
  - {id: cut-bc, at: 23s, fault: link-down, link: bc, for: 2s}
  - {id: a-lost, at: 28s, fault: node-loss, node: a, for: 5s}
  - {id: c-lost, at: 29s, fault: node-loss, node: c, for: 5s}
  - {at: 30s, fault: exec, node: a, command: "true"}
  - {id: again, at: 40s, fault: link-down, link: ab}
  - {at: 45s, restore: again}
  - {id: after, at: 45s, fault: link-down, link: ab, for: 1s}
"""


def test_overlapping_faults_that_compose_are_accepted_and_planned(tmp_path: Path) -> None:
    """Each pair that overlaps here acts on different things in the kernel (drills.scenario.overlap.claims):
    degrades of opposite directions, a degrade with a link-down and a blackhole, two blackholes,
    stops of two services, two partitions, a partition with a freeze and a node-loss, a freeze
    with a link fault, neighbours lost together, an exec anywhere; and a link-down that starts
    when a restore ends the previous one."""
    plan = _plan(_load(tmp_path, COMPOSE))
    applied = [a.label for a in plan.actions if a.kind == "apply" and a.label not in ("step13",)]
    assert applied == [
        "fade", "fade-back", "cut", "gray", "gray-too", "web-down", "dns-down", "split", "split-too",
        "hang", "cut-bc", "a-lost", "c-lost", "again", "after",
    ]  # fmt: skip
    assert not any(a.at_teardown for a in plan.actions)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{at: 5s, fault: degrade, link: ab, direction: b-to-a, loss: 2%, for: 1s}", "one direction of a link"),
        ("{at: 4s, fault: blackhole, link: ab, for: 1s}", "nor while a blackhole needs it up"),
        ("{at: 24s, fault: service-stop, node: a, service: web, for: 1s}", "a node's processes"),
        ("{at: 14s, fault: service-stop, node: a, service: web, for: 1s}", "a service may not be stopped"),
        ("{at: 30s, fault: link-down, link: bc, for: 1s}", "a link may not be set down by two faults"),
    ],
)
def test_overlapping_faults_that_do_not_compose_are_refused(tmp_path: Path, step: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(COMPOSE + f"  - {step}\n", encoding="utf-8")
    result = _drill("validate", str(path), state_dir=tmp_path / "state")
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert result.stderr.count("overlaps") == 1, result.stderr

"""What loading resolves beyond the topology and the timeline: objectives as records (labels and
units fixed at load, verdicts judged from them), whether `duration` was given, what the backend
would lay out for `drill plan`; and the scenario package leaning on nothing but errors and leaves."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

from drills import doctor
from drills.backends import layout
from drills.measure import EventMetrics
from drills.objectives import evaluate
from drills.scenario import Scenario, load_scenario
from drills.scenario.expect import LatencyBound, Objective

DRILLS = Path(__file__).resolve().parent.parent / "drills"

SCENARIO = """
version: 1
name: records
topology:
  nodes: {{a: {{}}, b: {{}}}}
  links:
    - {{name: l, endpoints: [a:e1, b:e1]{profile}}}
probes:
  - {{name: s, type: udp-stream, from: a, to: b}}
timeline:
  - {{id: cut, at: 2s, fault: link-down, link: l, for: 3s}}
expect:
  - {{probe: s, step: cut, max_outage: 50ms}}
  - {{template: fast}}
  - {{name: steady, step: cut, event: revert, max_loss: 1%, latency: {{p99: 20ms}}, availability: 99.9%}}
  - {{max_recovery: 2s}}
{duration}"""


def _load(tmp_path: Path, *, profile: str = "", duration: str = "") -> Scenario:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(profile=profile, duration=duration), encoding="utf-8")
    return load_scenario(path)


def test_objectives_are_resolved_at_load(tmp_path: Path) -> None:
    assert _load(tmp_path).objectives == (
        Objective("expect[0]", probe="s", step="cut", max_outage_s=0.05),
        Objective("fast", template="fast"),
        Objective(
            "steady",
            name="steady",
            step="cut",
            event="revert",
            max_loss_pct=1.0,
            latency=LatencyBound(p99_s=0.02),
            availability_pct=99.9,
        ),
        Objective("expect[3]", max_recovery_s=2.0),
    )


def test_verdicts_are_named_by_the_resolved_labels(tmp_path: Path) -> None:
    scenario = _load(tmp_path)
    cut = EventMetrics("s", "cut", "apply", 1000, 40, 0.04, 0.04, 0.0, 0.045, 0.001)
    verdicts = evaluate(scenario.objectives, [cut], {"cut": "cut"})
    assert [(v.objective, v.passed) for v in verdicts] == [
        ("expect[0]: outage", True),  # 40 ms + 1 ms accuracy <= 50 ms
        ("fast: outage", True),
        ("expect[3]: recovery", True),
    ]


def test_duration_given_or_defaulted(tmp_path: Path) -> None:
    defaulted = _load(tmp_path)
    assert (defaulted.duration_given, defaulted.duration_s) == (False, 15.0)  # last step's end + 10 s
    given = _load(tmp_path, duration="duration: 30s\n")
    assert (given.duration_given, given.duration_s) == (True, 30.0)


def test_layout_names_what_deploy_would_build_without_probing_needlessly(tmp_path: Path) -> None:
    def no_probe() -> Mapping[str, bool]:
        raise AssertionError("no link's engine depends on the kernel here")

    plain = layout(_load(tmp_path).topology, "RUN", no_probe)
    assert plain.namespace_pattern == "drill-RUN-<node>"
    assert dict(plain.namespaces) == {"a": "drill-RUN-a", "b": "drill-RUN-b"}
    assert ("net.ipv4.ip_forward", "1") in plain.node_sysctls
    assert dict(plain.engines) == {"l": "kernel (auto)"}


@pytest.mark.parametrize(
    ("caps", "engine"),
    [
        ({doctor.NETEM: True, doctor.TUNTAP: True}, "kernel (auto)"),
        ({doctor.NETEM: False, doctor.TUNTAP: True}, "userspace (auto: this kernel has no netem)"),
    ],
)
def test_layout_engine_of_a_link_that_needs_netem(tmp_path: Path, caps: dict[str, bool], engine: str) -> None:
    asked: list[bool] = []

    def lookup() -> Mapping[str, bool]:
        asked.append(True)
        return caps

    scenario = _load(tmp_path, profile=", profile: geo-satellite")
    assert dict(layout(scenario.topology, "RUN", lookup).engines) == {"l": engine}
    assert asked == [True]  # asked once


def _imports(path: Path) -> set[str]:
    """The drills modules a file imports, lazily or not; imports for type checking only are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("drills.")}


LEAVES = ("drills.errors", "drills.impairment", "drills.clock", "drills.scenario")


@pytest.mark.parametrize("path", sorted((DRILLS / "scenario").glob("*.py")), ids=lambda p: p.name)
def test_the_scenario_package_leans_on_errors_and_leaves_only(path: Path) -> None:
    outside = {name for name in _imports(path) if not name.startswith(LEAVES)}
    assert not outside, f"{path.name} imports {sorted(outside)}"


def test_drill_plan_imports_no_backend() -> None:
    backends = ("drills.netns", "drills.docker", "drills.userspace", "drills.backends", "drills.doctor")
    for name in ("plan.py", "plan_pairs.py"):
        reached = {imported for imported in _imports(DRILLS / "engine" / name) if imported.startswith(backends)}
        assert not reached, f"engine/{name} imports {sorted(reached)}"

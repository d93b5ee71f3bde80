"""`topology: {include: [FILE, ...]}`: topology files joined into a scenario's own topology
(two imported backbones and the cables between them), each problem at its own file's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.errors import ScenarioError
from drills.scenario import Scenario, limits, load_scenario, validate_file

REPO = Path(__file__).resolve().parent.parent

EAST = "# east\nnodes:\n  e1: {}\n  e2: {}\nlinks:\n  - {name: east, endpoints: [e1:w, e2:w]}\n"
WEST = "nodes:\n  w1: {}\n  w2: {}\nlinks:\n  - {name: west, endpoints: [w1:e, w2:e]}\n"

JOINED = """\
version: 1
name: joined
topology:
  include: [east.yaml, west.yaml]
{extra}  links:
    - {{name: cable, endpoints: [e1:c, w1:c]}}
probes:
  - {{name: ping, type: icmp, from: e2, to: w2}}
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def _scenario(tmp_path: Path, east: str = EAST, west: str = WEST, extra: str = "") -> Path:
    _write(tmp_path, "east.yaml", east)
    _write(tmp_path, "west.yaml", west)
    return _write(tmp_path, "drill.yaml", JOINED.format(extra=extra))


def _routed_by(scenario: Scenario) -> str:
    node = scenario.topology.nodes[0]
    if any(service.name == "ospfd" for service in node.services):
        return "ospf"
    return "static" if node.routes else "none"


def _problems(path: Path) -> list[str]:
    return [str(p) for p in validate_file(path)]


def test_included_files_join_the_scenarios_own_topology(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario(tmp_path))
    # the files' nodes in include order, the scenario's own links first, then the files' links
    assert [node.name for node in scenario.topology.nodes] == ["e1", "e2", "w1", "w2"]
    assert [link.name for link in scenario.topology.links] == ["cable", "east", "west"]


def test_a_problem_in_a_joined_link_points_into_its_own_file(tmp_path: Path) -> None:
    west = _write(tmp_path, "west.yaml", WEST)
    path = _scenario(tmp_path, west=WEST.replace("w2:e]", "w3:e]"))
    assert _problems(path) == [f"{west}:5:36: topology.links[2].endpoints[1]: unknown node 'w3'"]


def test_a_node_defined_twice_is_refused_at_the_second_definition(tmp_path: Path) -> None:
    west = tmp_path / "west.yaml"
    path = _scenario(tmp_path, west=WEST.replace("w1: {}", "e1: {}"))
    assert _problems(path) == [
        f"{west}:2:3: topology.nodes.e1: node 'e1' is defined twice (first at {tmp_path / 'east.yaml'}:3): node names "
        "must be unique across joined topology files (rename one: `drill import zoo` names come from the graph's labels)"
    ]


def test_settings_from_the_files_must_agree_unless_the_scenario_chooses(tmp_path: Path) -> None:
    east = "routing: ospf\n" + EAST
    west = "routing: static-shortest-path\n" + WEST
    assert _problems(_scenario(tmp_path, east=east, west=west)) == [
        f"{tmp_path / 'west.yaml'}:1:1: topology.routing: `routing:` differs from an earlier file's "
        f"(at {tmp_path / 'east.yaml'}:1); set `routing:` in the scenario's `topology:` to choose"
    ]
    chosen = load_scenario(_scenario(tmp_path, east=east, west=west, extra="  routing: static-shortest-path\n"))
    assert _routed_by(chosen) == "static"
    agreed = load_scenario(_scenario(tmp_path, east=east, west="routing: ospf\n" + WEST))
    assert _routed_by(agreed) == "ospf"


def test_includes_do_not_nest(tmp_path: Path) -> None:
    path = _scenario(tmp_path, west="include: [east.yaml]\n" + WEST)
    assert _problems(path) == [
        f"{tmp_path / 'west.yaml'}:1:1: includes do not nest: list every file under the scenario's `topology: include:` "
        "(a topology file holds only `addressing:`, `nodes:`, `links:`, `segments:`, `routing:`, `routing_timers:`); "
        "is this the right file?"
    ]


def test_a_missing_file_is_reported_at_its_line_in_the_list(tmp_path: Path) -> None:
    path = _write(tmp_path, "drill.yaml", JOINED.format(extra=""))
    _write(tmp_path, "west.yaml", WEST)
    assert _problems(path) == [
        f"{path}:4:13: topology.include[0]: topology file 'east.yaml' not found (looked at {tmp_path / 'east.yaml'}); "
        "the path is relative to the scenario file"
    ]


def test_a_file_that_is_not_a_topology_is_not_quoted(tmp_path: Path) -> None:
    secret = _write(tmp_path, "west.yaml", "password: hunter2\n")
    problems = _problems(_scenario(tmp_path, west=secret.read_text()))
    assert len(problems) == 1 and "hunter2" not in problems[0] and "password" not in problems[0], problems


def test_the_number_of_files_is_bounded(tmp_path: Path) -> None:
    names = ", ".join(["east.yaml"] * (limits.MAX_TOPOLOGY_INCLUDES + 1))
    path = _scenario(tmp_path)
    path.write_text(path.read_text().replace("[east.yaml, west.yaml]", f"[{names}]"), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    first = caught.value.problems[0]
    assert (first.line, first.path) == (4, "topology.include") and "more than the 16 accepted" in first.message


def test_the_japan_australia_scenario_joins_two_imported_backbones() -> None:
    scenario = load_scenario(REPO / "scenarios" / "japan-australia-cables.yaml")
    names = {node.name for node in scenario.topology.nodes}
    assert len(names) == 30 + 19 and {"KDDI-Otemachi", "Sydney1"} <= names
    links = {link.name: link for link in scenario.topology.links}
    assert len(links) == 33 + 24 + 3
    assert _routed_by(scenario) == "ospf"

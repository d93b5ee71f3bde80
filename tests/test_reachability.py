"""Static reachability of probes through resolved routes (unit: no kernel involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.scenario import load_scenario, reachability

ROOT = Path(__file__).resolve().parent.parent

CHAIN = """\
version: 1
name: chain
topology:
  nodes:
    a:
      routes:
{a_routes}
    r:
      routes:
{r_routes}
    b:
      routes:
{b_routes}
  links:
    - {{name: ar, endpoints: [a:eth0, r:a0]}}
    - {{name: rb, endpoints: [r:b0, b:eth0]}}
probes:
  - {{name: s, type: udp-stream, from: a, to: b, echo: {echo}}}
timeline:
  - {{at: T+00:01, fault: link-down, link: rb, for: 1s}}
duration: 3s
"""

GOOD_A = "        - {to: b, via: r:a0}"
GOOD_R = "        - {to: a, via: a:eth0}\n        - {to: b, via: b:eth0}"
GOOD_B = "        - {to: a, via: r:b0}"


def _problems(tmp_path: Path, a: str = GOOD_A, r: str = GOOD_R, b: str = GOOD_B, echo: str = "true") -> list[str]:
    path = tmp_path / "chain.yaml"
    path.write_text(CHAIN.format(a_routes=a, r_routes=r, b_routes=b, echo=echo))
    return [str(p) for p in reachability.problems(load_scenario(path))]


def test_complete_routes_have_no_problem(tmp_path: Path) -> None:
    assert _problems(tmp_path) == []


def test_missing_return_route_is_found_and_located(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, b="        []".replace("        []", "        - {to: 198.18.99.0/24, via: r:b0}"))
    assert "chain.yaml:" in problem and "probes[0].to" in problem
    assert "node b has no route to" in problem
    assert "Add the missing route" in problem


def test_one_way_stream_needs_no_return_route(tmp_path: Path) -> None:
    assert _problems(tmp_path, b="        - {to: 198.18.99.0/24, via: r:b0}", echo="false") == []


def test_missing_forward_route_names_the_node(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, r="        - {to: a, via: a:eth0}")
    assert "node r has no route to" in problem


def test_routing_loop_is_reported(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, r="        - {to: a, via: a:eth0}\n        - {to: b, via: a:eth0}", a=GOOD_A)
    assert "routing loop" in problem and "a → r → a" in problem


def test_services_mean_a_daemon_may_route(tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    text = CHAIN.format(a_routes=GOOD_A, r_routes="        - {to: a, via: a:eth0}", b_routes=GOOD_B, echo="true")
    text = text.replace("    r:\n", "    r:\n      services:\n        - {name: routing, command: sleep 60}\n")
    path.write_text(text)
    scenario = load_scenario(path)
    assert not reachability.applies_to(scenario.topology)
    assert reachability.problems(scenario) == []


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_statically_reachable(path: Path) -> None:
    assert reachability.problems(load_scenario(path)) == []


def test_reply_must_reach_the_loopback_the_probe_binds_to(tmp_path: Path) -> None:
    """Two nodes on one link: the target's interface is connected, but the probe sends from
    its loopback, and the far end has no route back to that loopback."""
    path = tmp_path / "pair.yaml"
    path.write_text(
        "version: 1\nname: pair\ntopology:\n  nodes: {a: {}, b: {}}\n"
        "  links:\n    - {name: ab, endpoints: [a:e1, b:e1]}\n"
        "probes:\n  - {name: s, type: udp-stream, from: a, to: b:e1}\n"
        "timeline:\n  - {at: T+00:01, fault: link-down, link: ab, for: 1s}\nduration: 3s\n"
    )
    (problem,) = [str(p) for p in reachability.problems(load_scenario(path))]
    assert "node b has no route to" in problem

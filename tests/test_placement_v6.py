"""A cross link's MTU over an IPv6 underlay: VXLAN costs 70 bytes there (IPv6's 40-byte header
against IPv4's 20), so placement, `drill plan` and the wire's route check agree on 70, not 50."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.backend import VXLAN_OVERHEAD_V4_BYTES, VXLAN_OVERHEAD_V6_BYTES, vxlan_overhead_bytes
from drills.errors import ScenarioError
from drills.hosts import describe
from drills.hosts.inventory import load_inventory
from drills.hosts.placement import assign_vnis, host_parts, place
from drills.hosts.records import Inventory, Placement
from drills.scenario import load_scenario
from drills.scenario.resolved import HostsSpec, Scenario

V4 = """\
[lab]
h1 ansible_host=192.0.2.1
h2 ansible_host=192.0.2.2
"""
V6 = """\
[lab]
h1 ansible_host=192.0.2.1 drills_underlay=2001:db8::1
h2 ansible_host=2001:db8::2 drills_underlay_mtu=9000
"""
MIXED = V4 + "h3 ansible_host=2001:db8::3\nh4 ansible_host=2001:db8::4\n"


def _scenario(tmp_path: Path, links: list[tuple[str, str]], *, mtu: int | None = None) -> Path:
    """Nodes a..d on hosts h1..h4 (a, b on h1, h2), linked as `links` (interfaces named after the
    far node); node a's interface to b asks for `mtu`."""
    ends: dict[str, list[str]] = {}
    for x, y in links:
        ends.setdefault(x, []).append(y)
        ends.setdefault(y, []).append(x)
    lines = ["version: 1", "name: v6", "topology:", "  addressing: {ipv4: 10.0.0.0/8}", "  nodes:"]
    for node, host in (("a", "h1"), ("b", "h2"), ("c", "h3"), ("d", "h4")):
        if node in ends:
            asked = f", interfaces: {{eb: {{mtu: {mtu}}}}}" if node == "a" and mtu is not None else ""
            lines.append(f"    {node}: {{host: {host}{asked}}}")
    lines.append("  links:")
    lines.extend(f"    - {{endpoints: [{x}:e{y}, {y}:e{x}]}}" for x, y in links)
    path = tmp_path / "s.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _placed(
    tmp_path: Path, inventory: str, links: list[tuple[str, str]], *, mtu: int | None = None
) -> tuple[Scenario, Inventory, Placement]:
    (tmp_path / "hosts.ini").write_text(inventory)
    loaded = load_inventory(tmp_path / "hosts.ini")
    scenario = load_scenario(_scenario(tmp_path, links, mtu=mtu))
    placement = place(scenario.topology, loaded, HostsSpec(None, "given", 14789), problem=scenario.problem)
    return scenario, loaded, placement


def test_the_overhead_is_ipv6s_when_any_underlay_is_ipv6() -> None:
    assert (VXLAN_OVERHEAD_V4_BYTES, VXLAN_OVERHEAD_V6_BYTES) == (50, 70)
    assert vxlan_overhead_bytes("192.0.2.1", "192.0.2.2") == 50
    assert vxlan_overhead_bytes("2001:db8::1", "2001:db8::2") == 70
    assert vxlan_overhead_bytes("192.0.2.1", "2001:db8::2") == 70
    assert vxlan_overhead_bytes("", "2001:db8::2") == 70
    # An address not known yet (a host without an underlay, refused by placement) counts as neither.
    assert vxlan_overhead_bytes("", "") == 50


def test_an_ipv6_underlay_takes_70_bytes_from_the_smaller_mtu(tmp_path: Path) -> None:
    scenario, inventory, placement = _placed(tmp_path, V6, [("a", "b")])
    (link,) = placement.cross
    assert link.mtu == 1500 - 70  # h1's 1500 is the smaller; h2's is 9000
    (end_a, end_b) = (part.cross[0] for part in host_parts(scenario.topology, inventory, assign_vnis(placement, "r1")))
    assert (end_a.local_ip, end_a.remote_ip, end_a.mtu) == ("2001:db8::1", "2001:db8::2", 1430)
    assert (end_b.local_ip, end_b.remote_ip, end_b.mtu) == ("2001:db8::2", "2001:db8::1", 1430)


def test_an_ipv4_underlay_keeps_50_bytes(tmp_path: Path) -> None:
    (link,) = _placed(tmp_path, V4, [("a", "b")])[2].cross
    assert link.mtu == 1450


def test_an_mtu_that_fits_ipv4_but_not_ipv6_is_refused_naming_the_overhead(tmp_path: Path) -> None:
    _placed(tmp_path, V4, [("a", "b")], mtu=1450)
    with pytest.raises(ScenarioError) as caught:
        _placed(tmp_path, V6, [("a", "b")], mtu=1450)
    (problem,) = caught.value.problems
    assert problem.path == "topology.nodes.a.interfaces.eb.mtu"
    assert "its tunnel carries at most 1430 bytes (underlay MTU 1500 less 70 of VXLAN over IPv6)" in problem.message
    _placed(tmp_path, V6, [("a", "b")], mtu=1430)


def test_plan_states_the_overhead_each_family_costs(tmp_path: Path) -> None:
    def header(inventory: str, links: list[tuple[str, str]]) -> str:
        _s, loaded, placement = _placed(tmp_path, inventory, links)
        lines = describe.plan_lines(loaded, placement)
        return next(line for line in lines if "cross-host link" in line)

    assert header(V4, [("a", "b")]).endswith("MTU = the smaller underlay MTU less 50 bytes over an IPv4 underlay)")
    assert header(V6, [("a", "b")]).endswith("MTU = the smaller underlay MTU less 70 bytes over an IPv6 underlay)")
    both = header(MIXED, [("a", "b"), ("c", "d")])
    assert both.endswith("less 50 bytes over an IPv4 underlay, 70 over IPv6)")
    _s, loaded, placement = _placed(tmp_path, MIXED, [("a", "b"), ("c", "d")])
    assert [line for line in describe.plan_lines(loaded, placement) if "<->" in line] == [
        "  a:eb--b:ea: h1 <-> h2, VNI index 0, MTU 1450",
        "  c:ed--d:ec: h3 <-> h4, VNI index 1, MTU 1430",
    ]

"""LAN segments resolved without a kernel: members addressed in order from the subnet (given or
from the pool), routes through a segment, the forwarding replay across one, faults naming a
segment or a member; and every mistake pinned with its file, line and message (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Interface, IPv4Network, ip_address
from pathlib import Path

import pytest

from drills.errors import ScenarioError
from drills.hosts.placement import for_scenario
from drills.scenario import load_scenario
from drills.scenario.loader import validate_file
from drills.scenario.reachability import trace
from drills.scenario.resolve_segments import default_prefix
from drills.scenario.steps import SegmentDownStep

HEAD = "version: 1\nname: seg\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "seg.yaml"
    path.write_text(HEAD + body)
    return path


def problems(tmp_path: Path, body: str) -> list[str]:
    path = write(tmp_path, body)
    return [str(p).removeprefix(f"{path}:") for p in validate_file(path)]


VRRP_LAN = """\
topology:
  nodes:
    gw1: {routes: [{to: srv, via: srv:wan0}]}
    gw2: {}
    pc: {loopback: none, routes: [{to: default, via: gw1:lan0}]}
    srv: {routes: [{to: default, via: gw1:wan0}]}
  segments:
    - name: lan
      members: [gw1:lan0, gw2:lan0, pc:eth0]
    - {name: lan2, members: [gw1:x, gw2:x], subnet: 198.18.60.0/29}
  links:
    - {name: wan, endpoints: [gw1:wan0, srv:wan0]}
probes:
  - {name: p, type: udp-stream, from: pc, to: srv, rate_pps: 100}
timeline:
  - {id: port, at: 2s, fault: link-down, link: gw2:lan0, for: 1s}
  - {id: sw, at: 4s, fault: link-flap, link: lan, period: 1s, duty: 50, count: 2}
  - {id: one, at: 7s, fault: link-down, link: lan, end: pc:eth0, for: 1s}
  - {id: lost, at: 9s, fault: node-loss, node: gw2, for: 1s}
"""


def test_members_are_addressed_in_order_and_faults_resolve(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, VRRP_LAN))
    topo = scenario.topology
    lan, lan2 = topo.segments
    # The default subnet: the smallest from the pool holding the members and one more address
    # (a virtual gateway's), taken before the links' /30s.
    assert default_prefix(3) == 29 and default_prefix(6) == 28 and default_prefix(64) == 25
    assert [m.ipv4 for m in lan.members] == [IPv4Interface(f"198.18.0.{n}/29") for n in (1, 2, 3)]
    assert [m.ipv4 for m in lan2.members] == [IPv4Interface(f"198.18.60.{n}/29") for n in (1, 2)]
    assert topo.link("wan").a.ipv4 == IPv4Interface("198.18.0.9/30")
    assert topo.node("gw1").interface("lan0") == lan.members[0]
    pc = topo.node("pc")
    assert pc.routes[0].gateway == ip_address("198.18.0.1")  # `via: gw1:lan0`, a member's address
    # The replay crosses the segment to the member holding the next hop, and back.
    assert trace(topo, "pc", ip_address("198.19.0.3")).nodes == ("pc", "gw1", "srv")

    steps = {s.name: s for s in scenario.steps}
    assert all(isinstance(steps[n], SegmentDownStep) for n in ("port", "sw", "one"))
    port, sw, one = (steps[n] for n in ("port", "sw", "one"))
    assert isinstance(port, SegmentDownStep) and [e.endpoint for e in port.ends] == ["gw2:lan0"]
    assert isinstance(sw, SegmentDownStep) and len(sw.ends) == 3 and sw.flap is not None
    assert isinstance(one, SegmentDownStep) and [e.endpoint for e in one.ends] == ["pc:eth0"]
    # pc's default route goes out of its segment port: the revert puts it back.
    assert one.routes == ((one.ends[0], pc.routes),)
    lost = steps["lost"]
    assert ("gw2:lan0", "gw2:lan0") in [(a.endpoint, b.endpoint) for a, b in lost.links]  # type: ignore[attr-defined]


def test_a_route_via_a_virtual_address_of_the_segment_resolves(tmp_path: Path) -> None:
    body = """\
topology:
  nodes:
    gw1: {services: [{name: vrrp, command: sleep 60}]}
    gw2: {}
    pc: {loopback: none, routes: [{to: default, via: 198.18.50.254}]}
  segments:
    - {name: lan, members: [gw1:lan0, gw2:lan0, pc:eth0], subnet: 198.18.50.0/24}
"""
    topo = load_scenario(write(tmp_path, body)).topology
    assert topo.node("pc").routes[0].gateway == ip_address("198.18.50.254")
    assert topo.segment("lan").members[2].ipv4 == IPv4Interface("198.18.50.3/24")
    assert topo.segment("pc:eth0").name == "lan"


NODES = "topology:\n  nodes: {a: {}, b: {}, c: {}}\n"

BROKEN = {
    "unknown-node": (
        NODES + "  segments:\n    - {name: lan, members: [a:e0, d:e0]}\n",
        ["6:35: topology.segments[0].members[1]: unknown node 'd'"],
    ),
    "too-few": (
        NODES + "  segments:\n    - {name: lan, members: [a:e0]}\n",
        ["6:28: topology.segments[0].members: needs at least 2 item(s)"],
    ),
    "used-by-a-link": (
        NODES + "  links: [{endpoints: [a:e0, b:e0]}]\n  segments:\n    - {name: lan, members: [a:e0, c:e0]}\n",
        [
            "7:29: topology.segments[0].members[0]: endpoint a:e0 is already used (line 5); "
            "each interface joins one link or one segment"
        ],
    ),
    "used-by-two-segments": (
        NODES + "  segments:\n    - {name: s1, members: [a:e0, b:e0]}\n    - {name: s2, members: [c:e0, a:e0]}\n",
        [
            "7:34: topology.segments[1].members[1]: endpoint a:e0 is already used (line 6); "
            "each interface joins one link or one segment"
        ],
    ),
    "name-of-a-link": (
        NODES + "  links: [{name: lan, endpoints: [a:e0, b:e0]}]\n  segments:\n    - {name: lan, members: [a:e1, c:e0]}\n",
        [
            "7:14: topology.segments[0].name: segment name 'lan' is the name of the link at line 5; "
            "links and segments need distinct names"
        ],
    ),
    "twice-the-name": (
        NODES + "  segments:\n    - {name: lan, members: [a:e0, b:e0]}\n    - {name: lan, members: [a:e1, c:e0]}\n",
        ["7:14: topology.segments[1].name: segment name 'lan' is already used by the segment at line 6; segment names are unique"],
    ),
    "subnet-too-small": (
        NODES + "  segments:\n    - {name: lan, members: [a:e0, b:e0, c:e0], subnet: 198.18.5.0/30}\n",
        [
            "6:56: topology.segments[0].subnet: 198.18.5.0/30 has 2 host addresses, too few for the segment's "
            "3 members; give a larger subnet (such as a /29)"
        ],
    ),
    "overlapping-subnet": (
        NODES
        + "  segments:\n    - {name: s1, members: [a:e0, b:e0], subnet: 10.0.0.0/24}\n"
        + "    - {name: s2, members: [a:e1, c:e0], subnet: 10.0.0.128/25}\n",
        [
            "7:49: topology.segments[1].subnet: subnet 10.0.0.128/25 overlaps 10.0.0.0/24 given at line 6; "
            "segments and links need separate subnets"
        ],
    ),
    "address-on-a-member": (
        "topology:\n  nodes:\n    a: {interfaces: {e0: {ipv4: 10.1.1.1/24}}}\n    b: {}\n"
        + "  segments:\n    - {name: lan, members: [a:e0, b:e0]}\n",
        [
            "5:33: topology.nodes.a.interfaces.e0.ipv4: a:e0 is a member of segment lan, addressed from its subnet "
            "in member order; set the segment's `subnet` (or `ipv6`) and order its members instead"
        ],
    ),
    "not-a-member": (
        NODES
        + "  segments:\n    - {name: lan, members: [a:e0, b:e0]}\n"
        + "timeline:\n  - {at: 1s, fault: link-down, link: lan, end: c:e0, for: 1s}\n",
        ["8:48: timeline[0].end: 'c:e0' is not a member of segment lan (a:e0, b:e0)"],
    ),
    "degrade-a-segment": (
        NODES
        + "  segments:\n    - {name: lan, members: [a:e0, b:e0]}\n"
        + "timeline:\n  - {at: 1s, fault: degrade, link: lan, loss: 5%, for: 1s}\n",
        [
            "8:36: timeline[0].link: 'lan' is a LAN segment; degrade one member's port: `link: NODE:IFACE` "
            "(one of a:e0, b:e0; a-to-b is member -> segment)"
        ],
    ),
    "node-loss-and-its-port": (
        NODES
        + "  segments:\n    - {name: lan, members: [a:e0, b:e0]}\n"
        + "timeline:\n  - {at: 1s, fault: node-loss, node: b, for: 2s}\n"
        + "  - {at: 2s, fault: link-down, link: lan, end: b:e0, for: 2s}\n",
        [
            "9:5: timeline[1]: link-down at T+00:02 overlaps node-loss on segment lan (line 8) from T+00:01 to T+00:03; "
            "a segment's port may not be set down by two faults at once: move one, or shorten the first one's `for:`"
        ],
    ),
    "two-degrades-of-one-port": (
        NODES
        + "  segments:\n    - {name: lan, members: [a:e0, b:e0]}\n"
        + "timeline:\n  - {at: 1s, fault: degrade, link: a:e0, rate: 1mbit, for: 2s}\n"
        + "  - {at: 2s, fault: degrade, link: a:e0, direction: a-to-b, rate: 2mbit, for: 2s}\n",
        [
            "9:5: timeline[1]: degrade at T+00:02 overlaps degrade on link lan/a:e0 (line 8) from T+00:01 to T+00:03; "
            "one direction of a link takes one degrade at a time: move one, or shorten the first one's `for:`"
        ],
    ),
    "blackhole-a-segment": (
        NODES
        + "  segments:\n    - {name: lan, members: [a:e0, b:e0]}\n"
        + "timeline:\n  - {at: 1s, fault: blackhole, link: lan, for: 1s}\n",
        [
            "8:38: timeline[0].link: 'lan' is on LAN segment lan; blackhole applies to point-to-point links only: "
            "cut the nodes apart with a `partition`, or blackhole a point-to-point link"
        ],
    ),
    "two-faults-on-one-port": (
        NODES
        + "  segments:\n    - {name: lan, members: [a:e0, b:e0]}\n"
        + "timeline:\n  - {at: 1s, fault: link-down, link: lan, for: 2s}\n"
        + "  - {at: 2s, fault: link-down, link: a:e0, for: 2s}\n",
        [
            "9:5: timeline[1]: link-down at T+00:02 overlaps link-down on segment lan (line 8) from T+00:01 to T+00:03; "
            "a segment's port may not be set down by two faults at once: move one, or shorten the first one's `for:`"
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_mistake_is_located_and_explained(tmp_path: Path, case: str) -> None:
    body, expected = BROKEN[case]
    assert problems(tmp_path, body) == expected


def test_the_cli_exits_2_with_the_location(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN["subnet-too-small"][0])
    done = subprocess.run(
        [sys.executable, "-m", "drills", "validate", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert f"{path}:6:56: topology.segments[0].subnet: 198.18.5.0/30 has 2 host addresses" in done.stderr + done.stdout


def test_the_default_subnet_skips_a_given_one(tmp_path: Path) -> None:
    body = NODES + (
        "  addressing: {ipv4: 10.9.0.0/24}\n"
        "  segments:\n    - {name: s1, members: [a:e0, b:e0]}\n"
        "    - {name: s2, members: [a:e1, c:e1], subnet: 10.9.0.0/29}\n"
    )
    lan1, lan2 = load_scenario(write(tmp_path, body)).topology.segments
    assert lan1.members[0].ipv4 is not None and lan1.members[0].ipv4.network == IPv4Network("10.9.0.8/29")
    assert lan2.members[1].ipv4 == IPv4Interface("10.9.0.2/29")


# --------------------------------------------------------------------------- several machines

INVENTORY = "[lab]\nh1 ansible_host=192.0.2.1\nh2 ansible_host=192.0.2.2\n"


def placed(tmp_path: Path, nodes: str) -> Path:
    (tmp_path / "hosts.ini").write_text(INVENTORY)
    return write(
        tmp_path,
        "hosts: {inventory: hosts.ini}\ntopology:\n  nodes:\n"
        + nodes
        + "  segments:\n    - {name: lan, members: [a:e0, b:e0, c:e0]}\n"
        + "  links: [{endpoints: [c:e1, d:e0]}, {endpoints: [d:e1, e:e0]}, {endpoints: [e:e1, f:e0]}]\n",
    )


def test_a_segment_split_across_hosts_is_refused_at_its_line(tmp_path: Path) -> None:
    nodes = "".join(f"    {n}: {{host: {h}}}\n" for n, h in zip("abcdef", ("h1", "h2", "h1", "h2", "h2", "h2"), strict=True))
    path = placed(tmp_path, nodes)
    with pytest.raises(ScenarioError) as caught:
        for_scenario(load_scenario(path))
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:13:7: topology.segments[0]: segment lan has members on 2 hosts (h1: a, c; h2: b); a segment is a "
        "bridge on one machine: give its members' nodes the same `host:`"
    ]


def test_automatic_placement_keeps_a_segment_on_one_host(tmp_path: Path) -> None:
    # Balanced 3/3: the members together, the chain d-e-f on the other host (one cross link).
    path = placed(tmp_path, "".join(f"    {n}: {{}}\n" for n in "abcdef"))
    found = for_scenario(load_scenario(path))
    assert found is not None
    _inventory, placement = found
    assert len({placement.host_of[n] for n in "abc"}) == 1

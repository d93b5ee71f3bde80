"""Cross-host links, without a kernel: what the journal accepts of a wire namespace, and how a
host's part is cut out of a topology (and refused when it does not fit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wire_testing import load_topology

from drills.backend import NETEM, TUNTAP, CrossEnd, HostPart
from drills.engines import engines
from drills.errors import BadInput, EnvironmentProblem
from drills.journal import Journal
from drills.netns import wire
from drills.netns.backend import NetnsBackend
from drills.netns.part import cross_engines, deploy_part, restrict
from drills.remote.backend import merge_engines
from drills.runs import RunStore
from drills.scenario.resolved import Topology

RUN = "0a1b2c"
WIRE = f"drill-{RUN}-_hostA"
NODE_NS = f"drill-{RUN}-n1"


def test_the_journal_accepts_a_wire_namespace_only_where_one_is_made_a_veth_or_a_relay_ends(tmp_path: Path) -> None:
    vxlan = {"op": "vxlan", "ns": WIRE, "name": "wx7", "link": "x", "vni": 7, "local": "a", "remote": "b", "port": 14789}
    good = [
        {"op": "netns", "name": WIRE},
        {"op": "veth", "a": [NODE_NS, "x"], "b": [WIRE, "wv7"]},
        vxlan,
        {"op": "created", "kind": "netns", "names": [WIRE]},
        {"op": "not-created", "kind": "netns", "names": [WIRE]},
        # A cross link served by the userspace engine: a relay between a node's TAP and the wire's.
        {"op": "relay", "link": "x", "ns": [WIRE, NODE_NS]},
        {"op": "relay", "link": "x", "ns": [NODE_NS, WIRE]},
        {"op": "process", "ns": WIRE, "pid": 4242, "start": 17, "relay": "x"},
    ]
    bad = [
        ({"op": "process", "ns": WIRE, "pid": 4242, "start": 17, "service": "web"}, "not one of this run's"),
        ({"op": "service", "ns": WIRE, "node": "n1", "name": "web"}, "not one of this run's"),
        ({"op": "relay", "link": "x", "ns": [WIRE, WIRE]}, "not one of this run's"),  # a relay serves a node
        ({"op": "container", "name": WIRE, "node": "_hostA"}, "not named drill-RUN-NODE"),
        ({"op": "netns-attach", "name": WIRE}, "not one of this run's"),
        ({"op": "created", "kind": "netns-attach", "names": [WIRE]}, "not one of this run's"),
        ({"op": "netns", "name": "drill-ffffff-_hostA"}, "not one of this run's"),  # another run's
        ({"op": "netns", "name": f"drill-{RUN}-_"}, "not one of this run's"),
        ({"op": "netns", "name": f"drill-{RUN}-_../../proc/1/ns/net"}, "not one of this run's"),
        ({**vxlan, "ns": NODE_NS}, "not a wire namespace"),
        ({**vxlan, "vni": 2**24}, "VNI"),
        ({**vxlan, "vni": True}, "VNI"),
        ({**vxlan, "port": 0}, "UDP port"),
        ({**vxlan, "name": "a/b"}, "valid interface"),
    ]
    path = tmp_path / "journal.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [*good, *(e for e, _ in bad)]) + "\n")
    checked = Journal(path, RUN).checked()
    assert checked.entries == good
    assert len(checked.refused) == len(bad)
    for refused, (_entry, expected) in zip(checked.refused, bad, strict=True):
        assert expected in refused.why, refused


def test_wire_names() -> None:
    assert wire.wire_namespace(RUN, "hostA") == WIRE
    assert wire.wire_namespace(RUN, "10.0.0.7") == f"drill-{RUN}-_10.0.0.7"
    for host in ("", "../x", "a b", "-a", "x" * 64):
        with pytest.raises(BadInput, match="cannot name a wire namespace"):
            wire.wire_namespace(RUN, host)
    # The largest VNI still gives interface names Linux accepts (15 bytes at most).
    assert max(len(f(2**24 - 1)) for f in (wire.hidden_ifname, wire.vxlan_ifname, wire.bridge_ifname)) <= 15


def end(**changes: object) -> CrossEnd:
    fields: dict[str, object] = {
        "link": "x", "node": "n1", "ifname": "x", "vni": 7, "local_ip": "192.0.2.1",
        "remote_ip": "192.0.2.2", "port": 14789, "mtu": 1450,
    }  # fmt: skip
    fields.update(changes)
    return CrossEnd(**fields)  # type: ignore[arg-type]


def test_cross_ends_are_checked_all_at_once() -> None:
    wire.check_ends([end(), end(link="y", vni=8, local_ip="2001:db8::1", remote_ip="2001:db8::2")], {"n1": NODE_NS})
    ends = [
        end(node="n9"),
        end(link="y", vni=0),
        end(link="z"),  # VNI 7 again
        end(link="p", vni=9, port=70000),
        end(link="m", vni=10, mtu=40),
        end(link="v", vni=11, remote_ip="2001:db8::2"),
        end(link="s", vni=12, remote_ip="192.0.2.1"),
        end(link="b", vni=13, local_ip="not-an-address"),
    ]
    with pytest.raises(BadInput) as caught:
        wire.check_ends(ends, {"n1": NODE_NS})
    message = str(caught.value)
    for expected in (
        "node n9 is not on this host", "VNI 0 is not", "VNI 7 is also cross link x's", "UDP port 70000",
        "MTU 40", "different IP versions", "both 192.0.2.1", "not-an-address",
    ):  # fmt: skip
        assert expected in message, message


def topology(tmp_path: Path, **link: object) -> Topology:
    links = [{"name": "x", "endpoints": ["n1:x", "n2:x"], **link}, {"name": "l", "endpoints": ["n1:l", "n3:l"]}]
    return load_topology(tmp_path, "t", {"nodes": {"n1": {}, "n2": {}, "n3": {}}, "links": links})


def test_restrict_keeps_the_parts_nodes_whole_and_its_own_links(tmp_path: Path) -> None:
    full = topology(tmp_path)
    part = restrict(full, HostPart("A", ("n3", "n1"), (end(mtu=1400),)))
    assert [n.name for n in part.nodes] == ["n1", "n3"]  # the topology's order
    assert [link.name for link in part.links] == ["l"]
    n1 = part.node("n1")
    assert [i.name for i in n1.interfaces] == [i.name for i in full.node("n1").interfaces]
    assert n1.interface("x").mtu == 1400 and n1.interface("l").mtu == full.node("n1").interface("l").mtu
    assert n1.interface("x").ipv4 == full.node("n1").interface("x").ipv4
    other = restrict(full, HostPart("B", ("n2",), (end(node="n2", local_ip="192.0.2.2", remote_ip="192.0.2.1"),)))
    assert [n.name for n in other.nodes] == ["n2"] and other.links == ()


def test_restrict_honours_a_smaller_mtu_the_scenario_asks(tmp_path: Path) -> None:
    nodes = {"n1": {"interfaces": {"x": {"mtu": 1300}}}, "n2": {}}
    full = load_topology(tmp_path, "m", {"nodes": nodes, "links": [{"name": "x", "endpoints": ["n1:x", "n2:x"]}]})
    assert restrict(full, HostPart("A", ("n1",), (end(),))).node("n1").interface("x").mtu == 1300


def test_a_part_that_does_not_fit_is_refused_with_every_reason(tmp_path: Path) -> None:
    full = topology(tmp_path)
    with pytest.raises(BadInput) as caught:
        restrict(full, HostPart("A", ("n1", "n3", "ghost"), (end(link="l", ifname="l"), end(link="nope", vni=8))))
    message = str(caught.value)
    for expected in (
        "host A", "node ghost is not in the topology", "link l has both ends on this host",
        "not an end of a link nope", "link x has one end on this host and no cross end",
    ):  # fmt: skip
        assert expected in message, message
    # `engine: userspace` on a cross link is no longer refused: the relay serves this host's end.
    assert [n.name for n in restrict(topology(tmp_path, engine="userspace"), HostPart("A", ("n1", "n3"), (end(),))).nodes] == ["n1", "n3"]


def crossing(tmp_path: Path, profile: dict[str, Any] | None = None, **link: object) -> Topology:
    """n1 and n2 joined by cross link x (with `profile` as its profile, and `link`'s keys)."""
    links = [{"name": "x", "endpoints": ["n1:x", "n2:x"], **link, **({"profile": "p"} if profile else {})}]
    return load_topology(tmp_path, "d", {"nodes": {"n1": {}, "n2": {}}, "links": links}, {"p": profile} if profile else None)


def test_a_cross_link_needing_netem_is_refused_before_anything_is_made_where_neither_engine_can_serve_it(tmp_path: Path) -> None:
    run = RunStore(tmp_path / "state").create("d", tmp_path / "d.yaml")
    part = HostPart("A", ("n1",), (end(),))
    # Neither netem nor TUN/TAP: `auto` stays with the kernel, which cannot delay.
    with pytest.raises(EnvironmentProblem, match=r"cross-host links x need netem.*needs TUN/TAP.*CONFIG_NET_SCH_NETEM"):
        deploy_part(NetnsBackend(capabilities=lambda: {NETEM: False}), crossing(tmp_path, {"delay": "20ms"}), part, run)
    # `engine: kernel` asked on a host without netem: the message says what to remove.
    with pytest.raises(EnvironmentProblem, match=r"x asks for `engine: kernel` \(remove it"):
        deploy_part(
            NetnsBackend(capabilities=lambda: {NETEM: False, TUNTAP: True}),
            crossing(tmp_path, {"delay": "20ms"}, engine="kernel"),
            part,
            run,
        )
    assert run.journal.entries() == []


@pytest.mark.parametrize(
    ("profile", "engine", "caps", "chosen"),
    [
        ({"delay": "20ms"}, "auto", {NETEM: False, TUNTAP: True}, "userspace"),  # as on one machine
        ({"delay": "20ms"}, "auto", {NETEM: True, TUNTAP: True}, "kernel"),
        ({"rate": "10mbit"}, "auto", {NETEM: False, TUNTAP: True}, "kernel"),  # tbf works everywhere
        (None, "auto", {NETEM: False, TUNTAP: True}, "kernel"),
        (None, "userspace", {NETEM: True, TUNTAP: True}, "userspace"),  # asked for: no longer refused
        ({"delay": "20ms"}, "kernel", {NETEM: True, TUNTAP: True}, "kernel"),
    ],
)
def test_each_host_chooses_the_engine_of_its_end_of_a_cross_link_as_one_machine_does(
    tmp_path: Path, profile: dict[str, Any] | None, engine: str, caps: dict[str, bool], chosen: str
) -> None:
    full = crossing(tmp_path, profile, engine=engine)
    a, b = end(), end(node="n2", local_ip="192.0.2.2", remote_ip="192.0.2.1")
    for part in (HostPart("A", ("n1",), (a,)), HostPart("B", ("n2",), (b,))):
        assert cross_engines(full, part, lambda: caps) == {"x": chosen}
        # The same choice as for a link with both ends on one host.
        assert engines(full.links, lambda: caps) == {"x": chosen}


def test_the_two_hosts_of_a_cross_link_may_choose_differently(tmp_path: Path) -> None:
    full = crossing(tmp_path, {"loss": "1%"})
    b = end(node="n2", local_ip="192.0.2.2", remote_ip="192.0.2.1")
    assert cross_engines(full, HostPart("A", ("n1",), (end(),)), lambda: {NETEM: True, TUNTAP: True}) == {"x": "kernel"}
    assert cross_engines(full, HostPart("B", ("n2",), (b,)), lambda: {NETEM: False, TUNTAP: True}) == {"x": "userspace"}


def test_the_controller_counts_a_cross_link_as_userspace_when_either_hosts_relay_serves_it() -> None:
    hosts = [{"l1": "kernel", "x": "kernel", "y": "userspace"}, {"l2": "userspace", "x": "userspace", "y": "kernel"}]
    assert merge_engines(hosts) == {"l1": "kernel", "l2": "userspace", "x": "userspace", "y": "userspace"}
    assert merge_engines([{"x": "kernel"}, {"x": "kernel"}]) == {"x": "kernel"}

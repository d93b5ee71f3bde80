"""LAN segments: a Linux bridge per segment, in a namespace of the run's own, with no object of
it visible from the host.

For each segment, in the namespace `drill-RUN-_seg.NAME` (a name no node's namespace can have:
node names never begin with `_`; the journal accepts it as it accepts a host's wire namespace):
- a bridge `br`;
- per member, in member order, a veth pair: the member's interface (born in its node's
  namespace, addressed and set up with the node's other interfaces) and the port `pN` (N the
  member's position), enslaved to the bridge.

The namespace and every veth pair are journaled before they exist; teardown and `drill clean`
remove the namespace like any namespace of the run, which takes the bridge and every veth pair
(both ends) with it. The bridge is read back after creation: its settings and every port.

Bridge settings, chosen for failover timing:
- STP off and `forward_delay` 0: a port forwards as soon as it is up. With STP's listening and
  learning states a member whose port comes back would be deaf for 2 x 15 s, which would be
  measured as the failover mechanism's time.
- Multicast snooping off: VRRP (224.0.0.18) and OSPF (224.0.0.5/6) use multicast; a snooping
  bridge without a querier may stop flooding groups it has not seen reports for, which drops
  adverts for reasons no real switch of the drill's kind has.
- Ageing as the kernel's default (300 s): a VRRP master announces its virtual MAC with a
  gratuitous ARP when it takes over, which moves the MAC at once, as on a real switch.
- IPv6 off in the segment's namespace: the bridge holds no address and sends nothing of its own
  (no router solicitation nor MLD report on the LAN).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from drills.errors import BackendError
from drills.netns import kernel
from drills.netns.wire import WIRE_SYSCTLS
from drills.runs import Run
from drills.scenario.resolved import Segment, Topology, port_ifname, segment_node

Log = Callable[[str], None]
BRIDGE = "br"
DEFAULT_MTU = 1500


def segment_namespace(run_id: str, name: str) -> str:
    """The namespace holding segment `name`'s bridge in run `run_id`."""
    return f"drill-{run_id}-{segment_node(name)}"  # as a node's namespace is named


def segment_namespaces(run_id: str, topology: Topology) -> dict[str, str]:
    """The segments' bridge sides as node operations reach them (a degrade of a member's port
    puts a qdisc on its bridge port): `segment_node(NAME)` -> its namespace."""
    return {segment_node(s.name): segment_namespace(run_id, s.name) for s in topology.segments}


def port_engines(topology: Topology) -> dict[str, str]:
    """Every member port (`Segment.port`) -> its engine: the kernel's."""
    return {segment.port(m.endpoint).name: "kernel" for segment in topology.segments for m in segment.members}


def port_mtu(segment: Segment) -> int:
    """The bridge ports' MTU: the largest a member uses, so no member's frames are dropped."""
    return max(member.mtu or DEFAULT_MTU for member in segment.members)


def deploy_segments(run: Run, segments: Sequence[Segment], namespaces: Mapping[str, str], log: Log | None = None) -> None:
    """Make every segment of the run: its namespace, a veth pair per member (the member's end in
    its node's namespace, `namespaces[node]`), and the bridge joining the ports, each object
    journaled before it exists and the bridge read back."""
    if not segments:
        return
    names = [segment_namespace(run.run_id, segment.name) for segment in segments]
    entries: list[dict[str, Any]] = [{"op": "netns", "name": name} for name in names]
    for segment, ns in zip(segments, names, strict=True):
        entries += [
            {"op": "veth", "a": [namespaces[member.node], member.name], "b": [ns, port_ifname(i)]}
            for i, member in enumerate(segment.members)
        ]
    run.journal.record(entries)
    with run.journal.creating("netns", names):
        kernel.create_namespaces(names, WIRE_SYSCTLS)
    root = kernel.root_netlink()
    try:
        for segment, ns in zip(segments, names, strict=True):
            for i, member in enumerate(segment.members):
                kernel.add_veth(root, namespaces[member.node], member.name, ns, port_ifname(i))
    finally:
        root.close()
    by_ns = dict(zip(names, segments, strict=True))
    kernel.in_each_namespace(names, lambda name, ipr: _bridge_and_verify(ipr, by_ns[name]))
    say = log or (lambda _msg: None)
    for segment in segments:
        members = ", ".join(member.endpoint for member in segment.members)
        say(f"segment {segment.name}: a bridge joining {members}")


def _bridge_and_verify(ipr: Any, segment: Segment) -> None:
    """In the segment's namespace: the bridge (see the module docstring for its settings), every
    port enslaved and up; then read back."""
    mtu = port_mtu(segment)
    with kernel.netlink_errors(f"segment {segment.name}: create bridge {BRIDGE}"):
        ipr.link("add", ifname=BRIDGE, kind="bridge", br_stp_state=0, br_forward_delay=0, br_mcast_snooping=0)
        index = kernel.local_link_index(BRIDGE)
        for i in range(len(segment.members)):
            ipr.link("set", index=kernel.local_link_index(port_ifname(i)), master=index, mtu=mtu, state="up")
        ipr.link("set", index=index, state="up")
    _verify(ipr, segment, index, mtu)


def _verify(ipr: Any, segment: Segment, bridge: int, mtu: int) -> None:
    with kernel.netlink_errors(f"segment {segment.name}: read bridge {BRIDGE}"):
        msg = ipr.link("get", index=bridge)[0]
    data = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    shown = {
        "stp": data.get_attr("IFLA_BR_STP_STATE"),
        "forward_delay": data.get_attr("IFLA_BR_FORWARD_DELAY"),
        "mcast_snooping": data.get_attr("IFLA_BR_MCAST_SNOOPING"),
    }
    if shown != {"stp": 0, "forward_delay": 0, "mcast_snooping": 0}:
        raise BackendError(f"segment {segment.name}: bridge reads back as {shown}, asked STP, forward delay and snooping off")
    for i, member in enumerate(segment.members):
        port = port_ifname(i)
        with kernel.netlink_errors(f"segment {segment.name}: read port {port}"):
            msg = ipr.link("get", index=kernel.local_link_index(port))[0]
        seen = {"master": msg.get_attr("IFLA_MASTER"), "mtu": msg.get_attr("IFLA_MTU"), "up": bool(msg["flags"] & 1)}
        if seen != {"master": bridge, "mtu": mtu, "up": True}:
            raise BackendError(
                f"segment {segment.name}: port {port} of {member.endpoint} reads back as {seen}, asked master {bridge}, MTU {mtu}, up"
            )

"""Which host runs each node, and the links that cross hosts (VXLAN tunnels).

`place` takes the resolved topology, the inventory and the scenario's `hosts:`:

- given: every node names its host (`host:`), which must be an inventory host;
- auto: nodes are spread over the hosts in proportion to their `drills_weight` (default 1), with
  as few cross-host links as drills.hosts.partition finds; nodes naming a host stay there.

Each cross link gets its MTU (the smaller underlay MTU of its two hosts less the VXLAN overhead:
50 bytes over an IPv4 underlay, 70 over IPv6; an interface `mtu:` above it is refused) and an
index; `assign_vnis` turns indices into VNIs unique to a run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

from drills.backend import VXLAN_OVERHEAD_V6_BYTES, CrossEnd, HostPart, vxlan_overhead_bytes
from drills.errors import Problem, ScenarioError
from drills.hosts.inventory import load_inventory
from drills.hosts.partition import partition
from drills.hosts.records import VXLAN_PORT, CrossLink, Host, Inventory, Placement
from drills.scenario.diagnostics import suggest
from drills.scenario.resolved import HostsSpec, Scenario, Topology
from drills.scenario.yamlpos import KeyPath, path_text

VNI_SPACE = 2**24 - 1  # VNIs 1 .. 2^24 - 1: 24 bits, and 0 avoided (some stacks read it as "no VNI")

ProblemAt = Callable[[KeyPath, str], Problem]


SEGMENT_WEIGHT = 1000  # an edge between LAN segment members, against 1 for each link


def _unlocated(path: KeyPath, message: str) -> Problem:
    return Problem("?", 0, 0, path_text(path), message)


def place(topology: Topology, inventory: Inventory, spec: HostsSpec, *, problem: ProblemAt = _unlocated) -> Placement:
    """The placement of `topology` on `inventory`'s hosts; ScenarioError (exit 2) listing every
    problem: a host not in the inventory, an MTU too large for a tunnel, a host holding a cross
    link without an underlay address. `problem` locates a problem in the scenario
    (`Scenario.problem`)."""
    hosts = {host.name: host for host in inventory.hosts}
    problems: list[Problem] = []
    for node in topology.nodes:
        if node.host is not None and node.host not in hosts:
            known = ", ".join(list(hosts)[:10]) + (" ..." if len(hosts) > 10 else "")
            problems.append(
                problem(
                    ("topology", "nodes", node.name, "host"),
                    f"node {node.name} names host {node.host}, which is not in the inventory {inventory.path}"
                    f"{suggest(node.host, hosts)} (its hosts: {known})",
                )
            )
    if spec.placement == "given":
        problems.extend(
            problem(("topology", "nodes", node.name), f"placement is given, but node {node.name} names no host; add `host:`")
            for node in topology.nodes
            if node.host is None
        )
    if problems:
        raise ScenarioError(problems)
    if spec.placement == "given":
        host_of = {node.name: str(node.host) for node in topology.nodes}
    else:
        host_of = _auto(topology, inventory.hosts, problem)
    _check_segments(topology, host_of, problem)
    cross = _cross_links(topology, host_of, hosts, inventory.path, problem)
    return Placement(host_of, cross, spec.vxlan_port, spec.placement)


def vni_base(run_id: str) -> int:
    """Where a run's VNIs start: 24 bits of a hash of the run id, so two runs between the same
    hosts (same UDP port) use different VNIs. Two runs of n1 and n2 cross links overlap with a
    chance of about (n1 + n2) / 2^24 (6e-6 for 50 links each); the kernel refuses a second
    tunnel with a VNI and port already in use, so an overlap fails the deploy, never mixes runs."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:3], "big")


def assign_vnis(placement: Placement, run_id: str) -> Placement:
    """`placement` with each cross link's VNI index replaced by a VNI unique within the run:
    consecutive from the run's base, 24-bit, never 0."""
    base = vni_base(run_id)
    cross = tuple(replace(link, vni=1 + (base + link.vni) % VNI_SPACE) for link in placement.cross)
    return replace(placement, cross=cross)


def host_parts(topology: Topology, inventory: Inventory, placement: Placement) -> tuple[HostPart, ...]:
    """What each host of `placement` deploys (drills.backend.HostPart), in inventory order: its
    nodes, and its end of every cross-host link with both underlay addresses, the port, the
    MTU and the VNI. Call it on a placement whose VNIs are assigned (`assign_vnis`)."""
    hosts = {host.name: host for host in inventory.hosts}
    ends: dict[str, list[CrossEnd]] = {name: [] for name in placement.hosts}
    for cross in placement.cross:
        link = topology.link(cross.link)
        for here, there, end in ((cross.host_a, cross.host_b, link.a), (cross.host_b, cross.host_a, link.b)):
            ends[here].append(
                CrossEnd(
                    link=cross.link,
                    node=end.node,
                    ifname=end.name,
                    vni=cross.vni,
                    local_ip=hosts[here].underlay,
                    remote_ip=hosts[there].underlay,
                    port=placement.vxlan_port,
                    mtu=cross.mtu,
                )
            )
    return tuple(
        HostPart(host.name, placement.nodes_on(host.name), tuple(ends[host.name]))
        for host in inventory.hosts
        if host.name in ends
    )


def for_scenario(scenario: Scenario, inventory_path: Path | None = None) -> tuple[Inventory, Placement] | None:
    """The inventory and placement of a scenario: `inventory_path` (the `--inventory` flag) wins
    over `hosts.inventory`; None when the drill runs on this machine alone (no inventory, no
    `hosts:` and no node naming a host)."""
    spec = scenario.hosts
    path = inventory_path or (spec.inventory if spec is not None else None)
    if path is None:
        if spec is None:
            return None
        named = next((node.name for node in scenario.topology.nodes if node.host is not None), None)
        where: KeyPath = ("topology", "nodes", named, "host") if named else ("hosts",)
        raise ScenarioError(
            [
                scenario.problem(
                    where,
                    "nodes are placed on hosts, but no inventory is named: add `inventory: FILE` under `hosts:` "
                    "or pass --inventory FILE",
                )
            ]
        )
    # The agents deploy namespace nodes only: a container node (or a containerlab lab's) runs on
    # this machine's Docker engine, which no other host's agent drives.
    containers = [node.name for node in scenario.topology.nodes if node.kind == "container"]
    if containers:
        raise ScenarioError(
            [
                scenario.problem(
                    ("topology", "nodes", name, "kind"),
                    f"node {name} is a container, and a drill across hosts runs namespace nodes only: "
                    "make it a namespace node (remove `kind: container`), or run the drill on one machine "
                    "(no inventory, no `hosts:`, no `host:` on nodes)",
                )
                for name in containers
            ]
        )
    inventory = load_inventory(path)
    spec = spec or HostsSpec(None, "auto", VXLAN_PORT)
    return inventory, place(scenario.topology, inventory, spec, problem=scenario.problem)


def _check_segments(topology: Topology, host_of: dict[str, str], problem: ProblemAt) -> None:
    """A LAN segment is a bridge on one machine: ScenarioError for each whose members were
    placed on different hosts."""
    problems = []
    for i, segment in enumerate(topology.segments):
        on: dict[str, list[str]] = {}
        for member in segment.members:
            on.setdefault(host_of[member.node], []).append(member.node)
        if len(on) > 1:
            shown = "; ".join(f"{host}: {', '.join(nodes)}" for host, nodes in on.items())
            problems.append(
                problem(
                    ("topology", "segments", i),
                    f"segment {segment.name} has members on {len(on)} hosts ({shown}); a segment is a bridge on one "
                    "machine: give its members' nodes the same `host:`",
                )
            )
    if problems:
        raise ScenarioError(problems)


# --------------------------------------------------------------------------- cross links


def _cross_links(
    topology: Topology, host_of: dict[str, str], hosts: dict[str, Host], inventory: Path, problem: ProblemAt
) -> tuple[CrossLink, ...]:
    problems: list[Problem] = []
    cross: list[CrossLink] = []
    no_underlay: dict[str, str] = {}  # host -> a link it holds
    for link in topology.links:
        host_a, host_b = host_of[link.a.node], host_of[link.b.node]
        if host_a == host_b:
            continue
        a, b = hosts[host_a], hosts[host_b]
        overhead = vxlan_overhead_bytes(a.underlay, b.underlay)
        mtu = min(a.underlay_mtu, b.underlay_mtu) - overhead
        for end in (link.a, link.b):
            if end.mtu is not None and end.mtu > mtu:
                problems.append(
                    problem(
                        ("topology", "nodes", end.node, "interfaces", end.name, "mtu"),
                        f"link {link.name} crosses from host {host_a} to {host_b}: its tunnel carries at most "
                        f"{mtu} bytes (underlay MTU {min(a.underlay_mtu, b.underlay_mtu)} less "
                        f"{overhead} of VXLAN over IPv{6 if overhead == VXLAN_OVERHEAD_V6_BYTES else 4}); "
                        "lower this mtu, or raise drills_underlay_mtu",
                    )
                )
        for host in (a, b):
            if not host.underlay:
                no_underlay.setdefault(host.name, link.name)
        if a.underlay and b.underlay and ip_address(a.underlay).version != ip_address(b.underlay).version:
            problems.append(
                Problem(
                    str(inventory), 0, 0, "",
                    f"link {link.name} joins host {a.name} (underlay {a.underlay}) and {b.name} "
                    f"(underlay {b.underlay}): a tunnel needs both in one IP family; set drills_underlay",
                )
            )  # fmt: skip
        cross.append(CrossLink(link.name, len(cross), host_a, host_b, mtu))
    for name, link_name in no_underlay.items():
        problems.append(
            Problem(
                str(inventory), 0, 0, "",
                f"host {name} holds cross-host link {link_name} but has no underlay address: its address "
                f"{hosts[name].address} is not an IP address; set drills_underlay=IP for it in the inventory",
            )
        )  # fmt: skip
    if problems:
        raise ScenarioError(problems)
    return tuple(cross)


# --------------------------------------------------------------------------- automatic placement


def _auto(topology: Topology, hosts: Sequence[Host], problem: ProblemAt) -> dict[str, str]:
    weights = [float(host.vars.get("drills_weight", "1")) for host in hosts]
    if sum(weights) <= 0:
        raise ScenarioError(
            [problem(("hosts", "placement"), "every host has drills_weight 0: automatic placement has nowhere to go")]
        )
    names = [node.name for node in topology.nodes]
    index = {name: i for i, name in enumerate(names)}
    adjacency: list[dict[int, int]] = [{} for _ in names]
    for link in topology.links:
        a, b = index[link.a.node], index[link.b.node]
        if a != b:
            adjacency[a][b] = adjacency[a].get(b, 0) + 1
            adjacency[b][a] = adjacency[b].get(a, 0) + 1
    for segment in topology.segments:
        # A star of heavy edges: the partitioner keeps a segment's members on one host.
        hub = index[segment.members[0].node]
        for member in segment.members[1:]:
            other = index[member.node]
            if other != hub:
                adjacency[hub][other] = adjacency[hub].get(other, 0) + SEGMENT_WEIGHT
                adjacency[other][hub] = adjacency[other].get(hub, 0) + SEGMENT_WEIGHT
    host_index = {host.name: h for h, host in enumerate(hosts)}
    pinned = [host_index[node.host] if node.host is not None else -1 for node in topology.nodes]
    where = partition(adjacency, pinned, weights)
    return {name: hosts[where[i]].name for i, name in enumerate(names)}



"""Which host runs each node, and the links that cross hosts (VXLAN tunnels).

`place` takes the resolved topology, the inventory and the scenario's `hosts:`:

- given: every node names its host (`host:`), which must be an inventory host;
- auto: nodes are spread over the hosts in proportion to their `drills_weight` (default 1), with
  as few cross-host links as a greedy partition finds: each host's share grows from one seed
  node, breadth first, always taking the node with the most links into the share and the
  fewest to nodes not yet placed; then bounded passes swap pairs of nodes across a cut when that
  removes cross links. Nodes naming a host stay there. Everything is ordered by the file's
  order, never by a hash, so the same scenario and inventory give the same placement.

Each cross link gets its MTU (the smaller underlay MTU of its two hosts less the VXLAN overhead;
an interface `mtu:` above it is refused) and an index; `assign_vnis` turns indices into VNIs
unique to a run.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Sequence
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

from drills.errors import Problem, ScenarioError
from drills.hosts.inventory import load_inventory
from drills.hosts.records import VXLAN_OVERHEAD_BYTES, VXLAN_PORT, CrossLink, Host, Inventory, Placement
from drills.scenario.diagnostics import suggest
from drills.scenario.resolved import HostsSpec, Scenario, Topology
from drills.scenario.yamlpos import KeyPath, path_text

VNI_SPACE = 2**24 - 1  # VNIs 1 .. 2^24 - 1: 24 bits, and 0 avoided (some stacks read it as "no VNI")
REFINE_PASSES = 8  # swap passes after the greedy growth; each pass is linear in the cut's size
SWAP_TRIES = 4  # partners tried for one node in a pass (the best few by gain)

ProblemAt = Callable[[KeyPath, str], Problem]


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
    if problems:
        raise ScenarioError(problems)
    if spec.placement == "given":
        host_of = {node.name: str(node.host) for node in topology.nodes}
    else:
        host_of = _auto(topology, inventory.hosts, problem)
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
    inventory = load_inventory(path)
    spec = spec or HostsSpec(None, "auto", VXLAN_PORT)
    return inventory, place(scenario.topology, inventory, spec, problem=scenario.problem)


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
        mtu = min(a.underlay_mtu, b.underlay_mtu) - VXLAN_OVERHEAD_BYTES
        for end in (link.a, link.b):
            if end.mtu is not None and end.mtu > mtu:
                problems.append(
                    problem(
                        ("topology", "nodes", end.node, "interfaces", end.name, "mtu"),
                        f"link {link.name} crosses from host {host_a} to {host_b}: its tunnel carries at most "
                        f"{mtu} bytes (underlay MTU {min(a.underlay_mtu, b.underlay_mtu)} less "
                        f"{VXLAN_OVERHEAD_BYTES} of VXLAN); lower this mtu, or raise drills_underlay_mtu",
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


def _targets(count: int, weights: Sequence[float]) -> list[int]:
    """Node counts per host in proportion to the weights, summing to `count` (largest remainders,
    ties to the earlier host)."""
    total = sum(weights)
    ideal = [count * w / total for w in weights]
    target = [int(x) for x in ideal]
    order = sorted(range(len(weights)), key=lambda h: (-(ideal[h] - target[h]), h))
    for h in order[: count - sum(target)]:
        target[h] += 1
    return target


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
    host_index = {host.name: h for h, host in enumerate(hosts)}
    pinned = [host_index[node.host] if node.host is not None else -1 for node in topology.nodes]
    where = _grow(adjacency, pinned, _targets(len(names), weights))
    _refine(adjacency, where, pinned)
    return {name: hosts[where[i]].name for i, name in enumerate(names)}


class _Growth:
    """Greedy growth: each host in turn takes its share (less its pinned nodes), always the
    unplaced node with the most links into the share less its links to other unplaced nodes.
    Every step costs the degree of the node placed (and a heap push per neighbour)."""

    def __init__(self, adjacency: list[dict[int, int]], pinned: list[int]) -> None:
        self.adjacency = adjacency
        self.where = list(pinned)
        self.unplaced = [sum(w for v, w in links.items() if pinned[v] < 0) for links in adjacency]
        # Unplaced nodes next to a placed one: where a share with no pin starts (along a cut).
        self.touched = {v for u, host in enumerate(pinned) if host >= 0 for v in adjacency[u] if pinned[v] < 0}
        self.cursor = 0  # every node before it is placed

    def grow(self, host: int, room: int) -> None:
        where, unplaced = self.where, self.unplaced
        inside = [0] * len(where)  # links of each unplaced node into this host's share
        heap: list[tuple[int, int]] = []  # (-(inside - unplaced), node); stale entries skipped

        def touch(v: int, weight: int) -> None:
            if where[v] < 0:
                inside[v] += weight
                heapq.heappush(heap, (unplaced[v] - inside[v], v))

        for u, held in enumerate(where):
            if held == host:
                for v, weight in self.adjacency[u].items():
                    touch(v, weight)
        while room > 0:
            while heap and (where[heap[0][1]] >= 0 or heap[0][0] != unplaced[heap[0][1]] - inside[heap[0][1]]):
                heapq.heappop(heap)
            u = heapq.heappop(heap)[1] if heap else self.seed()
            if u < 0:
                return
            where[u] = host
            room -= 1
            self.touched.discard(u)
            for v, weight in self.adjacency[u].items():
                unplaced[v] -= weight
                if where[v] < 0:
                    self.touched.add(v)
                touch(v, weight)

    def seed(self) -> int:
        """Where a share starts: an unplaced node next to a placed one with the fewest unplaced
        neighbours (so the share grows along the previous cut), else the far end of a
        breadth-first walk from the first unplaced node (a peripheral node: the share grows
        inwards, not around it)."""
        if self.touched:
            return min(self.touched, key=lambda u: (self.unplaced[u], u))
        where = self.where
        while self.cursor < len(where) and where[self.cursor] >= 0:
            self.cursor += 1
        if self.cursor == len(where):
            return -1
        seen = {self.cursor}
        layer = [self.cursor]
        while True:
            following = sorted({v for u in layer for v in self.adjacency[u] if where[v] < 0 and v not in seen})
            if not following:
                return min(layer)
            seen.update(following)
            layer = following


def _grow(adjacency: list[dict[int, int]], pinned: list[int], target: list[int]) -> list[int]:
    growth = _Growth(adjacency, pinned)
    # Hosts holding pinned nodes grow first, around their pins: a host grown before them could
    # start next to a pin and cut its host's share in two. Pins above a host's share leave the
    # others' shares as they were: the later hosts then take fewer nodes.
    for host in sorted(range(len(target)), key=lambda h: (h not in pinned, h)):
        growth.grow(host, max(0, target[host] - pinned.count(host)))
    where = growth.where
    for u in range(len(where)):  # not reached: the shares add up to at least the nodes to place
        if where[u] < 0:
            where[u] = max(range(len(target)), key=lambda h: (target[h], -h))
    return where


def _gains(adjacency: list[dict[int, int]], where: list[int], u: int) -> dict[int, int]:
    """Links of `u` to each host (its own included)."""
    links: dict[int, int] = {}
    for v, weight in adjacency[u].items():
        links[where[v]] = links.get(where[v], 0) + weight
    return links


def _refine(adjacency: list[dict[int, int]], where: list[int], pinned: list[int]) -> None:
    """Swap pairs of nodes across a cut while a swap removes cross links: counts per host stay."""
    for _ in range(REFINE_PASSES):
        wants: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (from, to) -> [(-gain, node)]
        for u, host in enumerate(where):
            if pinned[u] >= 0:
                continue
            links = _gains(adjacency, where, u)
            own = links.get(host, 0)
            for other, weight in links.items():
                if other != host:
                    wants.setdefault((host, other), []).append((own - weight, u))
        locked: set[int] = set()
        swapped = False
        for (a, b), movers in sorted(wants.items()):
            if a > b or (b, a) not in wants:
                continue
            partners = sorted(wants[(b, a)])
            for _neg, u in sorted(movers):
                if u in locked or where[u] != a:
                    continue
                links_u = _gains(adjacency, where, u)
                gain_u = links_u.get(b, 0) - links_u.get(a, 0)
                tries = 0
                for _n, v in partners:
                    if v in locked or where[v] != b:
                        continue
                    links_v = _gains(adjacency, where, v)
                    gain_v = links_v.get(a, 0) - links_v.get(b, 0)
                    if gain_u + gain_v - 2 * adjacency[u].get(v, 0) > 0:
                        where[u], where[v] = b, a
                        locked.update((u, v))
                        swapped = True
                        break
                    tries += 1
                    if tries >= SWAP_TRIES:
                        break
        if not swapped:
            return

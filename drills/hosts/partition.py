"""Split a graph's nodes over hosts in given proportions, with few links between hosts.

Three starting points, each then refined, and the one with the fewest cross links kept (ties:
the earlier):

1. greedy growth: each host's share grows from one seed node, always taking the unplaced node
   with the most links into the share less its links to other unplaced nodes;
2. the file's order cut into shares: authors often write a testbed site by site;
3. a breadth-first order (from a peripheral node) cut into shares: rings, chains and grids.

Refinement swaps pairs of nodes across a cut while a swap removes cross links, in bounded
passes, so the counts per host never change. Pinned nodes (those naming a host) never move.
Everything is ordered by node index, never by a hash: the same graph gives the same split.
Each step is linear in the links (a heap push per link in growth), so 5,000 nodes take well
under a second (bench/placement.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

REFINE_PASSES = 8  # swap passes; each is linear in the links
SWAP_TRIES = 4  # partners tried for one node in a pass (the best few by gain)

Adjacency = list[dict[int, int]]  # node -> {neighbour: links between them}


def partition(adjacency: Adjacency, pinned: list[int], weights: Sequence[float]) -> list[int]:
    """The host index of every node: node counts in proportion to `weights` (pinned nodes,
    `pinned[u] >= 0`, stay where they are), few links across hosts."""
    target = _targets(len(adjacency), weights)
    best: list[int] | None = None
    best_cut = -1
    for where in (
        _grow(adjacency, pinned, target),
        _fill(range(len(adjacency)), pinned, target),
        _fill(_breadth_first(adjacency), pinned, target),
    ):
        _refine(adjacency, where, pinned)
        cut = _cut(adjacency, where)
        if best is None or cut < best_cut:
            best, best_cut = where, cut
    assert best is not None
    return best


def _cut(adjacency: Adjacency, where: list[int]) -> int:
    return sum(w for u, links in enumerate(adjacency) for v, w in links.items() if u < v and where[u] != where[v])


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


def _rooms(pinned: list[int], target: list[int]) -> list[int]:
    """What each host takes beyond its pinned nodes. Pins above a host's share leave the others'
    shares as they were: the later hosts then take fewer (the rooms never add up to less than
    the nodes to place)."""
    return [max(0, target[h] - pinned.count(h)) for h in range(len(target))]


def _fill(order: Sequence[int], pinned: list[int], target: list[int]) -> list[int]:
    """Shares taken in `order`, host after host."""
    where = list(pinned)
    rooms = _rooms(pinned, target)
    host = 0
    for u in order:
        if where[u] >= 0:
            continue
        while host < len(rooms) - 1 and rooms[host] <= 0:
            host += 1
        where[u] = host
        rooms[host] -= 1
    return where


def _breadth_first(adjacency: Adjacency) -> list[int]:
    """Every node, component after component, each walked breadth first from a peripheral node
    (the far end of a first walk), neighbours by index."""
    seen = [False] * len(adjacency)
    order: list[int] = []
    for start in range(len(adjacency)):
        if seen[start]:
            continue
        far = _walk(adjacency, start, None)[-1]
        component = _walk(adjacency, far, None)
        for u in component:
            seen[u] = True
        order.extend(component)
    return order


def _walk(adjacency: Adjacency, start: int, allowed: list[int] | None) -> list[int]:
    """Nodes in breadth-first order from `start` (only where `allowed[v] < 0` when given)."""
    seen = {start}
    order = [start]
    head = 0
    while head < len(order):
        for v in sorted(adjacency[order[head]]):
            if v not in seen and (allowed is None or allowed[v] < 0):
                seen.add(v)
                order.append(v)
        head += 1
    return order


class _Growth:
    """Greedy growth: each host in turn takes its share (less its pinned nodes), always the
    unplaced node with the most links into the share less its links to other unplaced nodes.
    Every step costs the degree of the node placed (and a heap push per neighbour)."""

    def __init__(self, adjacency: Adjacency, pinned: list[int]) -> None:
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
        return _walk(self.adjacency, self.cursor, where)[-1]


def _grow(adjacency: Adjacency, pinned: list[int], target: list[int]) -> list[int]:
    growth = _Growth(adjacency, pinned)
    rooms = _rooms(pinned, target)
    # Hosts holding pinned nodes grow first, around their pins: a host grown before them could
    # start next to a pin and cut its host's share in two.
    for host in sorted(range(len(target)), key=lambda h: (h not in pinned, h)):
        growth.grow(host, rooms[host])
    where = growth.where
    for u in range(len(where)):  # not reached: the shares add up to at least the nodes to place
        if where[u] < 0:
            where[u] = max(range(len(target)), key=lambda h: (target[h], -h))
    return where


def _gains(adjacency: Adjacency, where: list[int], u: int) -> dict[int, int]:
    """Links of `u` to each host (its own included)."""
    links: dict[int, int] = {}
    for v, weight in adjacency[u].items():
        links[where[v]] = links.get(where[v], 0) + weight
    return links


def _refine(adjacency: Adjacency, where: list[int], pinned: list[int]) -> None:
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
            first = 0  # partners before it have moved: skipped once, not by every mover
            for _neg, u in sorted(movers):
                if u in locked or where[u] != a:
                    continue
                while first < len(partners) and (partners[first][1] in locked or where[partners[first][1]] != b):
                    first += 1
                links_u = _gains(adjacency, where, u)
                gain_u = links_u.get(b, 0) - links_u.get(a, 0)
                for _n, v in partners[first : first + SWAP_TRIES]:
                    if v in locked or where[v] != b:
                        continue
                    links_v = _gains(adjacency, where, v)
                    gain_v = links_v.get(a, 0) - links_v.get(b, 0)
                    if gain_u + gain_v - 2 * adjacency[u].get(v, 0) > 0:
                        where[u], where[v] = b, a
                        locked.update((u, v))
                        swapped = True
                        break
        if not swapped:
            return

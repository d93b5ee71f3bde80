"""Free address space for automatic addressing, in time linear in the number of links.

The resolver hands out link subnets and loopbacks in pool order, skipping everything already
taken. Checking each candidate against every taken network made a testbed of n links cost n²
(10,000 links: minutes); here the taken networks are kept as sorted, merged integer ranges, so a
candidate is checked with one binary search, and a run of taken space is skipped in one step.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Network
from typing import Any


class _Taken:
    """Integer ranges [first, last] of one IP version, merged, sorted; fed lazily from a list the
    caller keeps appending to (the resolver's list of taken networks)."""

    def __init__(self, source: list[Any], version: int) -> None:
        self._source = source
        self._seen = 0  # how much of `source` is merged in
        self._version = version
        self._firsts: list[int] = []
        self._lasts: list[int] = []

    def _sync(self) -> None:
        while self._seen < len(self._source):
            net = self._source[self._seen]
            self._seen += 1
            if net.version == self._version:
                self._add(int(net.network_address), int(net.broadcast_address))

    def _add(self, first: int, last: int) -> None:
        # Ranges that overlap or touch [first, last] are merged into it.
        lo = bisect.bisect_left(self._lasts, first - 1)
        hi = bisect.bisect_right(self._firsts, last + 1)
        if lo < hi:
            first = min(first, self._firsts[lo])
            last = max(last, self._lasts[hi - 1])
        self._firsts[lo:hi] = [first]
        self._lasts[lo:hi] = [last]

    def end_of_overlap(self, first: int, last: int) -> int | None:
        """The last taken address of the taken range that overlaps [first, last], or None."""
        self._sync()
        i = bisect.bisect_right(self._firsts, last) - 1
        if i >= 0 and self._lasts[i] >= first:
            return self._lasts[i]
        return None


def free_subnets(pool: IPv4Network | IPv6Network | Any, prefix: int, used: list[Any]) -> Iterator[Any]:
    """The /`prefix` subnets of `pool`, in order, that overlap no network of `used` (of the same
    version). `used` is read as the iteration goes: networks appended meanwhile are skipped too."""
    if pool.prefixlen > prefix:
        return
    taken = _Taken(used, pool.version)
    size = 1 << (pool.max_prefixlen - prefix)
    start = int(pool.network_address)
    last = int(pool.broadcast_address)
    network = type(pool)
    first = start
    while first + size - 1 <= last:
        end = taken.end_of_overlap(first, first + size - 1)
        if end is None:
            yield network((first, prefix))
            first += size
        else:
            # Every subnet up to the end of that taken range overlaps it.
            first = start + ((end - start) // size + 1) * size


def _host_bounds(pool: IPv4Network | IPv6Network) -> tuple[int, int] | None:
    """First and last address `pool.hosts()` yields (it skips the network address and, in IPv4,
    the broadcast address, except in the smallest networks)."""
    first = next(iter(pool.hosts()), None)
    if first is None:
        return None
    last = int(pool.broadcast_address)
    if pool.version == 4 and pool.num_addresses > 2:
        last -= 1
    return int(first), last


def free_hosts(pool: IPv4Network | IPv6Network, used: list[Any]) -> Iterator[Any]:
    """The addresses of `pool.hosts()`, in order, that lie in no network of `used` (of the same
    version); `used` is read as the iteration goes."""
    bounds = _host_bounds(pool)
    if bounds is None:
        return
    taken = _Taken(used, pool.version)
    address = type(pool.network_address)
    host, last = bounds
    while host <= last:
        end = taken.end_of_overlap(host, host)
        if end is None:
            yield address(host)
            host += 1
        else:
            host = end + 1


class Disjoint:
    """Networks that do not overlap each other (of one IP version), each with a value: which one
    a new network overlaps is found by binary search, not by a scan of all of them."""

    def __init__(self) -> None:
        self._firsts: list[int] = []
        self._lasts: list[int] = []
        self._entries: list[tuple[int, Any]] = []  # (insertion order, value), sorted as the ranges

    def add(self, network: IPv4Network | IPv6Network, value: Any) -> None:
        """Add `network`, which overlaps none of those added before (the caller checked)."""
        first = int(network.network_address)
        i = bisect.bisect_left(self._firsts, first)
        self._firsts.insert(i, first)
        self._lasts.insert(i, int(network.broadcast_address))
        self._entries.insert(i, (len(self._entries), value))

    def first_overlapping(self, network: IPv4Network | IPv6Network) -> Any:
        """The value of the earliest added network that overlaps `network`, or None."""
        # The ranges are disjoint and sorted, so the ones overlapping `network` are adjacent.
        lo = bisect.bisect_left(self._lasts, int(network.network_address))
        hi = bisect.bisect_right(self._firsts, int(network.broadcast_address))
        if lo >= hi:
            return None
        return min(self._entries[lo:hi], key=lambda entry: entry[0])[1]

"""The linear-time algorithms of validation give exactly what the quadratic ones they replaced
gave. The old ones are kept here as oracles and both are run on seeded random inputs (fixed
seeds: the outcome is deterministic). Speed itself is measured in bench/validate.py, never here.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Network
from typing import Any

import pytest

from drills.scenario import addrspace

SEEDS = range(40)


def _old_free_subnets(pool: Any, prefix: int, used: list[Any]) -> Iterator[Any]:
    for subnet in pool.subnets(new_prefix=prefix) if pool.prefixlen <= prefix else ():
        if not any(subnet.overlaps(u) for u in used if u.version == subnet.version):
            yield subnet


def _old_free_hosts(pool: IPv4Network | IPv6Network, used: list[Any]) -> Iterator[Any]:
    for host in pool.hosts():
        net = ipaddress.ip_network(host)
        if not any(net.overlaps(u) for u in used if u.version == net.version):
            yield host


def _random_used(rng: random.Random, pool: Any, count: int) -> list[Any]:
    """Networks in and around `pool` (some overlapping each other, some of the other version)."""
    used: list[Any] = []
    base = int(pool.network_address)
    span = pool.num_addresses
    for _ in range(count):
        if rng.random() < 0.1:
            used.append(ipaddress.ip_network("fd00::/64" if pool.version == 4 else "10.0.0.0/8"))
            continue
        prefix = rng.randint(max(pool.prefixlen - 1, 0), pool.max_prefixlen)
        address = base + rng.randrange(-span // 4, span + span // 4)
        address = max(0, min(address, 2**pool.max_prefixlen - 1))
        used.append(ipaddress.ip_network((address, prefix), strict=False))
    return used


def _take(generator: Iterator[Any], used: list[Any], grow: bool, limit: int) -> list[Any]:
    """Up to `limit` items; with `grow`, each subnet taken is appended to `used` as the
    resolver does (the generator must then skip whatever it overlaps)."""
    out = []
    for item in itertools.islice(generator, limit):
        out.append(item)
        if grow and isinstance(item, IPv4Network | IPv6Network):
            used.append(item)
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("pool_text", ["10.0.0.0/22", "10.0.0.0/26", "10.0.0.0/30", "fd00:1::/56"])
def test_free_subnets_as_the_pairwise_check(seed: int, pool_text: str) -> None:
    rng = random.Random(seed)
    pool = ipaddress.ip_network(pool_text)
    prefix = min(pool.prefixlen + rng.randint(0, 8), 30 if pool.version == 4 else 64)
    used = _random_used(rng, pool, rng.randint(0, 30))
    grow = rng.random() < 0.5
    old_used, new_used = list(used), list(used)
    expected = _take(_old_free_subnets(pool, prefix, old_used), old_used, grow, 300)
    assert _take(addrspace.free_subnets(pool, prefix, new_used), new_used, grow, 300) == expected


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("pool_text", ["172.16.0.0/23", "172.16.0.0/30", "172.16.0.0/31", "172.16.0.1/32", "fd00:2::/118"])
def test_free_hosts_as_the_pairwise_check(seed: int, pool_text: str) -> None:
    rng = random.Random(seed)
    pool = ipaddress.ip_network(pool_text)
    used = _random_used(rng, pool, rng.randint(0, 30))
    assert list(itertools.islice(addrspace.free_hosts(pool, used), 600)) == list(
        itertools.islice(_old_free_hosts(pool, used), 600)
    )


def test_a_wider_pool_than_the_prefix_yields_nothing() -> None:
    assert list(addrspace.free_subnets(ipaddress.ip_network("10.0.0.0/30"), 24, [])) == []

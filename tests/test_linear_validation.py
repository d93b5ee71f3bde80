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
from pathlib import Path
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
@pytest.mark.parametrize(
    "pool_text", ["172.16.0.0/23", "172.16.0.0/30", "172.16.0.0/31", "172.16.0.1/32", "fd00:2::/118"]
)
def test_free_hosts_as_the_pairwise_check(seed: int, pool_text: str) -> None:
    rng = random.Random(seed)
    pool = ipaddress.ip_network(pool_text)
    used = _random_used(rng, pool, rng.randint(0, 30))
    assert list(itertools.islice(addrspace.free_hosts(pool, used), 600)) == list(
        itertools.islice(_old_free_hosts(pool, used), 600)
    )


def test_a_wider_pool_than_the_prefix_yields_nothing() -> None:
    assert list(addrspace.free_subnets(ipaddress.ip_network("10.0.0.0/30"), 24, [])) == []


# ---------------------------------------------------------------------------- timeline overlaps

_TOPOLOGY = """version: 1
name: overlaps
topology:
  nodes:
    a:
      services: [{name: s1, command: 'sleep 1'}, {name: s2, command: 'sleep 1'}]
    b: {}
    c: {}
  links:
    - {name: l1, endpoints: ['a:b', 'b:a']}
    - {name: l2, endpoints: ['b:c', 'c:b']}
    - {name: l3, endpoints: ['c:a', 'a:c']}
timeline:
"""


def _random_step(rng: random.Random, k: int) -> str:
    """One random timeline step (ids s0, s1, ...); about a third of them overlap another."""
    timing = f"at: {rng.randint(0, 40)}s"
    if rng.random() < 0.7:
        timing += f", for: {rng.choice([1, 2, 5, 10])}s"
    if rng.random() < 0.15:
        timing += f", repeat: {{every: {rng.choice([3, 8, 15])}s, count: {rng.randint(1, 4)}}}"
    link = rng.choice(["l1", "l2", "l3", "a:b", "c:b"])
    node = rng.choice(["a", "b", "c"])
    kind = rng.randrange(9)
    body = [
        f"fault: link-down, link: '{link}'",
        f"fault: degrade, link: '{link}', direction: {rng.choice(['both', 'a-to-b', 'b-to-a'])}, delay: 10ms",
        f"fault: blackhole, link: '{link}'",
        f"fault: node-loss, node: {node}",
        f"fault: node-freeze, node: {node}",
        f"fault: service-stop, node: a, service: {rng.choice(['s1', 's2'])}",
        "fault: partition, groups: [[a], [b, c]]",
        "fault: note, text: hello",
        f"fault: link-flap, link: '{link}', period: 4s, count: {rng.randint(1, 5)}, jitter: {rng.choice([0, 1, 3])}s",
    ][kind]
    if kind == 8:  # a flap has no `for:` or `repeat:`
        timing = f"at: {rng.randint(0, 40)}s"
    return f"  - {{id: s{k}, {timing}, {body}}}"


def _old_overlaps(self: Any, claimed: list[tuple[int, Any, dict[Any, bool]]], restores: dict[str, list[float]]) -> None:
    """The resolver's overlap check before it was made linear (the oracle): every pair of steps
    compared, in file order."""
    spans = self._spans(claimed, restores)
    for x, earlier in enumerate(claimed):
        for later in claimed[x + 1 :]:
            self._conflict(earlier, later, spans)


def _problems(path: Path) -> list[str]:
    from drills.errors import ScenarioError
    from drills.scenario.loader import load_scenario

    try:
        load_scenario(path)
    except ScenarioError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.mark.parametrize("seed", range(60))
def test_timeline_overlaps_as_the_pairwise_check(seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from drills.scenario import resolve

    rng = random.Random(seed)
    steps = [_random_step(rng, k) for k in range(rng.randint(2, 25))]
    # Restores of earlier steps, at or after their start.
    for _ in range(rng.randint(0, 3)):
        k = rng.randrange(len(steps))
        steps.append(f"  - {{restore: s{k}, at: {rng.randint(40, 60)}s}}")
    path = tmp_path / "overlaps.yaml"
    path.write_text(_TOPOLOGY + "\n".join(steps) + "\n", encoding="utf-8")
    found = _problems(path)
    monkeypatch.setattr(resolve._Resolver, "_overlaps", _old_overlaps)
    assert found == _problems(path)


def test_the_random_timelines_do_overlap(tmp_path: Path) -> None:
    """The comparison above is not vacuous: most seeds give overlap problems."""
    with_overlaps = 0
    for seed in range(60):
        rng = random.Random(seed)
        steps = [_random_step(rng, k) for k in range(rng.randint(2, 25))]
        path = tmp_path / f"t{seed}.yaml"
        path.write_text(_TOPOLOGY + "\n".join(steps) + "\n", encoding="utf-8")
        with_overlaps += any(" overlaps " in p for p in _problems(path))
    assert with_overlaps >= 30


@pytest.mark.parametrize("seed", SEEDS)
def test_first_overlapping_as_the_scan(seed: int) -> None:
    """Hand-given link subnets: the earliest accepted subnet a new one overlaps, as the resolver's
    scan of every accepted subnet found it (a subnet that overlaps none is accepted)."""
    rng = random.Random(seed)
    accepted: list[Any] = []
    index = addrspace.Disjoint()
    for _ in range(300):
        address = (10 << 24) + rng.randrange(4096)
        network = ipaddress.ip_network((address, rng.choice([22, 26, 28, 30, 30, 31, 32])), strict=False)
        expected = next((o for o in accepted if o.overlaps(network)), None)
        assert index.first_overlapping(network) == expected
        if expected is None:
            accepted.append(network)
            index.add(network, network)
    assert len(accepted) > 20


def test_topology_lookups_by_index(tmp_path: Path) -> None:
    """Topology.node/link and probe targets answer from indexes as the scans they replaced did:
    a link by its name or either endpoint, the first node holding an address, KeyError otherwise."""
    from drills.scenario.loader import load_scenario

    def scanned_link(ref: str) -> Any:  # the scan the index replaced: first match in file order
        return next(li for li in topology.links if ref in (li.name, li.a.endpoint, li.b.endpoint))

    path = tmp_path / "t.yaml"
    path.write_text(_TOPOLOGY.replace("timeline:\n", ""), encoding="utf-8")
    topology = load_scenario(path).topology
    for link in topology.links:
        for ref in (link.name, link.a.endpoint, link.b.endpoint):
            assert topology.link(ref) is scanned_link(ref)
    for node in topology.nodes:
        assert topology.node(node.name) is node
        for address in node.addresses:
            assert topology.probe_target(str(address)) == (address, node.name)
    assert topology.probe_target("192.0.2.1") == (ipaddress.ip_address("192.0.2.1"), None)
    with pytest.raises(KeyError):
        topology.node("nope")
    with pytest.raises(KeyError):
        topology.link("nope:x")

"""The scenario loader: every broken file in tests/broken/ gives exactly the pinned problems,
every example in scenarios/ loads, and addresses are assigned as documented.

The table below pins whole rendered problems (`FILE:LINE:COL: key.path: message`). When a message
changes on purpose, update the table; when it changes by accident, the diff shows where.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface
from pathlib import Path

import pytest

from drills.errors import ScenarioError
from drills.scenario import Scenario, load_scenario, validate_file

REPO = Path(__file__).resolve().parent.parent
BROKEN_DIR = Path("tests/broken")  # relative to REPO: the rendered file names stay stable
EXAMPLES = sorted((REPO / "scenarios").glob("*.yaml"))

BROKEN: dict[str, list[str]] = {
    "bad-duration.yaml": [
        "tests/broken/bad-duration.yaml:10:10: timeline[0].at: '5 seconds' is not a duration; write a duration such as 500ms, 2s, 1m30s, or a clock time T+01:30",
    ],
    "bad-ipv6-pool.yaml": [
        "tests/broken/bad-ipv6-pool.yaml:5:11: topology.addressing.ipv6: 'fd00:d811::1/48' has host bits set; did you mean fd00:d811::/48?",
    ],
    "bad-rate.yaml": [
        "tests/broken/bad-rate.yaml:7:11: profiles.dsl.rate: '8 megabit' is not a rate; write a rate such as 512kbit, 10mbit, 1gbit (bits) or 5mbps (bytes)",
    ],
    "duplicate-address.yaml": [
        "tests/broken/duplicate-address.yaml:9:22: topology.nodes.core.interfaces.eth2.ipv4: address 10.0.0.1 is also given at line 8; addresses are unique in a testbed",
    ],
    "duplicate-key.yaml": [
        "tests/broken/duplicate-key.yaml:9:7: topology.nodes.core.routes: duplicate key 'routes'; a key may appear once in a mapping",
    ],
    "duplicate-link-name.yaml": [
        "tests/broken/duplicate-link-name.yaml:10:14: topology.links[1].name: link name 'uplink' is already used by the link at line 9; link names are unique",
    ],
    "duplicate-route.yaml": [
        "tests/broken/duplicate-route.yaml:8:11: topology.nodes.core.routes[1]: route to 0.0.0.0/0 with metric 0 is already given at line 7; remove one, or give it another metric (a higher metric makes a backup route)",
    ],
    "duplicate-service-name.yaml": [
        "tests/broken/duplicate-service-name.yaml:9:17: topology.nodes.core.services[1].name: service name 'web' is used twice in node 'core'; give each service its own name",
    ],
    "endpoint-unknown-node.yaml": [
        "tests/broken/endpoint-unknown-node.yaml:8:20: topology.links[0].endpoints[0]: unknown node 'cor'; did you mean 'core'?",
    ],
    "endpoint-used-twice.yaml": [
        "tests/broken/endpoint-used-twice.yaml:10:20: topology.links[1].endpoints[0]: endpoint core:eth1 is already used by another link (line 9); each interface joins one link",
    ],
    "endpoint-without-colon.yaml": [
        "tests/broken/endpoint-without-colon.yaml:9:11: topology.links[0].endpoints[0]: 'core-eth1' is not an endpoint; write node:interface, such as core:eth1",
    ],
    "hosts-given-unplaced.yaml": [
        "tests/broken/hosts-given-unplaced.yaml:5:14: hosts.placement: placement is given, but nodes b, c name no host; add `host:` to each, or write `placement: auto` under `hosts:` to place the rest",
    ],
    "hosts-shape.yaml": [
        "tests/broken/hosts-shape.yaml:5:14: hosts.placement: 'balanced' is not allowed here (use one of: auto, given)",
        "tests/broken/hosts-shape.yaml:6:15: hosts.vxlan_port: 70000 is too large; write at most 65535",
        "tests/broken/hosts-shape.yaml:7:3: hosts.vxlan-port: unknown key 'vxlan-port'; did you mean 'vxlan_port'?",
        "tests/broken/hosts-shape.yaml:10:15: topology.nodes.a.host: 'host a' is not a valid name; use letters, digits, '_', '.', '-', starting with a letter or digit",
    ],
    "interface-name-lo.yaml": [
        "tests/broken/interface-name-lo.yaml:8:31: topology.links[0].endpoints[1]: 'lo' is the node's loopback; name link interfaces otherwise (eth1, wan0, ...)",
    ],
    "interface-name-too-long.yaml": [
        "tests/broken/interface-name-too-long.yaml:8:20: topology.links[0].endpoints[0]: interface name 'to-edge-primary0' is 16 bytes; Linux allows at most 15: shorten it",
    ],
    "link-both-ends-same-address.yaml": [
        "tests/broken/link-both-ends-same-address.yaml:10:22: topology.nodes.edge.interfaces.eth1.ipv4: both ends of the link have address 10.0.0.1; give edge:eth1 another address in 10.0.0.0/30",
    ],
    "link-ends-different-subnets.yaml": [
        "tests/broken/link-ends-different-subnets.yaml:10:22: topology.nodes.edge.interfaces.eth1.ipv4: 10.0.0.6/30 is not in the subnet of the other end core:eth1 (10.0.0.0/30); both ends of a link share one subnet",
    ],
    "link-three-endpoints.yaml": [
        "tests/broken/link-three-endpoints.yaml:10:30: topology.links[0].endpoints: a link has exactly two endpoints, got 3; a link is a point-to-point pair node:interface, so join more nodes with one link per pair",
    ],
    "loopback-not-32.yaml": [
        "tests/broken/loopback-not-32.yaml:6:17: topology.nodes.core.loopback: a loopback address is a /32; write 10.255.0.1/32",
    ],
    "missing-version.yaml": [
        "tests/broken/missing-version.yaml:1:1: missing required key 'version'; start the file with `version: 1`",
    ],
    "not-a-mapping.yaml": [
        "tests/broken/not-a-mapping.yaml:2:1: a scenario file holds a mapping that starts with `version: 1`; found a list",
    ],
    "objective-unknown-probe.yaml": [
        "tests/broken/objective-unknown-probe.yaml:12:13: expect[0].probe: unknown probe 'vioce'; did you mean 'voice'?",
    ],
    "objective-without-bound.yaml": [
        "tests/broken/objective-without-bound.yaml:12:5: expect[0]: an objective needs a `template` or a bound (max_outage, max_recovery, max_loss, latency, availability)",
    ],
    "overlap-degrade-blackhole.yaml": [
        "tests/broken/overlap-degrade-blackhole.yaml:14:5: timeline[3]: blackhole at T+00:22 overlaps link-down 'cut' on link sat (line 13) from T+00:20 to T+00:25; a link may not be set down by two faults at once, nor while a blackhole needs it up: move one, or shorten the first one's `for:`",
        "tests/broken/overlap-degrade-blackhole.yaml:15:5: timeline[4]: degrade at T+00:30 overlaps degrade 'rain-fade' on link sat (line 11) from T+00:10 to T+00:40; one direction of a link takes one degrade at a time: move one, or shorten the first one's `for:`",
    ],
    "overlap-link-faults.yaml": [
        "tests/broken/overlap-link-faults.yaml:12:5: timeline[1]: link-down 'cut' at T+00:10 overlaps link-flap 'wobble' on link fibre (line 11) from T+00:05 to T+00:17.5; a link may not be set down by two faults at once, nor while a blackhole needs it up: move one, or give the flap a smaller `count:`",
    ],
    "overlap-node-and-link.yaml": [
        "tests/broken/overlap-node-and-link.yaml:14:5: timeline[1]: link-down at T+00:20 overlaps node-loss 'power-loss' on link uplink (line 13) from T+00:10 to T+00:40; a link may not be set down by two faults at once, nor while a blackhole needs it up: move one, or shorten the first one's `for:`",
    ],
    "overlap-open-ended.yaml": [
        "tests/broken/overlap-open-ended.yaml:12:5: timeline[1]: service-stop at T+00:30 overlaps node-freeze 'hang' on node core (line 11) from T+00:05 to the end of the drill; a node's processes may not be stopped, killed or restarted by two faults at once: move one, or end the first with `for:` or `restore:`",
    ],
    "overlap-repeat-itself.yaml": [
        "tests/broken/overlap-repeat-itself.yaml:11:64: timeline[0].repeat: each repetition lasts 10 s but one starts every 5 s, so they overlap; make `repeat.every` longer than `for`",
        "tests/broken/overlap-repeat-itself.yaml:12:78: timeline[1].jitter: down periods of 2 s, each up to 3 s late, can run into the next one (every 4 s); keep `jitter` at most 2 s",
    ],
    "overlapping-link-subnets.yaml": [
        "tests/broken/overlapping-link-subnets.yaml:8:22: topology.nodes.core.interfaces.eth2.ipv4: subnet 10.0.0.128/30 overlaps 10.0.0.0/24 given at line 7; links need separate subnets",
    ],
    "partition-node-in-two-groups.yaml": [
        "tests/broken/partition-node-in-two-groups.yaml:12:56: timeline[0].groups[1][0]: node 'edge' is in group 1 already; groups of a partition do not overlap",
    ],
    "percent-over-100.yaml": [
        "tests/broken/percent-over-100.yaml:10:50: timeline[0].loss: 150% is outside 0–100 %; write a percentage such as 0.5% or 0.5 (meaning 0.5 %), between 0 and 100",
    ],
    "probe-from-unknown-node.yaml": [
        "tests/broken/probe-from-unknown-node.yaml:10:43: probes[0].from: unknown node 'egde'; did you mean 'edge'?",
    ],
    "probe-target-unknown.yaml": [
        "tests/broken/probe-target-unknown.yaml:10:45: probes[0].to: unknown target 'croe' (name a node, an endpoint node:interface or an address); did you mean 'core'?",
    ],
    "readiness-tcp-and-command.yaml": [
        "tests/broken/readiness-tcp-and-command.yaml:9:18: topology.nodes.core.services[0].ready: give exactly one readiness check: `tcp: PORT` or `command: ...`",
    ],
    "restore-unknown-step.yaml": [
        "tests/broken/restore-unknown-step.yaml:11:24: timeline[1].restore: no earlier step has id 'uplink-cutt'; did you mean 'uplink-cut'?",
    ],
    "route-to-host-bits.yaml": [
        "tests/broken/route-to-host-bits.yaml:7:16: topology.nodes.core.routes[0].to: 203.0.113.7/24 has host bits set; did you mean 203.0.113.0/24?",
    ],
    "route-via-not-connected.yaml": [
        "tests/broken/route-via-not-connected.yaml:9:37: topology.nodes.core.routes[0].via: next hop 10.0.1.2 is on no subnet of node 'core'; use an address of a directly connected neighbour",
    ],
    "route-without-via-or-dev.yaml": [
        "tests/broken/route-without-via-or-dev.yaml:7:11: topology.nodes.core.routes[0]: a route needs `via` (next hop) or `dev` (outgoing interface)",
    ],
    "several-drill-problems.yaml": [
        "tests/broken/several-drill-problems.yaml:11:69: probes[0].rate_pps: 0 is too small; write at least 1",
        "tests/broken/several-drill-problems.yaml:12:35: probes[1].from: unknown node 'egde'; did you mean 'edge'?",
        "tests/broken/several-drill-problems.yaml:14:47: timeline[0].link: unknown link 'uplnk' (name a link or one of its endpoints node:interface); did you mean 'uplink'?",
        "tests/broken/several-drill-problems.yaml:16:50: timeline[2].for: 'forever' is not a duration; write a duration such as 500ms, 2s, 1m30s, or a clock time T+01:30",
        "tests/broken/several-drill-problems.yaml:18:26: expect[0].step: no timeline step has id 'cutt'; did you mean 'cut'?",
        "tests/broken/several-drill-problems.yaml:19:28: expect[1].template: 'fastest' is not allowed here; did you mean 'fast'? (use one of: carrier-grade, fast, vrrp-default, routing-default, mcptt, g114-voice)",
    ],
    "several-topology-problems.yaml": [
        "tests/broken/several-topology-problems.yaml:7:13: topology.nodes.core.kind: 'docker' is not allowed here (use one of: netns, container)",
        "tests/broken/several-topology-problems.yaml:10:21: topology.nodes.edge.interfaces.eth1.mtu: 20 is too small; write at least 68",
        "tests/broken/several-topology-problems.yaml:13:52: topology.links[0].profile: unknown link profile 'fiber'; did you mean 'fibre'? (known: 5g, fibre, geo-satellite, l-band-terminal, leo-satellite, lte, meo-satellite, subsea-fibre)",
        "tests/broken/several-topology-problems.yaml:14:31: topology.links[1].endpoints[1]: unknown node 'sit'; did you mean 'site'?",
        "tests/broken/several-topology-problems.yaml:15:19: topology.links[2].endpoints: a link has exactly two endpoints, got 1; a link is a point-to-point pair node:interface, so join more nodes with one link per pair",
    ],
    "step-missing-fault.yaml": [
        "tests/broken/step-missing-fault.yaml:10:5: timeline[0]: a timeline step needs `fault:` (one of link-down, link-flap, degrade, blackhole, partition, node-loss, node-freeze, service-stop, exec, note) or `restore:`",
    ],
    "sysctl-not-net.yaml": [
        "tests/broken/sysctl-not-net.yaml:8:9: topology.nodes.core.sysctls.kernel.panic: 'kernel.panic' is not a per-namespace sysctl; only net.* keys can be set in a node (others would change the host)",
    ],
    "timeline-past-duration.yaml": [
        "tests/broken/timeline-past-duration.yaml:11:11: duration: the timeline runs until 70 s, past the drill's duration of 60 s; lengthen `duration`",
    ],
    "topology-include-missing.yaml": [
        "tests/broken/topology-include-missing.yaml:3:11: topology: topology file '../testbed/topologies/regional-ring.yaml' not found (looked at tests/testbed/topologies/regional-ring.yaml); the path is relative to the scenario file",
    ],
    "topology-include-problems.yaml": [
        "tests/broken/topologies/bad-ring.yaml:9:42: topology.links[2].profile: unknown link profile 'fibre-cut'; did you mean 'fibre'? (known: 5g, fibre, geo-satellite, l-band-terminal, leo-satellite, lte, meo-satellite, subsea-fibre)",
    ],
    "unknown-fault-kind.yaml": [
        "tests/broken/unknown-fault-kind.yaml:10:21: timeline[0].fault: unknown fault 'link-dwn'; did you mean 'link-down'?",
    ],
    "unknown-node-key.yaml": [
        "tests/broken/unknown-node-key.yaml:6:7: topology.nodes.core.route: unknown key 'route'; did you mean 'routes'?",
    ],
    "unknown-probe-type.yaml": [
        "tests/broken/unknown-probe-type.yaml:10:25: probes[0].type: unknown type 'udp-steam'; did you mean 'udp-stream'?",
    ],
    "unknown-profile.yaml": [
        "tests/broken/unknown-profile.yaml:8:52: topology.links[0].profile: unknown link profile 'fiber'; did you mean 'fibre'? (known: 5g, fibre, geo-satellite, l-band-terminal, leo-satellite, lte, meo-satellite, subsea-fibre)",
    ],
    "unknown-top-level-key.yaml": [
        "tests/broken/unknown-top-level-key.yaml:9:1: timelime: unknown key 'timelime'; did you mean 'timeline'?",
    ],
    "version-2.yaml": [
        "tests/broken/version-2.yaml:1:10: version: unsupported format version 2; this drills reads `version: 1`",
    ],
    "version-quoted.yaml": [
        "tests/broken/version-quoted.yaml:1:10: version: the version is a number: write `version: 1` without quotes",
    ],
    "yaml-syntax-error.yaml": [
        "tests/broken/yaml-syntax-error.yaml:10:1: YAML syntax: did not find expected ',' or '}' (while parsing a flow mapping that starts at line 9, column 7); check indentation, quoting and brackets",
    ],
}


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)
    return REPO


def _problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [str(problem) for problem in caught.value.problems]


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the broken corpus


def test_table_covers_every_broken_file() -> None:
    on_disk = {path.name for path in (REPO / BROKEN_DIR).glob("*.yaml")}
    assert set(BROKEN) == on_disk
    assert len(on_disk) >= 30


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file(name: str, in_repo: Path) -> None:
    path = BROKEN_DIR / name
    assert _problems(path) == BROKEN[name]
    # validate_file reports the same, without raising.
    assert [str(problem) for problem in validate_file(path)] == BROKEN[name]


def test_broken_files_are_small() -> None:
    """Each broken file shows one mistake (or a few, on purpose): short enough to read at once."""
    for path in (REPO / BROKEN_DIR).glob("*.yaml"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 25, path.name


def test_every_message_says_what_to_do(in_repo: Path) -> None:
    """Each problem carries a hint: after "; " (what to write, did you mean...), or the keys to
    write in backquotes (`via` or `dev`), or the values allowed (use one of: ...)."""
    for name in BROKEN:
        for problem in validate_file(BROKEN_DIR / name):
            message = problem.message
            assert "; " in message or "`" in message or "(use one of: " in message, (name, message)


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("unknown-top-level-key.yaml", "did you mean 'timeline'?"),
        ("unknown-node-key.yaml", "did you mean 'routes'?"),
        ("endpoint-unknown-node.yaml", "did you mean 'core'?"),
        ("unknown-profile.yaml", "did you mean 'fibre'?"),
        ("unknown-fault-kind.yaml", "did you mean 'link-down'?"),
        ("unknown-probe-type.yaml", "did you mean 'udp-stream'?"),
        ("probe-from-unknown-node.yaml", "did you mean 'edge'?"),
        ("probe-target-unknown.yaml", "did you mean 'core'?"),
        ("objective-unknown-probe.yaml", "did you mean 'voice'?"),
        ("restore-unknown-step.yaml", "did you mean 'uplink-cut'?"),
        ("route-to-host-bits.yaml", "did you mean 203.0.113.0/24?"),
        ("bad-ipv6-pool.yaml", "did you mean fd00:d811::/48?"),
    ],
)
def test_near_misses_get_a_suggestion(name: str, suggestion: str) -> None:
    assert any(f"; {suggestion}" in p for p in BROKEN[name]), BROKEN[name]


def test_several_problems_are_reported_in_one_pass() -> None:
    several = [name for name, problems in BROKEN.items() if len(problems) >= 3]
    assert len(several) >= 2


def test_problems_are_in_file_order() -> None:
    for name, problems in BROKEN.items():
        positions = []
        for text in problems:
            file, line, column = text.split(":")[:3]
            positions.append((file, int(line), int(column)))
        assert positions == sorted(positions), name


# --------------------------------------------------------------------------- the examples


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert isinstance(scenario, Scenario)
    assert scenario.description.strip(), f"{path.name} needs a description"
    assert validate_file(path) == []
    assert scenario.duration_s > 0


def test_there_are_examples() -> None:
    assert EXAMPLES


# --------------------------------------------------------------------------- addressing

RING = """\
version: 1
name: ring
topology:
  nodes:
    a: {}
    b: {}
    c: {}
    d: {}
  links:
    - {endpoints: [a:b, b:a]}
    - {endpoints: [b:c, c:b]}
    - {endpoints: [c:d, d:c]}
    - {endpoints: [d:a, a:d]}
    - {name: diagonal, endpoints: [a:c, c:a]}
"""


def _all_addresses(scenario: Scenario) -> list[ipaddress.IPv4Address]:
    out = []
    for link in scenario.topology.links:
        for end in (link.a, link.b):
            assert end.ipv4 is not None
            out.append(end.ipv4.ip)
    for node in scenario.topology.nodes:
        if node.loopback is not None:
            out.append(node.loopback.ip)
    return out


def test_auto_addressing(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, "ring.yaml", RING))
    links = scenario.topology.links
    assert [link.name for link in links] == ["a:b--b:a", "b:c--c:b", "c:d--d:c", "d:a--a:d", "diagonal"]
    subnets = []
    for link in links:
        a, b = link.a.ipv4, link.b.ipv4
        assert a is not None and b is not None
        assert a.network == b.network, link.name
        assert a.network.prefixlen == 30
        assert a.network.subnet_of(IPv4Network("198.18.0.0/16"))
        assert {a.ip, b.ip} == set(a.network.hosts())
        assert link.a.ipv6 is None and link.b.ipv6 is None  # no ipv6 pool given
        subnets.append(a.network)
    assert len(set(subnets)) == len(subnets)
    assert not any(x.overlaps(y) for i, x in enumerate(subnets) for y in subnets[i + 1 :])
    assert subnets[0] == IPv4Network("198.18.0.0/30")  # handed out in file order
    loopbacks = []
    for node in scenario.topology.nodes:
        assert node.loopback is not None
        assert node.loopback.network.prefixlen == 32
        assert node.loopback.ip in IPv4Network("198.19.0.0/16")
        loopbacks.append(node.loopback.ip)
    assert len(set(loopbacks)) == len(loopbacks) == 4
    addresses = _all_addresses(scenario)
    assert len(set(addresses)) == len(addresses)
    # Each node got the interfaces its links name, in its own interface list.
    assert [i.name for i in scenario.topology.node("a").interfaces] == ["b", "d", "c"]


def test_auto_addressing_ipv6_pool(tmp_path: Path) -> None:
    text = RING.replace("topology:\n", "topology:\n  addressing: {ipv6: fd00:d811::/48}\n")
    scenario = load_scenario(_write(tmp_path, "ring6.yaml", text))
    nets = set()
    for link in scenario.topology.links:
        assert link.a.ipv6 is not None and link.b.ipv6 is not None
        assert link.a.ipv6.network == link.b.ipv6.network
        assert link.a.ipv6.network.prefixlen == 64
        assert link.a.ipv6.network.subnet_of(ipaddress.IPv6Network("fd00:d811::/48"))
        assert link.a.ipv6.ip != link.b.ipv6.ip
        nets.add(link.a.ipv6.network)
    assert len(nets) == len(scenario.topology.links)


def test_overlapping_pools_still_give_unique_addresses(tmp_path: Path) -> None:
    text = RING.replace("topology:\n", "topology:\n  addressing: {ipv4: 10.0.0.0/24, loopbacks: 10.0.0.0/24}\n")
    scenario = load_scenario(_write(tmp_path, "pools.yaml", text))
    subnets = [link.a.ipv4.network for link in scenario.topology.links if link.a.ipv4]
    for node in scenario.topology.nodes:
        assert node.loopback is not None
        assert not any(node.loopback.ip in net for net in subnets), node.name
    addresses = _all_addresses(scenario)
    assert len(set(addresses)) == len(addresses)


MANUAL = """\
version: 1
name: manual
topology:
  nodes:
    a:
      loopback: 10.255.0.1/32
      interfaces:
        b: {ipv4: 198.18.0.1/30}
        c: {ipv4: 203.0.113.9/29, ipv6: 2001:db8:1::a/64, mtu: 1400}
    b:
      loopback: none
      interfaces:
        d: {ipv4: 192.0.2.0/31}
    c: {}
    d:
      interfaces:
        a: {ipv4: 198.51.100.2/30}
  links:
    - {endpoints: [a:b, b:a]}
    - {endpoints: [a:c, c:a]}
    - {endpoints: [b:d, d:b]}
    - {endpoints: [a:d, d:a]}
    - {endpoints: [c:d, d:c]}
"""


def test_manual_addresses_are_honoured(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, "manual.yaml", MANUAL))
    link = {f"{li.a.endpoint}": li for li in scenario.topology.links}
    # Given on the first end: kept, and the other end gets the neighbour address.
    assert link["a:b"].a.ipv4 == IPv4Interface("198.18.0.1/30")
    assert link["a:b"].b.ipv4 == IPv4Interface("198.18.0.2/30")
    # A wider subnet: the neighbour is the first other host.
    assert link["a:c"].a.ipv4 == IPv4Interface("203.0.113.9/29")
    assert link["a:c"].b.ipv4 == IPv4Interface("203.0.113.10/29")
    assert link["a:c"].a.ipv6 == IPv6Interface("2001:db8:1::a/64")
    assert link["a:c"].b.ipv6 == IPv6Interface("2001:db8:1::1/64")
    assert link["a:c"].a.mtu == 1400 and link["a:c"].b.mtu is None
    # A /31: both addresses are usable.
    assert link["b:d"].a.ipv4 == IPv4Interface("192.0.2.0/31")
    assert link["b:d"].b.ipv4 == IPv4Interface("192.0.2.1/31")
    # Given on the second end only: the first end gets the neighbour address.
    assert link["a:d"].b.ipv4 == IPv4Interface("198.51.100.2/30")
    assert link["a:d"].a.ipv4 == IPv4Interface("198.51.100.1/30")
    # The one automatic link skips 198.18.0.0/30, taken by hand.
    auto = link["c:d"].a.ipv4
    assert auto is not None
    assert auto.network == IPv4Network("198.18.0.4/30")
    # Loopbacks: given, none, and automatic.
    topo = scenario.topology
    assert topo.node("a").loopback == IPv4Interface("10.255.0.1/32")
    assert topo.node("b").loopback is None
    assert topo.node("c").loopback == IPv4Interface("198.19.0.1/32")
    assert topo.node("d").loopback == IPv4Interface("198.19.0.2/32")


def test_manual_address_in_the_automatic_pool_is_skipped(tmp_path: Path) -> None:
    text = RING.replace("    a: {}\n", "    a:\n      interfaces:\n        c: {ipv4: 198.18.0.5/30}\n")
    scenario = load_scenario(_write(tmp_path, "skip.yaml", text))
    nets = [li.a.ipv4.network for li in scenario.topology.links if li.a.ipv4]
    assert nets[-1] == IPv4Network("198.18.0.4/30")  # the diagonal, given by hand
    assert IPv4Network("198.18.0.4/30") not in nets[:-1]
    assert len(set(nets)) == len(nets)


# --------------------------------------------------------------------------- topology files

SCENARIO_WITH_INCLUDE = """\
version: 1
name: include
topology: topologies/small.yaml
probes:
  - {name: ping, type: icmp, from: a, to: b}
"""


def test_included_topology_loads(tmp_path: Path) -> None:
    _write(tmp_path, "topologies/small.yaml", "nodes:\n  a: {}\n  b: {}\nlinks:\n  - {endpoints: [a:b, b:a]}\n")
    scenario = load_scenario(_write(tmp_path, "drill.yaml", SCENARIO_WITH_INCLUDE))
    assert [node.name for node in scenario.topology.nodes] == ["a", "b"]


def test_included_topology_problems_name_the_included_file(tmp_path: Path) -> None:
    topology = _write(
        tmp_path,
        "topologies/small.yaml",
        "# a comment line\nnodes:\n  a: {}\n  b: {}\nlinks:\n  - {endpoints: [a:b, bb:a]}\n  - {endpoints: [a:b2, b:a2], profil: fibre}\n",
    )
    scenario = _write(tmp_path, "drill.yaml", SCENARIO_WITH_INCLUDE.replace("to: b}", "to: c}"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(scenario)
    assert [(p.file, p.line, p.column, p.path) for p in caught.value.problems] == [
        (str(topology), 6, 23, "topology.links[0].endpoints[1]"),
        (str(topology), 7, 31, "topology.links[1].profil"),
    ]
    assert [p.message for p in caught.value.problems] == [
        "unknown node 'bb'; did you mean 'b'?",
        "unknown key 'profil'; did you mean 'profile'?",
    ]
    # Once the topology is right, the problems are in the scenario file again.
    topology.write_text(topology.read_text().replace("profil:", "profile:").replace("bb:a", "b:a"), encoding="utf-8")
    assert [str(p) for p in validate_file(scenario)] == [
        f"{scenario}:5:43: probes[0].to: unknown target 'c' (name a node, an endpoint node:interface or an address)",
    ]


def test_included_topology_with_a_yaml_error(tmp_path: Path) -> None:
    topology = _write(tmp_path, "topologies/small.yaml", "nodes:\n  a: {\nlinks: []\n")
    scenario = _write(tmp_path, "drill.yaml", SCENARIO_WITH_INCLUDE)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(scenario)
    assert [(p.file, p.line) for p in caught.value.problems] == [(str(topology), 4)]  # end of file
    assert "flow mapping that starts at line 2" in caught.value.problems[0].message


def test_included_topology_that_is_not_a_mapping(tmp_path: Path) -> None:
    topology = _write(tmp_path, "topologies/small.yaml", "# nodes first\n- a\n- b\n")
    scenario = _write(tmp_path, "drill.yaml", SCENARIO_WITH_INCLUDE)
    assert [str(p) for p in validate_file(scenario)] == [
        f"{topology}:2:1: a topology file holds a mapping with `nodes:` and `links:`",
    ]


# --------------------------------------------------------------------------- odd values


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("duration: .nan", "duration: nan is not a finite duration"),
        ("duration: .inf", "duration: inf is not a finite duration"),
        ("seed: !!int x", "seed: cannot read this value as !!int"),
        ("seed: !!python/object:os.system x", "seed: cannot read this value as !!python/object:os.system"),
        ("duration: 1h2", "duration: '1h2' is not a duration"),
        ("profiles: {x: {rate: .inf}}", "profiles.x.rate: inf is not a positive rate"),
        ("profiles: {x: {rate: 1e999mbit}}", "profiles.x.rate: '1e999mbit' is not a rate"),
        ("<<: {seed: 1}", "YAML merge keys (<<) are not supported"),
        ("---\nversion: 1", "expected a single document in the stream"),
    ],
)
def test_odd_values_are_problems_not_crashes(snippet: str, expected: str, tmp_path: Path) -> None:
    text = "version: 1\nname: odd\ntopology:\n  nodes: {a: {}}\n" + snippet + "\n"
    problems = [str(p) for p in validate_file(_write(tmp_path, "odd.yaml", text))]
    assert any(expected in p for p in problems), problems


def test_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty.yaml", "# nothing yet\n")
    assert [p.message for p in validate_file(path)] == [
        "a scenario file holds a mapping that starts with `version: 1`; the file is empty"
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert [str(p) for p in validate_file(path)] == [f"{path}: file not found; check the path"]

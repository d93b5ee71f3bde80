"""Cross-host links served by the userspace engine, against a real kernel: on each host the node's
interface is a TAP, the hidden end in the wire namespace another TAP bridged to the VXLAN device,
and a relay joins them, impairing what the node sends.

The two emulated hosts (namespaces joined by an underlay veth), the parts and the helpers are
tests/test_wire.py's. Delays are checked on the round trip of pings from n1 to n2 (no clock
sync needed): a relay holds every frame of an impaired direction at least the delay asked, so
the smallest round trip of a series is at least the sum of the two directions' delays whatever
the load (a load only adds); the upper bounds are explained where they are asserted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_wire import Deployed, Hosts, deploy, link_json, links_in, min_rtt_ms, ping, sh, two_hosts, wait_carrier
from wire_testing import load_topology

from drills.backend import NETEM, Impairment
from drills.clock import SystemClock
from drills.engine.fault import CARRIER_TIMEOUT_S
from drills.errors import BackendError
from drills.impairment import Settings
from drills.netns import wire
from drills.netns.part import PartOps, part_ops
from drills.scenario.resolved import Topology
from drills.userspace.deploy import labelled_relays

pytestmark = pytest.mark.netns

MTU = 1450
DELAY_MS = 40
# An upper bound on the smallest of PINGS round trips with DELAY_MS in one direction: below
# twice the delay (it would be 2 x DELAY_MS if both hosts impaired the direction, or both
# directions were impaired). It fails only if every one of the PINGS pings, 50 ms apart, is
# late by more than DELAY_MS on top of the delay; an unloaded relay adds ~0.1 ms, and a ping
# late by 40 ms is rarer than 1 in 4 even on a machine loaded past its cores, so all 10 are
# below 1e-6 (and each series is repeated by no test).
ONE_WAY_BOUND_MS = 2 * DELAY_MS


@pytest.fixture(name="hosts")
def hosts_fixture() -> Iterator[Hosts]:
    with two_hosts() as found:
        yield found


def scenario(directory: Path, name: str, link: dict[str, Any], profiles: dict[str, Any] | None = None) -> Topology:
    """test_wire's layout (n1 and n3 on host A, n2 on host B, link x crosses) with `link`'s keys on x."""
    nodes = {
        "n1": {"routes": [{"to": "n3", "via": "n3:l"}]},
        "n2": {"routes": [{"to": "n3", "via": "n1:x"}]},
        "n3": {"routes": [{"to": "default", "via": "n1:l"}]},
    }
    links = [{"name": "x", "endpoints": ["n1:x", "n2:x"], **link}, {"name": "l", "endpoints": ["n1:l", "n3:l"]}]
    return load_topology(directory, name, {"nodes": nodes, "links": links}, profiles)


def relay_pid(up: Deployed, host: str) -> int:
    backend = up.backend_a if host == "A" else up.backend_b
    return backend.relays["x"].pid


def interfaces(namespace: str) -> list[str]:
    return links_in(namespace) if namespace in sh("ip", "netns", "list").stdout.split() else []


def both_ops(up: Deployed) -> tuple[PartOps, PartOps]:
    clock = SystemClock()
    ops_a = part_ops(up.backend_a, up.topology, up.part_a, up.run_a, clock)
    ops_b = part_ops(up.backend_b, up.topology, up.part_b, up.run_b, clock)
    ops_a.warm()
    ops_b.warm()
    return ops_a, ops_b


def test_a_cross_link_asking_for_userspace_carries_degrades_each_way_at_its_sender_and_cuts_at_both_ends(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, hosts: Hosts
) -> None:
    state_b = tmp_path / "state-b"
    host_snapshot.watch_state_dir(state_b)
    topology = scenario(tmp_path, "split", {"engine": "userspace"})
    up = deploy(topology, hosts, state_dir, state_b, vni=700)
    ops_a, ops_b = both_ops(up)
    wire_a, wire_b = (wire.wire_namespace(up.run_a.run_id, host) for host in "AB")
    try:
        assert ops_a.link_engine("x") == "userspace" and ops_b.link_engine("x") == "userspace"
        assert up.backend_a.engines["x"] == "userspace" and up.backend_b.engines["x"] == "userspace"
        assert relay_pid(up, "A") != relay_pid(up, "B")  # one relay per host
        # TAPs (tun/tap devices) where the veth ends were, bridged as they were, with the tunnel's MTU.
        for namespace, name in ((up.ns("n1"), "x"), (up.ns("n2"), "x"), (wire_a, "wv700"), (wire_b, "wv700")):
            shown = sh("ip", "-n", namespace, "-d", "link", "show", "dev", name).stdout
            assert " tun type tap " in shown and link_json(namespace, name)["mtu"] == MTU, shown
        assert link_json(wire_a, "wv700")["master"] == "wb700" == link_json(wire_b, "wv700")["master"]

        # Packets both ways, routed ones too, and the MTU as stated.
        assert ping(up.ns("n1"), up.address("n2", "x")).returncode == 0
        assert ping(up.ns("n2"), up.address("n1", "x")).returncode == 0
        assert ping(up.ns("n3"), up.address("n2", "x")).returncode == 0
        assert ping(up.ns("n1"), up.address("n2", "x"), "-M", "do", "-s", str(MTU - 28)).returncode == 0
        baseline = min_rtt_ms(up)
        assert baseline < DELAY_MS

        # a-to-b on host A only: the round trip rises by the one delay, not twice.
        link = topology.link("x")
        delay = Settings(delay_s=DELAY_MS / 1000)
        ops_a.impair([Impairment(link, "a-to-b", delay)])
        assert DELAY_MS <= min_rtt_ms(up) < ONE_WAY_BOUND_MS
        ops_a.impair([Impairment(link, "a-to-b", None)])
        # b-to-a on host B only.
        ops_b.impair([Impairment(link, "b-to-a", delay)])
        assert DELAY_MS <= min_rtt_ms(up) < ONE_WAY_BOUND_MS
        with pytest.raises(BackendError, match="on another host"):
            ops_a.impair([Impairment(link, "b-to-a", delay)])
        with pytest.raises(BackendError, match="on another host"):
            ops_b.impair([Impairment(link, "a-to-b", delay)])
        ops_b.impair([Impairment(link, "b-to-a", None)])
        assert min_rtt_ms(up) < DELAY_MS

        # A cut of n1's end: n1 loses carrier through its relay, n2 through B's (the far end).
        ops_a.set_link("n1", "x", up=False)
        ops_b.set_far_end("x", False)
        assert ops_b.far_end_state("x").admin_up is False
        assert wait_carrier(up.ns("n2"), "x", carrier=False, bound_s=CARRIER_TIMEOUT_S), "n2 kept carrier"
        assert ops_b.link_state("n2", "x").carrier is False
        assert ops_a.link_state("n1", "x").carrier is False
        ops_b.set_far_end("x", True)
        ops_a.set_link("n1", "x", up=True)
        assert wait_carrier(up.ns("n2"), "x", carrier=True, bound_s=CARRIER_TIMEOUT_S), "n2 did not regain carrier"
        assert wait_carrier(up.ns("n1"), "x", carrier=True, bound_s=CARRIER_TIMEOUT_S), "n1 did not regain carrier"
        ops_a.replace_routes("n1", topology.node("n1").routes)  # set down, the kernel dropped them
        assert ping(up.ns("n1"), up.address("n2", "x")).returncode == 0

        # A SIGKILLed relay leaves no device: its TAPs close with it.
        ops_a.close()
        os.kill(relay_pid(up, "A"), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while ("x" in interfaces(up.ns("n1")) or "wv700" in interfaces(wire_a)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "x" not in interfaces(up.ns("n1")) and "wv700" not in interfaces(wire_a)
    finally:
        ops_a.close()
        ops_b.close()
        up.teardown()
    assert labelled_relays(up.run_a.run_id) == []
    assert not [n for n in sh("ip", "netns", "list").stdout.split() if up.run_a.run_id in n]


def test_a_cross_link_needing_delay_gets_the_userspace_engine_on_a_host_without_netem(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, hosts: Hosts
) -> None:
    # A profile of 20 ms each way: each host delays only what its node sends, so the round trip
    # is 40 ms, not 80. Either engine (the kernel's where netem exists, as in the VM lane).
    state_b = tmp_path / "state-b"
    host_snapshot.watch_state_dir(state_b)
    topology = scenario(tmp_path, "far", {"profile": "far"}, {"far": {"delay": f"{DELAY_MS // 2}ms"}})
    up = deploy(topology, hosts, state_dir, state_b, vni=701)
    ops_a, ops_b = both_ops(up)
    try:
        expected = "kernel" if up.backend_a.capabilities().get(NETEM, False) else "userspace"
        assert ops_a.link_engine("x") == expected == ops_b.link_engine("x")
        assert ping(up.ns("n1"), up.address("n2", "x")).returncode == 0
        assert DELAY_MS <= min_rtt_ms(up) < ONE_WAY_BOUND_MS
        if expected == "userspace":
            assert any("link x: userspace engine (relay pid" in line for line in up.log), up.log
        # A degrade on top, a-to-b, replaces A's direction only (the profile's 20 ms with 40).
        ops_a.impair([Impairment(topology.link("x"), "a-to-b", Settings(delay_s=DELAY_MS / 1000))])
        assert DELAY_MS + DELAY_MS // 2 <= min_rtt_ms(up) < ONE_WAY_BOUND_MS + DELAY_MS // 2
    finally:
        ops_a.close()
        ops_b.close()
        up.teardown()
    assert labelled_relays(up.run_a.run_id) == []

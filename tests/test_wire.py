"""Cross-host links as VXLAN on the namespace backend, against a real kernel.

Two hosts are emulated by two namespaces, `hA` and `hB`, joined by an underlay veth
(198.19.253.1/24 and .2/24): each host's part is deployed with its wire created from its own
"host" namespace (`underlay_ns`), so the tunnels' UDP sockets live there, as they would in a real
host's namespace. Each part has its own state directory and journal, under the same run id, as
on two machines.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wire_testing import load_topology

from drills import lifecycle
from drills.backend import CrossEnd, HostPart, Impairment
from drills.clock import SystemClock
from drills.errors import BackendError, EnvironmentProblem
from drills.impairment import Settings
from drills.netns import kernel, wire
from drills.netns.backend import NetnsBackend, namespace_name
from drills.netns.part import deploy_part, part_ops
from drills.runs import Run, RunStore
from drills.scenario.resolved import Topology

pytestmark = pytest.mark.netns

UNDERLAY_A, UNDERLAY_B = "198.19.253.1", "198.19.253.2"
PORT = 14789
MTU = 1450  # the underlay veth's 1500 less VXLAN's 50
CARRIER_BOUND_S = 2.0  # a veth's carrier follows its peer's state at once; 2 s is generous
COMMAND_TIMEOUT_S = 30
PINGS = 10  # a series of round trips, whose smallest is compared with a delay
SOCKET_BOUND_S = 10.0  # namespace cleanup runs in a kernel worker: well under a second here


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=check)


def links_in(namespace: str) -> list[str]:
    """`ip -o link` of a namespace: every interface's name."""
    return sorted(line.split(":")[1].strip().split("@")[0] for line in sh("ip", "-n", namespace, "-o", "link").stdout.splitlines())


@dataclass
class Hosts:
    a: str
    b: str


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with two_hosts() as found:
        yield found


@contextmanager
def two_hosts() -> Iterator[Hosts]:
    """Two namespaces playing two hosts, with an underlay veth between them."""
    tag = uuid.uuid4().hex[:6]
    found = Hosts(f"drilltest-wire-{tag}-A", f"drilltest-wire-{tag}-B")
    try:
        sh("ip", "netns", "add", found.a)
        sh("ip", "netns", "add", found.b)
        sh("ip", "-n", found.a, "link", "add", "under", "type", "veth", "peer", "name", "under", "netns", found.b)
        for ns, address in ((found.a, UNDERLAY_A), (found.b, UNDERLAY_B)):
            sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "under")
            sh("ip", "-n", ns, "link", "set", "under", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield found
    finally:
        sh("ip", "netns", "del", found.a, check=False)
        sh("ip", "netns", "del", found.b, check=False)


def scenario(directory: Path) -> Topology:
    """n1 and n3 on host A with a local link, n2 on host B; link x crosses, with a rate profile."""
    nodes = {
        "n1": {"routes": [{"to": "n3", "via": "n3:l"}]},
        "n2": {"routes": [{"to": "n3", "via": "n1:x"}]},
        "n3": {"routes": [{"to": "default", "via": "n1:l"}]},
    }
    links = [
        {"name": "x", "endpoints": ["n1:x", "n2:x"], "profile": "metro"},
        {"name": "l", "endpoints": ["n1:l", "n3:l"]},
    ]
    shape = {"nodes": nodes, "links": links, "addressing": {"ipv6": "fd00:d811:7e57::/48"}}
    return load_topology(directory, "split", shape, {"metro": {"rate": "100mbit"}})


def parts(vni: int) -> tuple[HostPart, HostPart]:
    a = CrossEnd("x", "n1", "x", vni, UNDERLAY_A, UNDERLAY_B, PORT, MTU)
    b = CrossEnd("x", "n2", "x", vni, UNDERLAY_B, UNDERLAY_A, PORT, MTU)
    return HostPart("A", ("n1", "n3"), (a,)), HostPart("B", ("n2",), (b,))


@dataclass
class Deployed:
    topology: Topology
    part_a: HostPart
    part_b: HostPart
    run_a: Run
    run_b: Run
    backend_a: NetnsBackend
    backend_b: NetnsBackend
    log: list[str]

    def ns(self, node: str) -> str:
        return namespace_name(self.run_a.run_id, node)

    def address(self, node: str, iface: str) -> str:
        ipv4 = self.topology.node(node).interface(iface).ipv4
        assert ipv4 is not None
        return str(ipv4.ip)

    def teardown(self) -> None:
        for backend, run in ((self.backend_a, self.run_a), (self.backend_b, self.run_b)):
            report = backend.teardown(run)
            assert report.clean and not report.refused, report


def deploy(topology: Topology, hosts: Hosts, state_a: Path, state_b: Path, vni: int) -> Deployed:
    """Both parts deployed, each on its emulated host, under one run id (as on two machines)."""
    part_a, part_b = parts(vni)
    run_a = RunStore(state_a).create("split", state_a / "split.yaml")
    run_b = RunStore(state_b).create("split", state_b / "split.yaml", run_id=run_a.run_id)
    log: list[str] = []
    done = Deployed(topology, part_a, part_b, run_a, run_b, NetnsBackend(log.append), NetnsBackend(log.append), log)
    try:
        deploy_part(done.backend_a, topology, part_a, run_a, underlay_ns=hosts.a, log=log.append)
        deploy_part(done.backend_b, topology, part_b, run_b, underlay_ns=hosts.b, log=log.append)
    except BaseException:
        done.teardown()
        raise
    return done


def ping(namespace: str, address: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """One echo request, up to 3 tries (ARP over the tunnel may take the first 1 s)."""
    for _ in range(3):
        done = sh("ip", "netns", "exec", namespace, "ping", "-n", "-c", "1", "-W", "1", *extra, address, check=False)
        if done.returncode == 0 or "too long" in done.stdout + done.stderr:
            return done
    return done


def min_rtt_ms(up: Deployed, count: int = PINGS) -> float:
    """The smallest round trip of `count` pings from n1 to n2 over the cross link, 50 ms apart."""
    done = sh(
        "ip", "netns", "exec", up.ns("n1"), "ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", "2",
        up.address("n2", "x"), check=False,
    )  # fmt: skip
    found = re.search(r"= ([\d.]+)/", done.stdout)
    assert found is not None, done.stdout + done.stderr
    return float(found.group(1))


def link_json(namespace: str, ifname: str) -> dict[str, Any]:
    shown: list[dict[str, Any]] = json.loads(sh("ip", "-n", namespace, "-j", "link", "show", "dev", ifname).stdout)
    return shown[0]


def wait_carrier(namespace: str, ifname: str, carrier: bool, bound_s: float = CARRIER_BOUND_S) -> bool:
    deadline = time.monotonic() + bound_s
    while True:
        has = "NO-CARRIER" not in link_json(namespace, ifname)["flags"]
        if has == carrier or time.monotonic() > deadline:
            return has == carrier
        time.sleep(0.01)


def udp_ports(namespace: str) -> list[int]:
    """The local ports of the UDP sockets in a namespace."""
    lines = sh("ip", "netns", "exec", namespace, "ss", "-uanH").stdout.splitlines()
    return sorted(int(line.split()[3].rsplit(":", 1)[1]) for line in lines if line.strip())


def qdisc_kinds(namespace: str, ifname: str) -> list[str]:
    shown = json.loads(sh("tc", "-n", namespace, "-j", "qdisc", "show", "dev", ifname).stdout)
    return [q["kind"] for q in shown]


# --------------------------------------------------------------------------- the tests


def test_a_cross_link_carries_packets_cuts_like_a_fibre_and_leaves_nothing(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, hosts: Hosts
) -> None:
    state_b = tmp_path / "state-b"
    host_snapshot.watch_state_dir(state_b)
    underlay_before = (links_in(hosts.a), links_in(hosts.b))
    topology = scenario(tmp_path)
    up = deploy(topology, hosts, state_dir, state_b, vni=100)
    clock = SystemClock()
    ops_a = part_ops(up.backend_a, topology, up.part_a, up.run_a, clock)
    ops_b = part_ops(up.backend_b, topology, up.part_b, up.run_b, clock)
    try:
        # Nothing of the run in either host's namespace, ever: the tunnels' sockets only.
        assert (links_in(hosts.a), links_in(hosts.b)) == underlay_before
        wire_b = wire.wire_namespace(up.run_a.run_id, "B")
        vxlan = link_json(wire_b, "wx100")
        shown = sh("ip", "-n", wire_b, "-d", "link", "show", "dev", "wx100").stdout
        assert f"vxlan id 100 remote {UNDERLAY_A} local {UNDERLAY_B}" in shown and f"dstport {PORT}" in shown, shown
        assert "nolearning" in shown and vxlan["master"] == "wb100"
        # The tunnel's UDP socket is the one thing in the host's namespace (gone with the part).
        assert udp_ports(hosts.a) == [PORT] and udp_ports(hosts.b) == [PORT]

        # A real packet over VXLAN, and a routed one through n1 from n3 (a local link) to n2.
        assert ping(up.ns("n1"), up.address("n2", "x")).returncode == 0
        assert ping(up.ns("n3"), up.address("n2", "x")).returncode == 0

        # The MTU as stated: 1450 on both node ends; a 1450-byte packet passes unfragmented.
        assert link_json(up.ns("n1"), "x")["mtu"] == MTU and link_json(up.ns("n2"), "x")["mtu"] == MTU
        assert any("MTU 1450" in line and "VNI 100" in line for line in up.log), up.log
        assert ping(up.ns("n1"), up.address("n2", "x"), "-M", "do", "-s", str(MTU - 28)).returncode == 0
        assert ping(up.ns("n1"), up.address("n2", "x"), "-M", "do", "-s", str(MTU - 27)).returncode != 0

        # The cut's far side: on B, the hidden end of n2's veth goes down, so n2 loses carrier.
        ops_a.warm()
        ops_b.warm()
        assert ops_b.link_engine("x") == "kernel" and ops_a.link_engine("x") == "kernel"
        ops_b.set_far_end("x", False)
        assert ops_b.far_end_state("x").admin_up is False
        assert wait_carrier(up.ns("n2"), "x", carrier=False), "n2 kept carrier with the far end cut"
        assert ops_b.link_state("n2", "x").carrier is False
        assert ping(up.ns("n1"), up.address("n2", "x")).returncode != 0
        ops_b.set_far_end("x", True)
        assert wait_carrier(up.ns("n2"), "x", carrier=True), "n2 did not regain carrier"
        assert ping(up.ns("n1"), up.address("n2", "x")).returncode == 0
        # The one-off functions do the same.
        wire.set_far_end(up.run_b, "B", up.part_b.cross[0], False)
        assert wire.far_end_state(up.run_b, "B", up.part_b.cross[0]).admin_up is False
        assert wait_carrier(up.ns("n2"), "x", carrier=False)
        wire.set_far_end(up.run_b, "B", up.part_b.cross[0], True)
        assert wait_carrier(up.ns("n2"), "x", carrier=True)

        # The link's profile went on each host's sending end; a degrade of A's end reads back.
        assert qdisc_kinds(up.ns("n1"), "x")[0] == "tbf" and qdisc_kinds(up.ns("n2"), "x")[0] == "tbf"
        link = topology.link("x")
        ops_a.impair([Impairment(link, "a-to-b", Settings(rate_bps=10_000_000))])
        rate = json.loads(sh("tc", "-n", up.ns("n1"), "-j", "qdisc", "show", "dev", "x").stdout)[0]["options"]["rate"]
        assert rate == 1_250_000, rate  # bytes/s, as tc shows it in JSON
        ops_a.impair([Impairment(link, "a-to-b", None)])
        assert qdisc_kinds(up.ns("n1"), "x")[0] != "tbf"
        with pytest.raises(BackendError, match="on another host"):
            ops_a.impair([Impairment(link, "b-to-a", Settings(rate_bps=10_000_000))])
    finally:
        ops_a.close()
        ops_b.close()
        up.teardown()
    assert (links_in(hosts.a), links_in(hosts.b)) == underlay_before
    assert not [n for n in sh("ip", "netns", "list").stdout.split() if up.run_a.run_id in n]
    # The kernel frees a deleted namespace's devices (and so the tunnels' sockets) on its own time.
    deadline = time.monotonic() + SOCKET_BOUND_S
    while (udp_ports(hosts.a) or udp_ports(hosts.b)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert udp_ports(hosts.a) == [] and udp_ports(hosts.b) == []


def test_two_runs_side_by_side_share_the_port(tmp_path: Path, state_dir: Path, host_snapshot: Any, hosts: Hosts) -> None:
    topology = scenario(tmp_path)
    deployed: list[Deployed] = []
    try:
        for vni in (200, 201):
            state_a, state_b = tmp_path / f"a{vni}", tmp_path / f"b{vni}"
            host_snapshot.watch_state_dir(state_a)
            host_snapshot.watch_state_dir(state_b)
            deployed.append(deploy(topology, hosts, state_a, state_b, vni))
        for up in deployed:
            assert ping(up.ns("n3"), up.address("n2", "x")).returncode == 0
        # Cutting one run's far end leaves the other's link alone.
        first, second = deployed
        wire.set_far_end(first.run_b, "B", first.part_b.cross[0], False)
        assert wait_carrier(first.ns("n2"), "x", carrier=False)
        assert ping(second.ns("n1"), second.address("n2", "x")).returncode == 0
    finally:
        for up in deployed:
            up.teardown()


def test_a_vni_taken_on_the_host_is_refused_and_clean_removes_the_half_made_part(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, hosts: Hosts
) -> None:
    topology = scenario(tmp_path)
    state_b = tmp_path / "state-b"
    host_snapshot.watch_state_dir(state_b)
    first = deploy(topology, hosts, state_dir, state_b, vni=300)
    try:
        # A second run on the same hosts, port and VNI: the kernel demultiplexes by VNI.
        part_a, _part_b = parts(300)
        second = RunStore(tmp_path / "state-c").create("split", tmp_path / "split.yaml")
        host_snapshot.watch_state_dir(tmp_path / "state-c")
        with pytest.raises(BackendError, match="VNIs must differ between runs sharing a host and port"):
            deploy_part(NetnsBackend(), topology, part_a, second, underlay_ns=hosts.a)
        assert wire.wire_namespace(second.run_id, "A") in sh("ip", "netns", "list").stdout
        second.unlock()  # its deployer "died" here: `drill clean` finds what it journaled
        report = lifecycle.clean(tmp_path / "state-c")
        assert report.clean, report
        assert not [n for n in sh("ip", "netns", "list").stdout.split() if second.run_id in n]
        assert ping(first.ns("n3"), first.address("n2", "x")).returncode == 0  # the first run is untouched
    finally:
        first.teardown()


def test_an_ipv6_underlay_carries_the_tunnel(tmp_path: Path, state_dir: Path, host_snapshot: Any, hosts: Hosts) -> None:
    for ns, address in ((hosts.a, "fd00:d811:253::1"), (hosts.b, "fd00:d811:253::2")):
        sh("ip", "-n", ns, "addr", "add", f"{address}/64", "dev", "under", "nodad")
    topology = scenario(tmp_path)
    state_b = tmp_path / "state-b"
    host_snapshot.watch_state_dir(state_b)
    a = CrossEnd("x", "n1", "x", 400, "fd00:d811:253::1", "fd00:d811:253::2", PORT, 1430)
    b = CrossEnd("x", "n2", "x", 400, "fd00:d811:253::2", "fd00:d811:253::1", PORT, 1430)  # IPv6 headers: 20 more
    run_a = RunStore(state_dir).create("split", tmp_path / "split.yaml")
    run_b = RunStore(state_b).create("split", tmp_path / "split.yaml", run_id=run_a.run_id)
    backend_a, backend_b = NetnsBackend(), NetnsBackend()
    try:
        deploy_part(backend_a, topology, HostPart("A", ("n1", "n3"), (a,)), run_a, underlay_ns=hosts.a)
        deploy_part(backend_b, topology, HostPart("B", ("n2",), (b,)), run_b, underlay_ns=hosts.b)
        target = topology.node("n2").interface("x").ipv4
        assert target is not None
        assert ping(namespace_name(run_a.run_id, "n3"), str(target.ip)).returncode == 0
        target6 = topology.node("n2").interface("x").ipv6  # IPv6 over IPv6: neighbour discovery crosses too
        assert target6 is not None
        assert ping(namespace_name(run_a.run_id, "n1"), str(target6.ip)).returncode == 0
        assert link_json(namespace_name(run_a.run_id, "n1"), "x")["mtu"] == 1430
    finally:
        for backend, run in ((backend_a, run_a), (backend_b, run_b)):
            report = backend.teardown(run)
            assert report.clean, report


def test_an_underlay_that_cannot_carry_the_tunnel_is_refused_before_anything_is_made(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, hosts: Hosts
) -> None:
    sh("ip", "-n", hosts.a, "link", "set", "under", "mtu", "1400")
    topology = scenario(tmp_path)
    part_a, _ = parts(500)
    stray = CrossEnd("x", "n1", "x", 500, "198.19.253.9", "203.0.113.1", PORT, MTU)  # not ours; no route
    run = RunStore(state_dir).create("split", tmp_path / "split.yaml")
    for part, expected in (
        (part_a, r"MTU 1450 needs an underlay MTU of 1500 .* carries 1400: set drills_underlay_mtu=1400"),
        (HostPart("A", ("n1", "n3"), (stray,)), r"198.19.253.9 is not an address of this host(.|\n)*no route to 203.0.113.1"),
    ):
        with pytest.raises(EnvironmentProblem, match=expected):
            deploy_part(NetnsBackend(), topology, part, run, underlay_ns=hosts.a)
    assert run.journal.entries() == []


def test_a_port_another_program_holds_is_refused_in_words(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, hosts: Hosts
) -> None:
    # A plain UDP socket on the port in host A's namespace (held by this test process).
    holder = kernel.run_in_namespace(hosts.a, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    run = RunStore(state_dir).create("split", tmp_path / "split.yaml")
    backend = NetnsBackend()
    try:
        holder.bind(("0.0.0.0", PORT))
        with pytest.raises(BackendError, match="another program on this host has a socket on that UDP port"):
            deploy_part(backend, scenario(tmp_path), parts(600)[0], run, underlay_ns=hosts.a)
    finally:
        holder.close()
        report = backend.teardown(run)
    assert report.clean, report


# A delay the VM lane's emulated, loaded machine cannot blur: the smallest of PINGS round trips
# exceeds it by more than itself only if every ping of the series is late by over 100 ms.
NETEM_DELAY_MS = 100


@pytest.mark.netem
def test_the_kernel_engine_degrades_a_cross_link_each_way_at_its_sending_end_only(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, hosts: Hosts
) -> None:
    state_b = tmp_path / "state-b"
    host_snapshot.watch_state_dir(state_b)
    topology = scenario(tmp_path)  # a rate profile (tbf) on both ends: netem goes in front of it
    up = deploy(topology, hosts, state_dir, state_b, vni=800)
    clock = SystemClock()
    ops_a = part_ops(up.backend_a, topology, up.part_a, up.run_a, clock)
    ops_b = part_ops(up.backend_b, topology, up.part_b, up.run_b, clock)
    link, delay = topology.link("x"), Settings(delay_s=NETEM_DELAY_MS / 1000)
    try:
        assert ops_a.link_engine("x") == "kernel" == ops_b.link_engine("x")
        assert ping(up.ns("n1"), up.address("n2", "x")).returncode == 0
        assert min_rtt_ms(up) < NETEM_DELAY_MS
        # a-to-b on host A: netem on n1's end only, and the round trip rises by one delay, not two.
        ops_a.impair([Impairment(link, "a-to-b", delay)])
        assert "netem" in qdisc_kinds(up.ns("n1"), "x") and "netem" not in qdisc_kinds(up.ns("n2"), "x")
        assert NETEM_DELAY_MS <= min_rtt_ms(up) < 2 * NETEM_DELAY_MS
        ops_a.impair([Impairment(link, "a-to-b", None)])
        # b-to-a on host B: netem on n2's end only.
        ops_b.impair([Impairment(link, "b-to-a", delay)])
        assert "netem" in qdisc_kinds(up.ns("n2"), "x") and "netem" not in qdisc_kinds(up.ns("n1"), "x")
        assert NETEM_DELAY_MS <= min_rtt_ms(up) < 2 * NETEM_DELAY_MS
        ops_b.impair([Impairment(link, "b-to-a", None)])
        assert "netem" not in qdisc_kinds(up.ns("n1"), "x") + qdisc_kinds(up.ns("n2"), "x")
        assert min_rtt_ms(up) < NETEM_DELAY_MS
    finally:
        ops_a.close()
        ops_b.close()
        up.teardown()

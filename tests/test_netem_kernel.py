"""The kernel engine on a kernel that has sch_netem (the VM lane: `./dev vm-test`).

Every netem parameter drills sends is applied through `degrade` (struct-built rtnetlink, tc.py)
on a real two-node testbed, its effect observed from inside the testbed with UDP (round trips,
losses, duplicates, order), read back from the kernel, and its revert observed too. Runs under
software emulation: kept to a few hundred packets a test.

Chance: netem's generator cannot be seeded. Every count is checked against exact tail bounds of
false-failure rate ALPHA = 1e-8 each (tests/stats_bounds.py: under 4e-7 for a whole CI run).
What is not chance is made deterministic: neighbour entries are pinned (tests/neighbours.py) so
ARP never crosses the impaired direction; the sockets hold far more than a probe sends (16 MB,
and under 1,000 packets a probe, the veth backlog's size), so nothing is lost at a receiver;
arrival instants and one-way delays come from the kernel's receive timestamps (SO_TIMESTAMPNS),
not from Python threads that the emulated, loaded machine may stall.
"""

from __future__ import annotations

import itertools
import random
import socket
import statistics
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import neighbours
import pytest
import rx_stamps
from degrade_testing import degrade_step
from stats_bounds import binomial_bounds, geometric_sum_bounds

from drills import lifecycle
from drills.clock import SystemClock
from drills.engine.degrade import LinkDegrade
from drills.engine.faults import FaultContext
from drills.netns import kernel, tc
from drills.netns.ops import NetnsOps
from drills.netns.qdisc import CHILD_HANDLE, HANDLE
from drills.runs import RunStore
from drills.scenario import model
from drills.scenario.loader import builtin_profiles
from drills.scenario.resolved import Topology

pytestmark = pytest.mark.netem

SCENARIO = """version: 1
name: netem-lane
topology:
  nodes: {a: {}, b: {}}
  links:
    - {name: wire, endpoints: [a:e1, b:e1], engine: kernel}
"""
_PROBE = struct.Struct("!IdQ")  # sequence, send instant (monotonic s), send instant (CLOCK_REALTIME ns)
ETH_BYTES, FRAME_EXTRA_BYTES = 14, 8 + 20 + 14  # a 64-byte payload is a 106-byte frame


@dataclass
class Bed:
    topology: Topology
    namespaces: dict[str, str]
    ctx: FaultContext
    log: list[str]
    ops: NetnsOps

    def address(self, node: str) -> str:
        address = self.topology.node(node).interface("e1").ipv4
        assert address is not None
        return str(address.ip)

    def degrade(self, **params: Any) -> LinkDegrade:
        step = degrade_step(self.topology, builtin_profiles(), link="wire", direction="a-to-b", **params)
        return LinkDegrade.from_step(step)

    def root(self) -> tc.Qdisc:
        """a:e1's root qdisc as the kernel shows it (read with our own decoder)."""
        control = tc.Tc(self.ops.handles.raw("a"))
        qdiscs = control.qdiscs(self.ops.handles.index("a", "e1"))
        return next(q for q in qdiscs if q.parent == tc.TC_H_ROOT)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    work = tmp_path_factory.mktemp("netem")
    state = work / "state"
    state.mkdir()
    path = work / "netem.yaml"
    path.write_text(SCENARIO)
    up = lifecycle.up(path, state)
    log: list[str] = []
    run = RunStore(state).get(up.meta.run_id)
    ops = NetnsOps(run, up.topology, up.meta.nodes, {"wire": "kernel"}, SystemClock(), log.append, _no_services)
    try:
        ctx = FaultContext(ops, SystemClock(), log.append, random.Random(0))
        bed = Bed(up.topology, up.meta.nodes, ctx, log, ops)
        neighbours.pin_both(((bed.namespaces["a"], "e1", bed.address("a")), (bed.namespaces["b"], "e1", bed.address("b"))))
        yield bed
    finally:
        ops.close()
        lifecycle.down(state, up.meta.run_id)
    assert not [n for n in kernel.NETNS_RUN_DIR.iterdir() if up.meta.run_id in n.name]


def _no_services(*_args: Any) -> int:
    raise AssertionError("no service in this bed")


def udp_in(namespace: str) -> socket.socket:
    return rx_stamps.receiver(kernel.run_in_namespace(namespace, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))


@dataclass
class Probe:
    sent: int
    rtts_s: dict[int, float]  # sequence -> round trip (first copy)
    echoed: int  # copies the echo server received (duplicates counted)
    arrival_order: list[int]  # sequences in the order the echo server got them
    arrivals_s: list[float]  # when the echo server got each (kernel receive timestamp, s)
    send_s: float  # how long sending took
    one_way_s: dict[int, float]  # sequence -> a-to-b delay of its first copy (kernel timestamps)


def probe(bed: Bed, count: int, gap_s: float = 0.002, payload: int = 64, wait_s: float = 1.0) -> Probe:
    """`count` UDP packets a -> b (the impaired direction), each echoed b -> a: bounded in count
    and time. Sequence and send time travel in the payload; the echo server counts what arrives."""
    server, client = udp_in(bed.namespaces["b"]), udp_in(bed.namespaces["a"])
    server.bind((bed.address("b"), 0))
    server.settimeout(0.2)
    client.settimeout(0.2)
    target = server.getsockname()
    order: list[int] = []
    arrivals: list[float] = []
    one_way: dict[int, float] = {}
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            try:
                data, peer, at_ns = rx_stamps.recv_stamped(server)
            except TimeoutError:
                continue
            if len(data) >= _PROBE.size:
                seq, _mono, sent_ns = _PROBE.unpack_from(data)
                order.append(seq)
                arrivals.append(at_ns / 1e9)
                one_way.setdefault(seq, (at_ns - sent_ns) / 1e9)
                server.sendto(data, peer)

    rtts: dict[int, float] = {}

    def receive() -> None:
        while not stop.is_set():
            try:
                data = client.recv(4096)
            except TimeoutError:
                continue
            if len(data) >= _PROBE.size:
                seq, sent_at, _ns = _PROBE.unpack_from(data)
                rtts.setdefault(seq, time.monotonic() - sent_at)

    threads = [threading.Thread(target=echo, daemon=True), threading.Thread(target=receive, daemon=True)]
    try:
        for thread in threads:
            thread.start()
        started = time.monotonic()
        for seq in range(count):
            client.sendto(_PROBE.pack(seq, time.monotonic(), time.time_ns()) + bytes(max(0, payload - _PROBE.size)), target)
            time.sleep(gap_s)
        send_s = time.monotonic() - started
        deadline = time.monotonic() + wait_s
        while len(rtts) < count and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=2)
        server.close()
        client.close()
    return Probe(count, rtts, len(order), order, arrivals, send_s, one_way)


def median_rtt_s(bed: Bed, count: int = 60) -> float:
    result = probe(bed, count, gap_s=0.005)
    assert len(result.rtts_s) > count // 2, f"only {len(result.rtts_s)} of {count} echoes came back"
    return statistics.median(result.rtts_s.values())


def applied(bed: Bed, fault: LinkDegrade) -> Iterator[None]:
    fault.apply(bed.ctx)
    try:
        yield
    finally:
        fault.revert(bed.ctx)
    assert bed.root().handle != HANDLE  # the revert is read back: our qdisc is gone


# --------------------------------------------------------------------------- tests


def test_delay_grows_the_round_trip_and_the_revert_shrinks_it(bed: Bed) -> None:
    before = median_rtt_s(bed)
    fault = bed.degrade(delay="50ms")
    fault.apply(bed.ctx)
    try:
        root = bed.root()
        assert root.kind == "netem" and root.handle == HANDLE
        assert isinstance(root.options, tc.Netem) and root.options.delay_ns == 50_000_000
        during = median_rtt_s(bed)
    finally:
        fault.revert(bed.ctx)
    after = median_rtt_s(bed)
    # netem holds every a-to-b packet 50 ms, so no round trip is shorter. Above, the median is
    # the path's own (under a ms) plus what the emulated, loaded machine stalls the Python
    # threads by: not bounded by anything we control, so the bound only says "one direction,
    # 50 ms", which a delay applied both ways (>= 100 ms) or in the wrong unit would break.
    assert 0.050 <= during < 0.100, (before, during)
    assert after < 0.050 / 2, after  # and gone after the revert (same reasoning, half the delay)
    assert bed.root().handle != HANDLE


def test_random_loss_in_its_binomial_interval(bed: Bed) -> None:
    for _ in applied(bed, bed.degrade(loss="20%")):
        result = probe(bed, 400, gap_s=0.001)
        drops = bed.root().drops
    lost = result.sent - result.echoed
    # Every packet lost was netem's decision (nothing else can lose one: see the docstring);
    # netem may have dropped a packet outside the probe too (an IPv6 solicitation), hence <=.
    assert lost <= drops, f"{lost} lost but netem dropped only {drops}: loss outside netem"
    # Binomial(400, 0.2): exact bounds 38..129 around 80 (false failure < 1e-8).
    low, high = binomial_bounds(400, 0.2)
    assert low <= lost <= high, (lost, low, high)


def test_gilbert_elliott_read_back_and_bursty(bed: Bed) -> None:
    fault = bed.degrade(loss_bursts={"p": 5, "r": 20})  # bad state loses all (h 100 %): bursts of 5 on average
    for _ in applied(bed, fault):
        options = bed.root().options
        assert isinstance(options, tc.Netem) and options.loss_model is not None
        assert options.loss_model.integers() == tc.GilbertElliott(5.0, 20.0, 0.0, 0.0).integers()
        result = probe(bed, 1500, gap_s=0.001)
    arrived = set(result.arrival_order)
    lost = [seq not in arrived for seq in range(result.sent)]
    runs = [len(list(group)) for key, group in itertools.groupby(lost) if key]
    # ~60 bursts expected (1,200 packets in the good state, 5 % each start one); none at all has
    # probability under 0.95 ** 1000 ~ 5e-23.
    assert runs, "Gilbert-Elliott lost nothing"
    # The bad state (h 0 %) loses every packet and leaves with r = 20 %: runs are Geometric(0.2),
    # mean 5; their sum is checked against its exact 1e-8 bounds. Independent loss at the same
    # rate would give runs of ~1.25 on average, below the lower bound (mean 2.45 at 60 runs).
    low, high = geometric_sum_bounds(len(runs), 0.2)
    assert low <= sum(runs) <= high, (len(runs), sum(runs), low, high)


def test_normal_distribution_table_accepted_and_shapes_the_jitter(bed: Bed) -> None:
    fault = bed.degrade(delay="60ms", jitter="15ms", distribution="normal")
    for _ in applied(bed, fault):
        options = bed.root().options
        assert isinstance(options, tc.Netem) and options.jitter_ns == 15_000_000  # the table is not dumped
        result = probe(bed, 300, gap_s=0.004)
    delays = sorted(result.one_way_s.values())  # kernel timestamps: the path adds well under a ms
    center = statistics.median(delays)
    within = sum(abs(d - center) <= 0.015 for d in delays) / len(delays)
    beyond = sum(abs(d - center) > 0.015 for d in delays) / len(delays)
    # Normal: 68.3 % within one jitter of the median and 31.7 % beyond; netem's uniform: none
    # beyond. Of 300, exact 1e-8 bounds: 157..249 within (0.52..0.83), >= 51 beyond (0.17);
    # the bounds below are wider still, for the sample median's own error (~0.07 jitter).
    assert 0.5 <= within <= 0.85 and beyond >= 0.1, (within, beyond)


def test_duplicates_counted(bed: Bed) -> None:
    for _ in applied(bed, bed.degrade(duplicate="30%")):
        result = probe(bed, 300, gap_s=0.001)
    # Nothing is lost (no loss asked, see the docstring), so the extra copies are netem's
    # duplicates: Binomial(300, 0.3), exact bounds 47..137 around 90 (false failure < 1e-8).
    low, high = binomial_bounds(300, 0.3)
    assert low <= result.echoed - result.sent <= high, (result.echoed, result.sent)


def test_corrupted_packets_do_not_arrive_intact(bed: Bed) -> None:
    for _ in applied(bed, bed.degrade(corrupt="30%")):
        options = bed.root().options
        assert isinstance(options, tc.Netem) and round(options.corrupt_pct) == 30
        result = probe(bed, 300, gap_s=0.001)
    # A flipped bit fails the UDP or IP checksum (or garbles the sequence): not echoed intact.
    # netem flips any bit of the frame, and a flip in the Ethernet header (the source MAC, the
    # destination's multicast bit) may still be delivered: damaged ~ Binomial(300, 0.3 * q), q
    # between 1 - 14/106 and 1. Exact 1e-8 bounds: 38 (q low) .. 137 (q = 1).
    damaged = result.sent - len(result.rtts_s)
    low = binomial_bounds(300, 0.3 * (1 - ETH_BYTES / (64 + FRAME_EXTRA_BYTES)))[0]
    high = binomial_bounds(300, 0.3)[1]
    assert low <= damaged <= high, damaged


def test_reordered_packets_overtake_the_delayed_ones(bed: Bed) -> None:
    for _ in applied(bed, bed.degrade(delay="100ms", reorder="25%")):
        options = bed.root().options
        assert isinstance(options, tc.Netem) and options.gap == 1 and round(options.reorder_pct) == 25
        result = probe(bed, 300, gap_s=0.002)
    # Sent at once, not delayed. One-way, from the kernel's receive timestamp: a delayed packet
    # takes >= 100 ms, an undelayed one the path's well under a ms; 50 ms apart from both, the
    # split is deterministic up to a 50 ms stall between reading the clock and sending.
    early = sum(delay < 0.050 for delay in result.one_way_s.values())
    # Binomial(300, 0.25): exact bounds 35..120 around 75 (false failure < 1e-8).
    low, high = binomial_bounds(300, 0.25)
    assert low <= early <= high, early
    inversions = sum(1 for x, y in zip(result.arrival_order, result.arrival_order[1:], strict=False) if y < x)
    assert inversions > 0


def _delay_ns(bed: Bed) -> int | None:
    options = bed.root().options
    return options.delay_ns if isinstance(options, tc.Netem) else None


def test_rate_under_netem_limits_throughput(bed: Bed) -> None:
    fault = bed.degrade(delay="5ms", rate="2mbit")
    for _ in applied(bed, fault):
        qdiscs = tc.Tc(bed.ops.handles.raw("a")).qdiscs(bed.ops.handles.index("a", "e1"))
        child = next(q for q in qdiscs if q.handle == CHILD_HANDLE)
        assert isinstance(child.options, tc.Tbf) and child.options.rate_bytes_ps == 250_000
        result = probe(bed, 400, gap_s=0.0, payload=1000, wait_s=2.0)  # back to back
    # What crossed the tbf, measured where it arrived (kernel receive timestamps): never above
    # the limit (plus the bucket of 2 frames and rounding), whatever the sender managed under
    # emulation. Deterministic: the tbf releases at the rate; the timestamps err by the receive
    # path's latency, well under a ms against a window of ~1.5 s (10 % is 150 ms).
    wire_bits = (1000 + 8 + 20 + 14) * 8
    arrivals = result.arrivals_s
    assert len(arrivals) > 20, len(arrivals)
    received_bps = (len(arrivals) - 3) * wire_bits / (arrivals[-1] - arrivals[0])
    assert received_bps <= 2_000_000 * 1.1, received_bps
    offered_bps = result.sent * wire_bits / result.send_s
    if offered_bps > 4_000_000:  # the sender outran the limit: the tbf must have dropped
        assert result.echoed < result.sent and received_bps >= 2_000_000 * 0.5, (received_bps, offered_bps)


def test_a_ramp_changes_the_round_trip_while_it_runs(bed: Bed) -> None:
    fault = bed.degrade(ramp={"from": "10ms", "to": "90ms", "over": "2s"})
    fault.apply(bed.ctx)
    try:
        early = median_rtt_s(bed, 20)
        time.sleep(2.3)
        # The ramp's driver is a thread of a loaded, emulated machine: wait for its last step to
        # show in the kernel (bounded) rather than assume 2.3 s were enough.
        deadline = time.monotonic() + 20
        while _delay_ns(bed) != 90_000_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _delay_ns(bed) == 90_000_000
        late = median_rtt_s(bed, 20)
    finally:
        fault.revert(bed.ctx)
    changes = fault.changes()
    assert len(changes) == 20 and all(c.error is None for c in changes)  # every 100 ms, 4 ms a step
    # late: every round trip >= 90 ms (netem's guarantee). early: measured in the ramp's first
    # ~0.2 s at 10-18 ms; the bound allows the probe to lag into the ramp by 0.75 s (40 ms) plus
    # 10 ms of path: the round trip changed while the ramp ran.
    assert early < 0.040 + 0.010 and late >= 0.090, (early, late)
    assert bed.root().handle != HANDLE


def test_netem_options_as_tc_sends_them(bed: Bed) -> None:
    """Our encoding, read back by iproute2's tc, says what we asked (an independent decoder)."""
    fault = bed.degrade(delay="40ms", jitter="4ms", correlation="25%", loss="1%", duplicate="2%", reorder="5%")
    for _ in applied(bed, fault):
        shown = subprocess.run(
            ["tc", "-n", bed.namespaces["a"], "qdisc", "show", "dev", "e1"], check=True, capture_output=True, text=True, timeout=30
        ).stdout
        for expected in ("netem d511:", "delay 40ms  4ms 25%", "loss 1%", "duplicate 2%", "reorder 5%", "gap 1"):
            assert expected in shown, (expected, shown)


def test_a_handover_spikes_the_delay_and_drops_a_burst_then_stops_at_revert(bed: Bed) -> None:
    base = bed.degrade(delay="10ms")
    handover = model.Handover.model_validate({"every": "1s", "delay_spike": "60ms", "spike_length": "500ms", "loss_burst": "200ms"})
    fault = replace(base, directions=tuple(replace(d, settings=replace(d.settings, handover=handover)) for d in base.directions))
    fault.apply(bed.ctx)
    try:
        result = probe(bed, 250, gap_s=0.01, wait_s=1.0)  # about 2.5 s: two handovers
    finally:
        fault.revert(bed.ctx)
    changes = fault.changes()
    assert [c.error for c in changes] == [None] * len(changes) and len(changes) >= 3, changes
    rtts = list(result.rtts_s.values())
    assert min(rtts) < 0.040 and max(rtts) >= 0.070, (min(rtts), max(rtts))  # 10 ms, and 10 + 60 ms
    lost = result.sent - result.echoed
    # 20 packets a burst at one every 10 ms, two bursts: 40. 8 allows the sender to lag 5-fold
    # under emulation (a timing bound, not chance: no random loss is asked).
    assert lost >= 8, lost
    assert bed.root().handle != HANDLE
    time.sleep(1.2)  # past the next handover instant: the driver is gone, nothing came back
    assert bed.root().handle != HANDLE


def test_tc_netem_decoded_as_we_encode_it(bed: Bed) -> None:
    """What iproute2's tc installs, our decoder reads as the options our encoder would send."""
    fault = bed.degrade(delay="40ms", jitter="4ms", correlation="25%", loss="1%", duplicate="2%", corrupt="0.5%", reorder="5%")
    ours = None
    for _ in applied(bed, fault):
        options = bed.root().options
        assert isinstance(options, tc.Netem)
        ours = options
    assert ours is not None
    argv = ["tc", "-n", bed.namespaces["a"], "qdisc", "replace", "dev", "e1", "root", "handle", "d511:", "netem",
            "limit", str(ours.limit_packets), "delay", "40ms", "4ms", "25%", "loss", "1%", "duplicate", "2%",
            "corrupt", "0.5%", "reorder", "5%"]  # fmt: skip
    subprocess.run(argv, check=True, timeout=30)
    try:
        theirs = bed.root().options
        assert isinstance(theirs, tc.Netem) and theirs.integers() == ours.integers()
    finally:
        subprocess.run(["tc", "-n", bed.namespaces["a"], "qdisc", "del", "dev", "e1", "root"], check=False, timeout=30)


DRILL = """version: 1
name: netem-drill
topology:
  # The stream leaves from a's loopback (its primary address): b needs the way back.
  nodes: {a: {}, b: {routes: [{to: a, via: "a:e1"}]}}
  links: [{name: wire, endpoints: [a:e1, b:e1], engine: kernel}]
probes:
  - {name: stream, type: udp-stream, from: a, to: b:e1, rate_pps: 200, size_bytes: 64}
timeline:
  - {id: slow, at: 1.5s, fault: degrade, link: wire, delay: 40ms, loss: 5%, for: 1.5s}
duration: 4s
"""


def test_a_complete_netem_drill(tmp_path: Path, drill: Any, host_snapshot: Any) -> None:
    path = tmp_path / "netem-drill.yaml"
    path.write_text(DRILL)
    # From the scenario's directory: `drill run` writes its results under ./runs (and the VM sees
    # the repository read-only).
    done = subprocess.run(drill.argv("run", str(path)), capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "apply slow: degrade link wire, both directions: delay 40 ms, loss 5 %" in done.stdout + done.stderr
    assert list(tmp_path.glob("runs/netem-drill-*"))  # the results were written

"""The kernel engine on a kernel that has sch_netem (the VM lane: `./dev vm-test`).

Every netem parameter drills sends is applied through `degrade` (struct-built rtnetlink, tc.py)
on a real two-node testbed, its effect observed from inside the testbed with UDP (round trips,
losses, duplicates, order), read back from the kernel, and its revert observed too. Statistical
checks use bounds far outside sampling noise (binomial intervals at 99.9 %), never wall-clock
timings of drills itself. Runs under software emulation: kept to a few hundred packets a test.
"""

from __future__ import annotations

import itertools
import math
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

import pytest

from drills import lifecycle
from drills.engine.degrade import CHILD_HANDLE, HANDLE, LinkDegrade
from drills.engine.faults import FaultContext, Handles
from drills.netns import kernel, tc
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
Z999 = 3.29  # two-sided 99.9 % normal quantile: a bound this wide fails by chance once in 1000 runs


def binomial_bounds(n: int, p: float) -> tuple[float, float]:
    sd = math.sqrt(n * p * (1 - p))
    return n * p - Z999 * sd - 1, n * p + Z999 * sd + 1


@dataclass
class Bed:
    topology: Topology
    namespaces: dict[str, str]
    ctx: FaultContext
    log: list[str]

    def address(self, node: str) -> str:
        address = self.topology.node(node).interface("e1").ipv4
        assert address is not None
        return str(address.ip)

    def degrade(self, **params: Any) -> LinkDegrade:
        step = model.Degrade.model_validate({"at": 0, "fault": "degrade", "link": "wire", "direction": "a-to-b", **params})
        return LinkDegrade.build(self.topology, step, builtin_profiles())

    def root(self) -> tc.Qdisc:
        """a:e1's root qdisc as the kernel shows it (read with our own decoder)."""
        control = tc.Tc(self.ctx.handles.raw("a"))
        qdiscs = control.qdiscs(self.ctx.handles.index("a", "e1"))
        return next(q for q in qdiscs if q.parent == tc.TC_H_ROOT)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    work = tmp_path_factory.mktemp("netem")
    state = work / "state"
    state.mkdir()
    path = work / "netem.yaml"
    path.write_text(SCENARIO)
    up = lifecycle.up(path, state)
    handles = Handles(up.meta.nodes)
    log: list[str] = []
    try:
        yield Bed(up.topology, up.meta.nodes, FaultContext(up.topology, handles, up.meta.nodes, log.append, random.Random(0)), log)
    finally:
        handles.close()
        lifecycle.down(state, up.meta.run_id)
    assert not [n for n in kernel.NETNS_RUN_DIR.iterdir() if up.meta.run_id in n.name]


def udp_in(namespace: str) -> socket.socket:
    return kernel.run_in_namespace(namespace, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))


@dataclass
class Probe:
    sent: int
    rtts_s: dict[int, float]  # sequence -> round trip (first copy)
    echoed: int  # copies the echo server received (duplicates counted)
    arrival_order: list[int]  # sequences in the order the echo server got them
    arrivals_s: list[float]  # when the echo server got each
    send_s: float  # how long sending took


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
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            try:
                data, peer = server.recvfrom(4096)
            except TimeoutError:
                continue
            if len(data) >= 12:
                order.append(struct.unpack_from("!I", data)[0])
                arrivals.append(time.monotonic())
                server.sendto(data, peer)

    rtts: dict[int, float] = {}

    def receive() -> None:
        while not stop.is_set():
            try:
                data = client.recv(4096)
            except TimeoutError:
                continue
            if len(data) >= 12:
                seq, sent_at = struct.unpack_from("!Id", data)
                rtts.setdefault(seq, time.monotonic() - sent_at)

    threads = [threading.Thread(target=echo, daemon=True), threading.Thread(target=receive, daemon=True)]
    try:
        for thread in threads:
            thread.start()
        started = time.monotonic()
        for seq in range(count):
            client.sendto(struct.pack("!Id", seq, time.monotonic()) + bytes(max(0, payload - 12)), target)
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
    return Probe(count, rtts, len(order), order, arrivals, send_s)


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
    assert 0.050 <= during <= 0.050 + before + 0.008, (before, during)
    assert after < 0.050 / 2, after
    assert bed.root().handle != HANDLE


def test_random_loss_in_its_binomial_interval(bed: Bed) -> None:
    for _ in applied(bed, bed.degrade(loss="20%")):
        result = probe(bed, 400, gap_s=0.001)
    low, high = binomial_bounds(400, 0.2)
    lost = result.sent - result.echoed
    assert low <= lost <= high, (lost, low, high)


def test_gilbert_elliott_read_back_and_bursty(bed: Bed) -> None:
    fault = bed.degrade(loss_bursts={"p": 5, "r": 20})  # bad state loses all (h 100 %): bursts of 5 on average
    for _ in applied(bed, fault):
        options = bed.root().options
        assert isinstance(options, tc.Netem) and options.loss_model is not None
        assert options.loss_model.integers() == tc.GilbertElliott(5.0, 20.0, 0.0, 0.0).integers()
        result = probe(bed, 600, gap_s=0.001)
    arrived = set(result.arrival_order)
    lost = [seq not in arrived for seq in range(result.sent)]
    runs = [len(list(group)) for key, group in itertools.groupby(lost) if key]
    assert runs, "Gilbert-Elliott lost nothing"
    # Independent loss at the same rate would give runs of ~1.25 on average; these average ~5.
    assert statistics.mean(runs) >= 2.5, runs


def test_normal_distribution_table_accepted_and_shapes_the_jitter(bed: Bed) -> None:
    fault = bed.degrade(delay="60ms", jitter="15ms", distribution="normal")
    for _ in applied(bed, fault):
        options = bed.root().options
        assert isinstance(options, tc.Netem) and options.jitter_ns == 15_000_000  # the table is not dumped
        result = probe(bed, 300, gap_s=0.004)
    rtts = sorted(result.rtts_s.values())
    center = statistics.median(rtts)
    within = sum(abs(r - center) <= 0.015 for r in rtts) / len(rtts)
    beyond = sum(abs(r - center) > 0.015 for r in rtts) / len(rtts)
    # Normal: ~68 % within one jitter of the median and ~32 % beyond; netem's uniform: none beyond.
    assert 0.5 <= within <= 0.85 and beyond >= 0.1, (within, beyond)


def test_duplicates_counted(bed: Bed) -> None:
    for _ in applied(bed, bed.degrade(duplicate="30%")):
        result = probe(bed, 300, gap_s=0.001)
    low, high = binomial_bounds(300, 0.3)
    assert low <= result.echoed - result.sent <= high, (result.echoed, result.sent)


def test_corrupted_packets_do_not_arrive_intact(bed: Bed) -> None:
    for _ in applied(bed, bed.degrade(corrupt="30%")):
        options = bed.root().options
        assert isinstance(options, tc.Netem) and round(options.corrupt_pct) == 30
        result = probe(bed, 300, gap_s=0.001)
    # A flipped bit fails the UDP or IP checksum (or garbles the sequence): not echoed intact.
    damaged = result.sent - len(result.rtts_s)
    low, high = binomial_bounds(300, 0.3)
    assert low <= damaged <= high, damaged


def test_reordered_packets_overtake_the_delayed_ones(bed: Bed) -> None:
    for _ in applied(bed, bed.degrade(delay="30ms", reorder="25%")):
        options = bed.root().options
        assert isinstance(options, tc.Netem) and options.gap == 1 and round(options.reorder_pct) == 25
        result = probe(bed, 300, gap_s=0.002)
    early = sum(rtt < 0.015 for rtt in result.rtts_s.values())  # sent at once, not delayed
    low, high = binomial_bounds(300, 0.25)
    assert low <= early <= high, early
    inversions = sum(1 for x, y in zip(result.arrival_order, result.arrival_order[1:], strict=False) if y < x)
    assert inversions > 0


def test_rate_under_netem_limits_throughput(bed: Bed) -> None:
    fault = bed.degrade(delay="5ms", rate="2mbit")
    for _ in applied(bed, fault):
        qdiscs = tc.Tc(bed.ctx.handles.raw("a")).qdiscs(bed.ctx.handles.index("a", "e1"))
        child = next(q for q in qdiscs if q.handle == CHILD_HANDLE)
        assert isinstance(child.options, tc.Tbf) and child.options.rate_bytes_ps == 250_000
        result = probe(bed, 400, gap_s=0.0, payload=1000, wait_s=2.0)  # back to back
    # What crossed the tbf, measured where it arrived: never above the limit (plus the bucket of
    # 2 frames and rounding), whatever the sender managed under emulation.
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
        late = median_rtt_s(bed, 20)
        options = bed.root().options
        assert isinstance(options, tc.Netem) and options.delay_ns == 90_000_000
    finally:
        fault.revert(bed.ctx)
    changes = fault.changes()
    assert len(changes) == 20 and all(c.error is None for c in changes)  # every 100 ms, 4 ms a step
    assert early < 0.040 and late >= 0.090, (early, late)
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
    assert lost >= 8, lost  # 20 packets a burst, fewer if the sender lagged under emulation
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

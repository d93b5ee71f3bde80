"""Application probes: the analysis on synthetic samples with exactly known answers, the sampling
loop on a fake clock, the DNS wire format, and every probe type against real namespaces."""

from __future__ import annotations

import itertools
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from drills import lifecycle
from drills.clock import FakeClock, SystemClock
from drills.errors import BackendError, BadInput
from drills.measure import Window
from drills.measure_samples import analyse_samples, baseline_samples, sample_phase_stats
from drills.netns import kernel
from drills.netns.sockets import NamespaceSockets
from drills.probes.app import AppProbe, make_probe
from drills.probes.dns import dns_answer, dns_query
from drills.records import ProbeRecord, Sample
from drills.scenario import model
from drills.scenario.probes import AppSpec, UdpStreamSpec, probe_spec
from drills.scenario.resolved import Topology

# --------------------------------------------------------------------------- analysis


def record(pattern: str, *, interval_s: float = 1.0, timeout_s: float = 0.5) -> ProbeRecord:
    """One sample an interval from t=0: `.` succeeded, `x` failed."""
    samples = [
        Sample(i * interval_s, c == ".", 0.01 if c == "." else None, "ok" if c == "." else "fail")
        for i, c in enumerate(pattern)
    ]
    return ProbeRecord("p", "icmp", interval_s, timeout_s, samples=samples)


def figures(m: Any) -> tuple[Any, ...]:
    return (m.sent, m.lost, m.outage_s, m.max_loss_period_s, m.time_to_detect_s, m.time_to_recover_s)


def test_no_failure_means_no_outage() -> None:
    m = analyse_samples(record("." * 20), Window("cut", "apply", 5.0, 15.0), sustain_s=2.0)
    assert figures(m) == (10, 0, 0.0, 0.0, None, 0.0)
    assert m.recovered_during_event
    assert m.accuracy_s == pytest.approx(1.5)  # interval + timeout


def test_outage_in_the_middle() -> None:
    # Fault at 5 s; samples 5..9 fail, 10.. succeed; 10, 11, 12 make a 2 s sustained run.
    m = analyse_samples(record("....." + "xxxxx" + "." * 10), Window("cut", "apply", 5.0, 20.0), sustain_s=2.0)
    assert figures(m) == (15, 5, 5.0, 5.0, 0.0, 5.0)
    assert m.recovered_during_event
    assert m.accuracy_s == pytest.approx(1.5)
    assert (m.probe, m.event, m.kind) == ("p", "cut", "apply")


def test_event_between_two_samples() -> None:
    m = analyse_samples(
        record("....." + "xxxxx" + "." * 10), Window("cut", "apply", 4.5, 20.0), 2.0, event_uncertainty_s=0.25
    )
    assert figures(m) == (15, 5, 5.0, 5.0, 0.5, 5.5)
    assert m.accuracy_s == pytest.approx(1.75)


def test_never_recovers() -> None:
    # The probe saw failures up to its last sample at 19 s, which speaks for the path until 20 s.
    m = analyse_samples(record("....." + "x" * 15), Window("cut", "apply", 5.0, 20.0), sustain_s=2.0)
    assert figures(m) == (15, 15, 15.0, 15.0, 0.0, None)


def test_successes_too_short_to_count_as_recovery() -> None:
    # 18 and 19 succeed but the probe ends before they last the sustained validation time.
    m = analyse_samples(record("....." + "x" * 13 + ".."), Window("cut", "apply", 5.0, 30.0), sustain_s=2.0)
    assert m.time_to_recover_s is None
    assert m.outage_s == 15.0 and m.lost == 13


def test_flapping_recovers_at_the_first_sustained_run() -> None:
    pattern = "....." + "xx.xx.x" + "." * 8  # failures at 5, 6, 8, 9, 11
    m = analyse_samples(record(pattern), Window("flap", "apply", 5.0, 20.0), sustain_s=2.0)
    assert figures(m) == (15, 5, 7.0, 2.0, 0.0, 7.0)
    # Without sustained validation the first good sample counts as recovery.
    m = analyse_samples(record(pattern), Window("flap", "apply", 5.0, 20.0), sustain_s=0.0)
    assert figures(m) == (15, 5, 2.0, 2.0, 0.0, 2.0)


def test_recovery_after_the_window_is_flagged_and_not_counted_twice() -> None:
    # Fault at 5 s, lifted at 10 s; the path only works again from 12 s.
    rec = record("....." + "x" * 7 + "." * 8)
    m = analyse_samples(rec, Window("cut", "apply", 5.0, 10.0), sustain_s=2.0)
    assert figures(m) == (5, 5, 5.0, 5.0, 0.0, 7.0)
    assert not m.recovered_during_event
    revert = analyse_samples(rec, Window("cut", "revert", 10.0, 20.0), sustain_s=2.0)
    assert figures(revert) == (10, 2, 2.0, 2.0, 0.0, 2.0)


def test_samples_stretched_by_their_timeout_widen_the_accuracy() -> None:
    # interval 1 s, timeout 3 s: each failed sample takes 3 s, so the spacing stretches to 3 s.
    sent = [0, 1, 2, 3, 6, 9, 10, 11, 12, 13]
    ok = [True, True, True, False, False, False, True, True, True, True]
    rec = ProbeRecord(
        "p", "tcp-connect", 1.0, 3.0, samples=[Sample(t, o, None, "") for t, o in zip(sent, ok, strict=True)]
    )
    m = analyse_samples(rec, Window("cut", "apply", 2.5, 20.0), sustain_s=2.0)
    assert figures(m) == (7, 3, 7.0, 7.0, 0.5, 7.5)
    assert m.accuracy_s == pytest.approx(3.0 + 3.0)  # widest gap + timeout


def test_baseline_and_phase_stats() -> None:
    rec = record("..x......x")
    assert (baseline_samples(rec, 3.0, 9.0).sent, baseline_samples(rec, 3.0, 9.0).clean) == (6, True)
    dirty = baseline_samples(rec, 0.0, 10.0)
    assert (dirty.sent, dirty.lost, dirty.clean) == (10, 2, False)
    stats = sample_phase_stats(rec, "baseline", [(0.0, 5.0)])
    assert (stats.sent, stats.lost, stats.loss_pct, stats.rtt_p50_s) == (5, 1, 20.0, 0.01)


# --------------------------------------------------------------------------- sampling loop


class ScriptedSampler:
    """Answers from a script; each sample may take some (fake) time. With `hold_at`, that
    sample waits until `released` is set (after setting `reached`)."""

    def __init__(
        self, clock: FakeClock, durations: list[float] | None = None, *, fail_at: int = -1, hold_at: int = -1
    ) -> None:
        self.clock, self.durations, self.fail_at, self.hold_at = clock, durations or [], fail_at, hold_at
        self.taken = 0
        self.closed = False
        self.reached, self.released = threading.Event(), threading.Event()

    def open(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        if self.taken == self.fail_at:
            raise RuntimeError("sampler bug")
        if self.taken == self.hold_at:
            self.reached.set()
            self.released.wait(5.0)
        took = self.durations[self.taken] if self.taken < len(self.durations) else 0.0
        self.taken += 1
        self.clock.t += took
        return True, took, "ok"


def run_fake(sampler: ScriptedSampler, clock: FakeClock, **bounds: Any) -> ProbeRecord:
    probe = AppProbe("fake", "command", sampler, None, 1.0, 0.5, clock, **bounds)
    probe.start()
    assert probe.wait(5.0)
    return probe.stop()


def test_loop_is_bounded_by_count_and_by_duration() -> None:
    clock = FakeClock(0.0)
    sampler = ScriptedSampler(clock)
    rec = run_fake(sampler, clock, count=4)
    assert [s.sent_s for s in rec.samples] == [0.0, 1.0, 2.0, 3.0]
    assert sampler.closed and rec.error is None
    clock = FakeClock(0.0)
    rec = run_fake(ScriptedSampler(clock), clock, duration_s=2.5)
    assert [s.sent_s for s in rec.samples] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("slow_s", "expected"),
    [
        (2.4, [0.0, 1.0, 3.4, 4.0]),  # slot 3 is 0.4 interval past: taken at once
        (2.6, [0.0, 1.0, 4.0, 5.0]),  # slot 3 is 0.6 interval past: skipped, no burst
    ],
)
def test_a_slow_sample_delays_the_next_without_a_burst(slow_s: float, expected: list[float]) -> None:
    clock = FakeClock(0.0)
    rec = run_fake(ScriptedSampler(clock, [0.0, slow_s]), clock, count=4)
    assert [s.sent_s for s in rec.samples] == pytest.approx(expected)


def test_stop_ends_the_loop_and_a_broken_sampler_is_reported() -> None:
    clock = FakeClock(0.0)
    sampler = ScriptedSampler(clock, hold_at=2)
    probe = AppProbe("fake", "command", sampler, None, 1.0, 0.5, clock)
    probe.start()
    assert sampler.reached.wait(5.0)
    threading.Timer(0.05, sampler.released.set).start()  # the sample in flight ends during stop()
    rec = probe.stop()
    assert len(rec.samples) == 3 and rec.error is None and sampler.closed
    clock = FakeClock(0.0)
    rec = run_fake(ScriptedSampler(clock, fail_at=2), clock, count=10)
    assert len(rec.samples) == 2 and rec.error == "RuntimeError: sampler bug"


def test_make_probe_refuses_what_cannot_be_sampled() -> None:
    clock = FakeClock()
    # `drill validate` refuses these values (tests/test_limits.py); make_probe still does, for a
    # probe built some other way (model_copy skips validation).
    sockets = NamespaceSockets({"a": "ns"})
    zero = parse("command", command="true").model_copy(update={"interval": 0})
    with pytest.raises(BadInput, match="interval and timeout must be positive"):
        make_probe(spec(zero, None, None), sockets, clock)
    with pytest.raises(BadInput, match="no target address"):
        make_probe(spec(parse("icmp", to="b"), None, None), sockets, clock)
    long_label = parse("dns", to="b", query="x.test").model_copy(update={"query": "x" * 64 + ".test"})
    with pytest.raises(BadInput, match="not a valid DNS name"):
        make_probe(spec(long_label, None, IPv4Address("192.0.2.1")), sockets, clock)


def test_start_fails_clearly_without_the_namespace() -> None:
    sockets = NamespaceSockets({"a": "drill-nonexistent-ns"})
    probe = make_probe(spec(parse("command", command="true"), None, None), sockets, SystemClock())
    with pytest.raises(BackendError, match="cannot start in node a"):
        probe.start()
    assert probe.stop().samples == []


# --------------------------------------------------------------------------- DNS wire format

NAME = "svc.drill.test"
SERVED_A = "192.0.2.10"


def dns_reply(query: bytes) -> bytes | None:
    """What the test's responder answers: NAME A SERVED_A, NAME AAAA -> a CNAME only, else NXDOMAIN."""
    if len(query) < 12:
        return None
    ident, _flags, qdcount = struct.unpack_from("!HHH", query)
    pos, labels = 12, []
    while query[pos]:
        labels.append(query[pos + 1 : pos + 1 + query[pos]].decode().lower())
        pos += 1 + query[pos]
    qtype = struct.unpack_from("!H", query, pos + 1)[0]
    question = query[12 : pos + 5]
    name = ".".join(labels)
    answers: list[bytes] = []
    rcode = 0
    if name != NAME:
        rcode = 3
    elif qtype == 1:
        answers.append(struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(SERVED_A))
    elif qtype == 28:
        target = b"\x05other\xc0\x04"  # other.drill.test, compressed
        answers.append(struct.pack("!HHHIH", 0xC00C, 5, 1, 60, len(target)) + target)
    header = struct.pack("!HHHHHH", ident, 0x8180 | rcode, qdcount, len(answers), 0, 0)
    return header + question + b"".join(answers)


def test_dns_wire_format() -> None:
    query = dns_query(0x1234, NAME, "A")
    assert query[:12] == struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    assert query[12:] == b"\x03svc\x05drill\x04test\x00\x00\x01\x00\x01"
    reply = dns_reply(query)
    assert reply is not None
    assert dns_answer(reply, query, "A") == (True, "1 A answer")
    assert dns_answer(reply, dns_query(0x1235, NAME, "A"), "A") is None  # another id
    assert dns_answer(reply[:2] + b"\x01" + reply[3:], query, "A") is None  # not a response
    aaaa = dns_query(7, NAME, "AAAA")
    assert dns_answer(dns_reply(aaaa) or b"", aaaa, "AAAA") == (False, "no AAAA answer (1 of other types)")
    missing = dns_query(8, "nope.drill.test", "A")
    assert dns_answer(dns_reply(missing) or b"", missing, "A") == (False, "rcode 3 (NXDOMAIN)")
    assert dns_answer(reply[:-3], query, "A") == (False, "malformed response")


# --------------------------------------------------------------------------- real namespaces

INTERVAL = "50ms"
TIMEOUT_S = 0.3


AppProbeModel = model.IcmpProbe | model.TcpConnectProbe | model.HttpProbe | model.DnsProbe | model.CommandProbe


def parse(kind: str, **fields: Any) -> AppProbeModel:
    data = {"name": f"p-{kind}", "from": "a", "type": kind, "interval": INTERVAL, "timeout": TIMEOUT_S, **fields}
    probe = TypeAdapter(model.Probe).validate_python(data)
    assert not isinstance(probe, model.UdpStreamProbe)
    return probe


def spec(
    probe: AppProbeModel, source: IPv4Address | IPv6Address | None, target: IPv4Address | IPv6Address | None
) -> AppSpec:
    """The resolved record of `probe` (run from node a) with its ends given by the test."""
    resolved = probe_spec(probe, source, target)
    assert not isinstance(resolved, UdpStreamSpec)
    return resolved


@dataclass
class Bed:
    ns: dict[str, str]
    topology: Topology

    @property
    def sockets(self) -> NamespaceSockets:
        return NamespaceSockets(self.ns)

    def loopback(self, node: str) -> IPv4Address:
        lo = self.topology.node(node).loopback
        assert lo is not None
        return lo.ip

    def v4(self, node: str, iface: str) -> IPv4Address:
        address = self.topology.node(node).interface(iface).ipv4
        assert address is not None
        return address.ip

    def v6(self, node: str, iface: str) -> IPv6Address:
        address = self.topology.node(node).interface(iface).ipv6
        assert address is not None
        return address.ip

    def link(self, node: str, iface: str, state: str) -> None:
        subprocess.run(["ip", "-n", self.ns[node], "link", "set", iface, state], check=True, timeout=10)

    def blackhole(self, node: str, address: IPv4Address) -> None:
        """`node` silently drops what it sends to `address`: requests arrive, answers never do
        (unlike a carrier loss, which the source's kernel notices in its own time)."""
        subprocess.run(
            ["ip", "-n", self.ns[node], "route", "replace", "blackhole", f"{address}/32"], check=True, timeout=10
        )


@contextmanager
def two_nodes(tmp_path: Path, state_dir: Path, *, web: bool = False) -> Iterator[Bed]:
    """a -- b over one veth pair (a:tob, b:toa), routed between loopbacks, IPv6 on the link;
    with `web`, b serves `tmp_path` over HTTP on port 8080."""
    b: dict[str, Any] = {"routes": [{"to": "a", "via": "a:tob"}]}
    if web:
        (tmp_path / "hello.txt").write_text("drills-ok\n")
        b["services"] = [
            {
                "name": "web",
                "command": f"exec {sys.executable} -m http.server --bind 0.0.0.0 8080",
                "ready": {"tcp": 8080, "timeout": "20s"},
            }
        ]
    scenario = {
        "version": 1,
        "name": "app-probes",
        "topology": {
            "addressing": {"ipv6": "fd00:d811:a9::/48"},
            "nodes": {"a": {"routes": [{"to": "b", "via": "b:toa"}]}, "b": b},
            "links": [{"name": "wire", "endpoints": ["a:tob", "b:toa"]}],
        },
    }
    path = tmp_path / "app-probes.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    up = lifecycle.up(path, state_dir)
    try:
        yield Bed(up.meta.nodes, up.topology)
    finally:
        lifecycle.down(state_dir, up.meta.run_id)


def sample(
    bed: Bed,
    probe_model: AppProbeModel,
    target: IPv4Address | IPv6Address | None,
    *,
    count: int = 3,
    port: int | None = None,
    source: IPv4Address | IPv6Address | None = None,
) -> ProbeRecord:
    """Run a probe from node a for `count` samples and return its record."""
    source = source if source is not None else bed.loopback("a")
    probe = make_probe(spec(probe_model, source, target), bed.sockets, SystemClock(), target_port=port, count=count)
    probe.start()
    try:
        assert probe.wait(count * (0.05 + probe_model.timeout) + 10), "the probe did not finish its samples"
    finally:
        rec = probe.stop()
    assert rec.error is None and len(rec.samples) == count
    return rec


def assert_all_ok(rec: ProbeRecord) -> None:
    assert all(s.ok for s in rec.samples), [s.detail for s in rec.samples]
    assert all(s.latency_s is not None and 0 < s.latency_s < rec.timeout_s for s in rec.samples)
    # On schedule: never before its slot, and not drifting (one slot is 50 ms).
    sent = [s.sent_s - rec.samples[0].sent_s for s in rec.samples]
    assert all(b > a for a, b in itertools.pairwise(sent)), sent
    assert all(t >= k * 0.05 - 1e-3 for k, t in enumerate(sent)) and sent[-1] <= (len(sent) - 1) * 0.05 + 0.1, sent


def details(rec: ProbeRecord) -> set[str]:
    assert not any(s.ok for s in rec.samples)
    assert all(s.latency_s is None for s in rec.samples)
    return {s.detail for s in rec.samples}


@pytest.mark.netns
def test_icmp_to_a_loopback_then_unreachable(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    with two_nodes(tmp_path, state_dir) as bed:
        # Two echo probes at once in one namespace: each raw socket sees every reply and must
        # keep only its own.
        clock = SystemClock()
        good = make_probe(spec(parse("icmp", to="b"), bed.loopback("a"), bed.loopback("b")), bed.sockets, clock, count=6)
        unrouted = spec(parse("icmp", to="x"), bed.loopback("a"), IPv4Address("198.51.100.7"))
        lost = make_probe(unrouted, bed.sockets, clock, count=6)
        for probe in (good, lost):
            probe.start()
        assert good.wait(10) and lost.wait(10)
        assert_all_ok(good.stop())
        assert details(lost.stop()) == {"send failed: Network is unreachable"}

        # A router's ICMP error quoting our request is matched to it and reported.
        nowhere = "203.0.113.9"
        subprocess.run(
            ["ip", "-n", bed.ns["a"], "route", "add", nowhere, "via", str(bed.v4("b", "toa"))], check=True, timeout=10
        )
        subprocess.run(["ip", "-n", bed.ns["b"], "route", "add", "unreachable", nowhere], check=True, timeout=10)
        rec = sample(bed, parse("icmp", to="x"), IPv4Address(nowhere), count=2)
        assert {d.rsplit(" from ", 1)[0] for d in details(rec)} == {"ICMP destination unreachable (code 1)"}

        bed.link("a", "tob", "down")  # the source's own link: no route any more
        rec = sample(bed, parse("icmp", to="b"), bed.loopback("b"), count=2)
        assert details(rec) == {"send failed: Network is unreachable"}


@pytest.mark.netns
def test_icmp_over_ipv6_then_far_end_down(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    with two_nodes(tmp_path, state_dir) as bed:
        probe = parse("icmp", to="b:toa")
        assert_all_ok(sample(bed, probe, bed.v6("b", "toa"), source=bed.v6("a", "tob")))
        bed.link("b", "toa", "down")  # the far end: a loses carrier and gets no answer
        rec = sample(bed, probe, bed.v6("b", "toa"), source=bed.v6("a", "tob"), count=2)
        # What a sees depends on when its kernel processes the carrier loss (linkwatch runs
        # asynchronously): the packet dropped, refused by the link (ENOBUFS), or no route once
        # ignore_routes_with_linkdown applies. Every one is a failure with a clear reason.
        no_carrier = "send failed: No buffer space available (is the outgoing interface down or without carrier?)"
        assert details(rec) <= {no_carrier, "send failed: Network is unreachable", "no echo reply within 0.3 s"}


@pytest.mark.netns
def test_icmp_measures_a_real_cut(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """Half a second with the far end down: the failed-sample outage matches, within its bound."""
    clock = SystemClock()
    with two_nodes(tmp_path, state_dir) as bed:
        icmp = parse("icmp", to="b:toa", interval="20ms", timeout="100ms")
        probe = make_probe(spec(icmp, bed.v4("a", "tob"), bed.v4("b", "toa")), bed.sockets, clock, duration_s=2.0)
        probe.start()
        try:
            clock.sleep_until(clock.now_s() + 0.6)
            down_issued = clock.now_s()
            bed.link("b", "toa", "down")
            down_done = clock.now_s()
            clock.sleep_until(down_issued + 0.5)
            up_issued = clock.now_s()
            bed.link("b", "toa", "up")
            up_done = clock.now_s()
            assert probe.wait(10)
        finally:
            rec = probe.stop()
    m = analyse_samples(rec, Window("cut", "apply", down_issued, up_issued), 0.2, down_done - down_issued)
    assert m.accuracy_s < 0.5
    assert up_issued - down_done - m.accuracy_s <= m.outage_s <= up_done - down_issued + m.accuracy_s
    assert m.time_to_detect_s is not None and m.time_to_detect_s <= m.accuracy_s
    assert m.time_to_recover_s is not None
    assert abs(m.time_to_recover_s - (up_done - down_issued)) <= m.accuracy_s
    before = baseline_samples(rec, rec.samples[0].sent_s, down_issued - 0.1)
    assert before.clean and before.sent >= 10


@pytest.mark.netns
def test_tcp_connect(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    with two_nodes(tmp_path, state_dir, web=True) as bed:
        assert_all_ok(sample(bed, parse("tcp-connect", to="b", port=8080), bed.loopback("b")))
        closed = sample(bed, parse("tcp-connect", to="b", port=8081), bed.loopback("b"), count=2)
        assert details(closed) == {f"connection refused by {bed.loopback('b')} port 8081"}
        bed.blackhole("b", bed.loopback("a"))
        rec = sample(bed, parse("tcp-connect", to="b", port=8080), bed.loopback("b"), count=2)
        assert details(rec) == {"no connection within 0.3 s"}
        bed.link("a", "tob", "down")
        rec = sample(bed, parse("tcp-connect", to="b", port=8080), bed.loopback("b"), count=2)
        assert details(rec) == {"connect failed: Network is unreachable"}


@pytest.mark.netns
def test_http(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    with two_nodes(tmp_path, state_dir, web=True) as bed:
        target = bed.loopback("b")
        assert_all_ok(
            sample(bed, parse("http", to="b", port=8080, path="/hello.txt", body_contains="drills-ok"), target)
        )
        # The port may also come from the target, overriding the probe's.
        assert_all_ok(sample(bed, parse("http", to="b", path="/hello.txt"), target, port=8080, count=1))
        missing = sample(bed, parse("http", to="b", port=8080, path="/missing.txt"), target, count=1)
        assert details(missing) == {"HTTP 404 File not found, wanted 200"}
        wrong = sample(
            bed, parse("http", to="b", port=8080, path="/hello.txt", body_contains="absent"), target, count=1
        )
        assert details(wrong) == {"HTTP 200 but the body lacks 'absent'"}
        bed.blackhole("b", bed.loopback("a"))
        rec = sample(bed, parse("http", to="b", port=8080), target, count=1)
        assert details(rec) == {"no complete response within 0.3 s (0 bytes)"}
        bed.link("a", "tob", "down")
        rec = sample(bed, parse("http", to="b", port=8080), target, count=2)
        assert details(rec) == {"HTTP request failed: Network is unreachable"}


class DnsResponder:
    """`dns_reply` served from a UDP socket in a namespace by a thread of this process."""

    def __init__(self, namespace: str, address: IPv4Address) -> None:
        self.sock = kernel.run_in_namespace(namespace, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        self.sock.bind((str(address), 53))
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            if not select.select([self.sock], [], [], 0.05)[0]:
                continue
            try:
                query, peer = self.sock.recvfrom(512)
                reply = dns_reply(query)
                if reply is not None:
                    self.sock.sendto(reply, peer)
            except (OSError, IndexError, struct.error):
                continue

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.sock.close()  # an open socket would keep the namespace alive


@pytest.mark.netns
def test_dns(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    with two_nodes(tmp_path, state_dir) as bed:
        server = bed.loopback("b")
        responder = DnsResponder(bed.ns["b"], server)
        try:
            assert_all_ok(sample(bed, parse("dns", to="b", query=NAME), server))
            aaaa = sample(bed, parse("dns", to="b", query=NAME, record="AAAA"), server, count=1)
            assert details(aaaa) == {"no AAAA answer (1 of other types)"}
            nx = sample(bed, parse("dns", to="b", query="nope.drill.test"), server, count=1)
            assert details(nx) == {"rcode 3 (NXDOMAIN)"}
            other_port = sample(bed, parse("dns", to="b", query=NAME), server, port=5300, count=1)
            assert details(other_port) == {f"port unreachable: no DNS server on {server} port 5300"}
            bed.blackhole("b", bed.loopback("a"))
            rec = sample(bed, parse("dns", to="b", query=NAME), server, count=2)
            assert details(rec) == {"no answer within 0.3 s"}
            bed.link("a", "tob", "down")
            rec = sample(bed, parse("dns", to="b", query=NAME), server, count=2)
            assert details(rec) == {"query failed: Network is unreachable"}
        finally:
            responder.close()


@pytest.mark.netns
def test_command(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    with two_nodes(tmp_path, state_dir) as bed:
        # The command runs in a's namespace: it sees a's interface and not b's.
        inside = "grep -q 'tob:' /proc/net/dev && ! grep -q 'toa:' /proc/net/dev"
        assert_all_ok(sample(bed, parse("command", command=inside), None))
        assert details(sample(bed, parse("command", command="false"), None, count=1)) == {"exit status 1"}
        said = sample(bed, parse("command", command="echo first >&2; echo oops >&2; exit 3"), None, count=1)
        assert details(said) == {"exit status 3: oops"}
        started = time.monotonic()
        slow = sample(bed, parse("command", command="sleep 5"), None, count=2)
        assert details(slow) == {"still running after 0.3 s: killed"}
        assert time.monotonic() - started < 2.0  # killed at the timeout; host_snapshot checks none is left

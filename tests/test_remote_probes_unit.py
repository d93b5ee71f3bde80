"""Probes on other hosts, without root: records in parts and mapped onto the controller's clock,
the agent's ProbeService over this process's own sockets (127.0.0.1), and the controller's
RemoteProbes over in-process sites whose clocks run 100 s ahead and 50 s behind."""

from __future__ import annotations

import dataclasses
import random
import socket
import threading
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from remote_probe_testing import LocalSockets, ShiftedClock, site, until

from drills.clock import FakeClock, SystemClock
from drills.engine.drill import RunningProbes
from drills.errors import BackendError, BadInput
from drills.probes.app import AppProbe
from drills.probes.udp_stream import UdpStream
from drills.records import ProbeRecord, Sample, StreamRecord
from drills.remote import probe_records, remote_probes
from drills.remote.probe_records import RecordParts
from drills.remote.probe_service import METHODS, Endpoint, ProbeService
from drills.scenario import load_scenario
from drills.scenario.probes import CommandSpec, IcmpSpec, UdpStreamSpec
from drills.scenario.resolved import Scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
LOCAL = IPv4Address("127.0.0.1")


def _stream_record(rng: random.Random, packets: int) -> StreamRecord:
    record = StreamRecord("s", 1000, 64)
    for seq in range(packets):
        record.sent.append(1000.0 + seq / 1000 + rng.random() * 1e-4)
        record.send_lateness_s.append(rng.random() * 1e-4)
        if rng.random() < 0.9:
            record.received[seq] = record.sent[seq] + 0.0002
    for _ in range(rng.randrange(0, 2 * packets + 1)):  # duplicates may outnumber packets
        record.duplicate_seqs.append(rng.randrange(packets or 1))
    record.duplicates = len(record.duplicate_seqs)
    record.reordered_seqs = [rng.randrange(packets or 1) for _ in range(rng.randrange(0, packets + 1))]
    record.reordered = len(record.reordered_seqs)
    # How it was sent travels too (the first part carries it).
    record.sender_scheduling = "SCHED_FIFO 2"
    covered = rng.randrange(packets + 1)
    record.lane_cpus, record.lane_sent = [1, 0], [packets - covered, covered]
    return record


@pytest.mark.parametrize("seed", range(20))
def test_a_record_cut_in_parts_merges_back_exactly(seed: int) -> None:
    rng = random.Random(seed)
    record = _stream_record(rng, rng.randrange(0, 700))
    per_part = rng.randrange(1, 150)
    parts = [probe_records.part(record, start, per_part) for start in range(0, max(1, probe_records.units(record)), per_part)]
    assert probe_records.merge(parts) == record
    samples = [Sample(float(i), rng.random() < 0.5, rng.random(), f"d{i}") for i in range(rng.randrange(0, 300))]
    app = ProbeRecord("p", "icmp", 0.1, 0.2, "x", samples, error="why")
    app_parts = [probe_records.part(app, start, per_part) for start in range(0, max(1, len(samples)), per_part)]
    assert probe_records.merge(app_parts) == app


def test_instants_are_mapped_and_durations_kept() -> None:
    record = StreamRecord("s", 100, 64, sent=[100.5, 100.51], received={0: 100.6}, send_lateness_s=[1e-4, 2e-4])
    mapped = probe_records.to_controller(record, 100.0)
    assert isinstance(mapped, StreamRecord)
    assert mapped.sent == pytest.approx([0.5, 0.51], abs=1e-9) and mapped.received == pytest.approx({0: 0.6}, abs=1e-9)
    assert mapped.send_lateness_s == [1e-4, 2e-4] and record.sent == [100.5, 100.51]  # the original is untouched
    app = ProbeRecord("p", "icmp", 0.1, 0.2, samples=[Sample(150.0, True, 0.003, "echo reply")])
    mapped_app = probe_records.to_controller(app, -50.0)
    assert isinstance(mapped_app, ProbeRecord) and mapped_app.samples == [Sample(200.0, True, 0.003, "echo reply")]


def _scenario(rate_pps: int = 200) -> Scenario:
    """field-command-post's voice stream cp -> dispatch, on 127.0.0.1, and a command probe in cp."""
    scenario = load_scenario(SCENARIOS / "field-command-post.yaml")
    voice = scenario.probes[0]
    assert isinstance(voice, UdpStreamSpec)
    voice = dataclasses.replace(voice, source_address=LOCAL, target_address=LOCAL, rate_pps=rate_pps)
    check = CommandSpec("check", "command", "cp", LOCAL, None, 0.02, 1.0, command="true")
    return dataclasses.replace(scenario, probes=(voice, check))


def _running(service: ProbeService, probe_id: str) -> Endpoint:
    return service._running[probe_id]


def test_probes_across_two_sites_start_in_order_and_map_back() -> None:
    clock = SystemClock()
    calls: list[tuple[str, str]] = []
    sockets = LocalSockets()
    ahead = site("h1", sockets, clock, 100.0, calls)
    behind = site("h2", sockets, clock, -50.0, calls)
    sites = {"cp": ahead, "eoc": ahead, "dispatch": behind}
    before_s = clock.now_s()
    running = remote_probes.start(_scenario(), sites, seed=7)
    try:
        # The echo on the other host first, its port handed to the sender; then in file order.
        assert calls == [("h2", "echo"), ("h1", "stream"), ("h1", "app")]
        assert sockets.opened == {"dispatch": 1, "cp": 1}
        voice, check = _running(ahead.service, "dispatch-voice"), _running(ahead.service, "check")
        assert isinstance(voice, UdpStream) and isinstance(check, AppProbe)
        # 0.5 s of packets: the live view's settled second is not empty (were `now` not mapped
        # onto h1's clock, 100 s ahead, nothing would be in it: "idle").
        until(lambda: len(voice.record.received) >= 100 and len(check.record.samples) >= 3)
        del calls[:]
        health = running.health(clock.now_s())
        assert calls == [("h1", "health")]  # every probe runs on h1: h2 holds only an echo
        assert [(h.name, h.kind, h.state) for h in health] == [("dispatch-voice", "udp-stream", "ok"), ("check", "command", "ok")]
    finally:
        records, pairs = running.stop()
    after_s = clock.now_s()
    assert pairs == [] and not ahead.service._running and not behind.service._running
    stream, app = records
    assert isinstance(stream, StreamRecord) and isinstance(app, ProbeRecord)
    # Every instant is back on the controller's clock: the agents' were 100 s ahead.
    assert before_s <= stream.sent[0] and stream.sent[-1] <= after_s
    assert all(before_s <= t <= after_s for t in stream.received.values())
    assert all(before_s <= s.sent_s <= after_s and s.ok for s in app.samples)
    # One drain for all: every packet sent came back (loopback loses nothing in 0.5 s).
    assert len(stream.received) == len(stream.sent) and stream.duplicates == 0
    placements = {p.probe: p for p in running.placements}
    assert placements["dispatch-voice"] == remote_probes.ProbePlacement("dispatch-voice", "h1", ("h1", "h2"), 100.0, 0.001)
    assert placements["check"].hosts == ("h1",)


def test_a_record_larger_than_a_part_comes_back_whole() -> None:
    clock = SystemClock()
    calls: list[tuple[str, str]] = []
    one = site("h1", LocalSockets(), clock, 100.0, calls, part_units=40)
    running = remote_probes.start(_scenario(rate_pps=500), {"cp": one, "dispatch": one}, seed=1)
    voice = _running(one.service, "dispatch-voice")
    assert isinstance(voice, UdpStream)
    until(lambda: len(voice.record.received) >= 150)
    records, _pairs = running.stop()
    stream = records[0]
    assert isinstance(stream, StreamRecord) and len(stream.sent) >= 150
    assert sorted(stream.received) == list(range(len(stream.sent)))
    assert stream.sent == sorted(stream.sent) and len(stream.send_lateness_s) == len(stream.sent)
    # Each record in parts of 40 packets (or samples), then released.
    app = records[1]
    assert isinstance(app, ProbeRecord) and app.samples == sorted(app.samples, key=lambda s: s.sent_s)

    def fetched(entries: int) -> list[str]:
        return ["stop"] + (["part"] * -(-entries // 40) + ["release"] if entries > 40 else [])

    asked = [method for _host, method in calls if method in ("stop", "part", "release")]
    assert asked == fetched(len(stream.sent)) + fetched(len(app.samples))
    assert calls.count(("h1", "echo")) == 0  # one host: the stream's own echo, as on one machine
    assert not one.service._kept


def test_a_probe_that_cannot_start_stops_what_started() -> None:
    clock = SystemClock()
    calls: list[tuple[str, str]] = []
    sockets = LocalSockets()
    h1, h2 = site("h1", sockets, clock, 0.0, calls), site("h2", sockets, clock, 0.0, calls)
    h1.broken.add("app")
    with pytest.raises(BackendError, match="h1: probe check: app: "):
        remote_probes.start(_scenario(), {"cp": h1, "dispatch": h2}, seed=1)
    assert calls[-2:] == [("h2", "stop_all"), ("h1", "stop_all")]  # h2 holds the echo started first
    assert not h1.service._running and not h2.service._running
    with pytest.raises(BadInput, match="node dispatch is placed on no host"):
        remote_probes.start(_scenario(), {"cp": h1}, seed=1)


def test_a_lost_site_shows_its_probes_unreachable_and_stop_names_it() -> None:
    clock = SystemClock()
    calls: list[tuple[str, str]] = []
    h1 = site("h1", LocalSockets(), clock, 0.0, calls)
    running = remote_probes.start(_scenario(), {"cp": h1, "dispatch": h1}, seed=1)
    h1.broken |= {"health", "stop", "stop_sending"}
    assert {h.state for h in running.health(clock.now_s())} == {"unreachable"}
    with pytest.raises(BackendError, match="h1: probe dispatch-voice: h1: the agent's channel is lost"):
        running.stop()
    h1.broken.clear()
    running.abort()  # idempotent, and nothing is left to stop: stop() forgot what it started
    h1.service.stop_all()


def test_the_service_checks_what_it_is_asked() -> None:
    clock = ShiftedClock(FakeClock(), 0.0)
    service = ProbeService(LocalSockets(), clock, max_endpoints=2)
    spec = _scenario().probes[0]
    assert isinstance(spec, UdpStreamSpec)
    port = service.echo("e", "dispatch", "127.0.0.1", socket.AF_INET)
    try:
        assert service.port("e") == port > 0
        with pytest.raises(BadInput, match="already in use"):
            service.echo("e", "dispatch", "127.0.0.1", 4)
        with pytest.raises(BadInput, match="family 6 does not fit"):
            service.echo("e2", "dispatch", "127.0.0.1", 6)
        with pytest.raises(BadInput, match="not \\(address, port\\)"):
            service.stream("s", spec, 1, ["127.0.0.1"])
        with pytest.raises(BadInput, match="not a UDP port"):
            service.stream("s", spec, 1, ["127.0.0.1", 70000])
        with pytest.raises(BadInput, match="not a 32-bit number"):
            service.stream("s", spec, -1, None)
        with pytest.raises(BadInput, match="not an application probe"):
            service.app("a", spec)  # type: ignore[arg-type]
        with pytest.raises(BadInput, match="not a udp-stream"):
            service.stream("s", IcmpSpec("i", "icmp", "cp", LOCAL, "x", 1.0, 1.0, LOCAL), 1, None)  # type: ignore[arg-type]
        with pytest.raises(BadInput, match="not a name of 1 to 200 bytes"):
            service.echo("x" * 201, "dispatch", "127.0.0.1", 4)
        with pytest.raises(BadInput, match="is not an IP address"):
            service.echo("e3", "dispatch", "nowhere", 4)
        with pytest.raises(BadInput, match="drain nan s"):
            service.stop("e", float("nan"))
        service.echo("e4", "dispatch", "127.0.0.1", 4)
        with pytest.raises(BadInput, match="already runs 2 probes and echoes"):
            service.echo("e5", "dispatch", "127.0.0.1", 4)
        with pytest.raises(BadInput, match="no probe 'nope' runs"):
            service.stop("nope", 0.0)
        assert service.stop("e4", 0.0) is None
        with pytest.raises(BadInput, match="no record of probe 'e' is kept"):
            service.part("e", 0, 10)
    finally:
        assert service.stop_all() == 1
    assert service.health(clock.now_s()) == [] and service.stop_all() == 0
    assert RecordParts("x", 1, 1).per_part == 1


def test_the_allowlist_is_every_public_method() -> None:
    public = {name for name in dir(ProbeService) if not name.startswith("_")}
    assert public == METHODS


def test_an_echo_that_moves_takes_its_stream_along() -> None:
    # The echo's node got a new namespace on h2: the echo reopens there (here, where the old
    # socket still holds its port, on a new one) and the sender on h1 is pointed at it.
    clock = SystemClock()
    calls: list[tuple[str, str]] = []
    sockets = LocalSockets()
    h1, h2 = site("h1", sockets, clock, 100.0, calls), site("h2", sockets, clock, -50.0, calls)
    running = remote_probes.start(_scenario(), {"cp": h1, "dispatch": h2}, seed=3)
    log: list[str] = []
    try:
        voice = _running(h1.service, "dispatch-voice")
        assert isinstance(voice, UdpStream)
        until(lambda: len(voice.record.received) >= 10)
        old_port = h2.service.port("dispatch-voice@echo")
        running.follow("dispatch", log.append)
        new_port = h2.service.port("dispatch-voice@echo")
        assert new_port != old_port and voice.echo_at == ("127.0.0.1", new_port)
        assert log == [f"  dispatch: probe dispatch-voice@echo on h2: echo 127.0.0.1 port {new_port}"]
        after = len(voice.record.sent)
        until(lambda: any(seq >= after for seq in voice.record.received), "echoes from the new port")
    finally:
        running.stop()


def test_remote_probes_are_the_engines_running_probes() -> None:
    clock = SystemClock()
    one = site("h1", LocalSockets(), clock, 0.0, [])
    running: RunningProbes = remote_probes.start(_scenario(), {"cp": one, "dispatch": one}, seed=1)
    assert running.count == 2
    running.abort()
    running.abort()  # idempotent
    assert not one.service._running
    assert remote_probes.stop_wait_s(_scenario()) == 1.0 + 2.0  # the command probe's timeout + slack


class _SlowSockets(LocalSockets):
    """Opens a socket only once `go` is set (and says when one is waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting, self.go = threading.Event(), threading.Event()

    def open_socket(self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0) -> socket.socket:
        self.waiting.set()
        assert self.go.wait(20), "the test never let the socket open"
        return super().open_socket(node, family, kind, proto)


def test_stop_all_while_an_echo_opens_leaves_nothing_running() -> None:
    sockets = _SlowSockets()
    service = ProbeService(sockets, SystemClock())
    failed: list[BaseException] = []

    def open_echo() -> None:
        try:
            service.echo("e", "dispatch", "127.0.0.1", 4)
        except BackendError as exc:
            failed.append(exc)

    opener = threading.Thread(target=open_echo)
    opener.start()
    assert sockets.waiting.wait(20)
    assert service.stop_all() == 0  # the dead-man switch, while the echo is half open
    sockets.go.set()
    opener.join(20)
    assert [str(e) for e in failed] == ["probe e: stopped while it started (every probe of this host was stopped)"]
    assert not service._running and not service._opening and not service._cancelled
    service.echo("e", "dispatch", "127.0.0.1", 4)  # the id is free again
    assert service.stop("e", 0.0) is None

"""A probe whose socket lives in a container node follows the container into the new network
namespace `docker start` gives it after node-loss, so the drill measures a recovery instead of a
permanent outage; and the socket swap under a running udp-stream (plain namespaces) loses
nothing beyond the swap instant, keeps the record continuous and closes the old sockets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from docker_testing import containerise, docker_engine_fixture, docker_leftovers_fixture, write  # noqa: F401
from line_testing import two_node_line

from drills import lifecycle, realtime
from drills.clock import SystemClock
from drills.netns import kernel
from drills.netns.backend import NODE_SYSCTLS, _configure, install_routes
from drills.netns.sockets import NamespaceSockets
from drills.probes.app import AppProbe
from drills.probes.pair_mesh import PairEnd, PairMesh
from drills.probes.udp_stream import Retiring, UdpStream

RATE_PPS = 300


def _pair(name: str, duration_s: int = 10) -> dict[str, Any]:
    """a -- r -- b, every node a container; a voice stream from a to b at RATE_PPS."""
    return containerise(
        {
            "version": 1,
            "name": name,
            "seed": 11,
            "topology": {
                "nodes": {
                    "a": {"routes": [{"to": "b", "via": "r:a0"}]},
                    "r": {"routes": [{"to": "a", "via": "a:r"}, {"to": "b", "via": "b:r"}]},
                    "b": {"routes": [{"to": "a", "via": "r:b0"}]},
                },
                "links": [
                    {"name": "a-r", "endpoints": ["a:r", "r:a0"]},
                    {"name": "r-b", "endpoints": ["r:b0", "b:r"]},
                ],
            },
            "probes": [{"name": "voice", "type": "udp-stream", "from": "a", "to": "b", "rate_pps": RATE_PPS}],
            "timeline": [],
            "duration": f"{duration_s}s",
        }
    )


def _restore_drill(tmp_path: Path, drill: Any, lost: str) -> dict[str, Any]:
    """Node `lost` is lost for 2 s at T+3 s and restored; the results of the drill."""
    scenario = _pair(f"probe-follows-{lost}")
    scenario["timeline"] = [{"id": "crash", "at": "3s", "fault": "node-loss", "node": lost, "for": "2s"}]
    # Loose bounds (machines are noisy): what matters is that the stream comes back at all.
    scenario["expect"] = [{"name": "back", "probe": "voice", "step": "crash", "event": "revert", "max_recovery": "15s"}]
    out = tmp_path / "out"
    done = drill("run", str(write(tmp_path, f"{lost}.yaml", scenario)), "--out", str(out), "--no-live", timeout_s=240)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    assert not results["revert_failures"]
    assert f"{lost}: probe voice reopened in its new namespace" in (done.stdout + done.stderr)
    return results


def _assert_recovered(results: dict[str, Any]) -> None:
    assert results["outcome"] == "passed", [v for v in results["verdicts"] if not v["passed"]]
    events = {(m["event"], m["kind"]): m for m in results["metrics"]}
    restored = events[("crash", "revert")]
    assert restored["recovered_during_event"], restored
    # Lost from the crash until the restored node forwarded again: the 2 s the node was down
    # plus the time to restore it (docker start, links moved, configured again).
    crashed = events[("crash", "apply")]
    outage_s = crashed["outage_s"] + (restored["outage_s"] or 0.0)
    assert 1.5 <= outage_s <= 15.0, (crashed, restored)


@pytest.mark.docker
@pytest.mark.netns
@pytest.mark.usefixtures("docker_leftovers")
def test_stream_source_follows_its_restored_container(tmp_path: Path, drill: Any) -> None:
    """The stream's sender is in container a, lost for 2 s and restored: it sends again from
    a's new namespace and the drill measures the recovery."""
    _assert_recovered(_restore_drill(tmp_path, drill, "a"))


@pytest.mark.docker
@pytest.mark.netns
@pytest.mark.usefixtures("docker_leftovers")
def test_stream_echo_follows_its_restored_container(tmp_path: Path, drill: Any) -> None:
    """The stream's echo is in container b, lost for 2 s and restored: it answers again from
    b's new namespace (on a port the sender learns) and the drill measures the recovery."""
    _assert_recovered(_restore_drill(tmp_path, drill, "b"))


# --------------------------------------------------------------------------- the swap itself


def _replace_namespace(up: lifecycle.UpResult, node_name: str) -> None:
    """What restoring a container does to its node, on a plain namespace node: a new namespace
    takes the node's name, its link interfaces move there and it is configured again; the old
    namespace lives on, detached from every link, while a socket still holds it."""
    name, node = up.meta.nodes[node_name], up.topology.node(node_name)
    fresh = f"{name}-new"
    kernel.create_namespaces([fresh], NODE_SYSCTLS)
    try:
        old = kernel.open_netlink(name)
        fd = os.open(kernel.netns_path(fresh), os.O_RDONLY | os.O_CLOEXEC)
        try:
            for iface in node.interfaces:
                old.link("set", index=kernel.link_index(old, iface.name), net_ns_fd=fd)
        finally:
            os.close(fd)
            old.close()
        path = str(kernel.netns_path(name))
        subprocess.run(["umount", path], check=True, timeout=10)
        subprocess.run(["mount", "--bind", str(kernel.netns_path(fresh)), path], check=True, timeout=10)
    finally:
        kernel.delete_namespace(fresh)  # only the extra name: the namespace is bound at `name` now
    kernel.in_each_namespace([name], lambda _name, ipr: _configure(node, ipr))
    kernel.in_each_namespace([name], lambda _name, ipr: install_routes(node, ipr, kernel.local_link_index))


def _lost_between(sent: list[float], received: dict[int, float], start_s: float, end_s: float) -> list[int]:
    """Packets sent between the two instants whose echo (or arrival) never came."""
    return [seq for seq, at in enumerate(sent) if start_s < at < end_s and seq not in received]


def _retiring(stream: UdpStream) -> list[Retiring]:
    """Every replaced socket of `stream`: its sender's, and its own echo's."""
    echo = list(stream._echo._retiring.values()) if stream._echo is not None else []
    return [*stream._retiring.values(), *echo]


def _wait_closed(stream: UdpStream) -> bool:
    """True once every replaced socket of `stream` is closed (by the last thread off it)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if all(r.sock.fileno() == -1 for r in _retiring(stream)):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.netns
def test_a_running_stream_follows_its_nodes_into_new_namespaces(
    tmp_path: Path, state_dir: Path, host_snapshot: Any
) -> None:
    """The sender's node gets a new namespace, then the echo's, while 500 packets/s flow;
    reopen() after each: the threads keep running, the sequence numbers continue in one record,
    every packet sent after a reopen returned is answered (only those in the replacement window
    are lost), and the old sockets are closed as soon as the threads moved off them (releasing
    the old namespaces), the new ones by stop()."""
    up = two_node_line(tmp_path, state_dir, "socket-swap")
    ns = up.meta.nodes
    a, b = up.topology.node("a").primary_address, up.topology.node("b").primary_address
    assert a is not None and b is not None
    stream = UdpStream("swap", NamespaceSockets(ns), "a", a, "b", b, 500, 64, SystemClock(), tag=7)
    instants_s = []  # replacement started, then reopen() returned; for a, then for b
    try:
        stream.start()
        time.sleep(0.4)
        instants_s.append(time.monotonic())
        _replace_namespace(up, "a")
        assert stream.reopen("a") == [f"sender {a}"]
        instants_s.append(time.monotonic())
        time.sleep(0.4)
        instants_s.append(time.monotonic())
        _replace_namespace(up, "b")
        assert stream.reopen("b")[0].startswith(f"echo {b} port ")
        instants_s.append(time.monotonic())
        assert stream.reopen("not-a-node-of-this-stream") == []
        time.sleep(0.4)
        assert stream._echo is not None  # the target is on this host: the stream's own echo
        assert all(thread.is_alive() for thread in (*stream._senders, stream._receiver, stream._echo._thread))
        assert len(_retiring(stream)) == 2 and _wait_closed(stream)
    finally:
        record = stream.stop(drain_s=0.3)
        lifecycle.down(state_dir, up.meta.run_id)
    assert stream._sock.fileno() == -1 and stream._echo._sock.fileno() == -1
    assert stream.reopen("a") == []  # a stopped stream opens nothing
    sent = len(record.sent)
    assert sent > 500 and set(record.received) <= set(range(sent)) and record.duplicates == 0
    # Outside the two replacement windows, at most a packet in flight at a swap instant is lost.
    # (The end of the stream is left out: stop() drains only so long.)
    a_start, a_swapped, b_start, b_swapped = instants_s
    for start_s, end_s in ((0.0, a_start), (a_swapped, b_start), (b_swapped, b_swapped + 0.3)):
        lost = _lost_between(record.sent, record.received, start_s, end_s)
        assert len(lost) <= 2, (start_s, end_s, lost)


class _NamespaceSampler:
    """Notes the network namespace of the thread that opens it and takes each sample."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0
        self.taken = 0

    def open(self) -> None:
        self.opened += 1

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        self.taken += 1
        return True, 0.0, "ok"

    def close(self) -> None:
        self.closed += 1


@pytest.mark.netns
def test_app_probe_enters_its_namespace_again(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """reopen() of an application probe's node: the sampler is closed, opened again in a fresh
    thread that entered the namespace by name, and the schedule and record continue."""
    up = two_node_line(tmp_path, state_dir, "socket-swap")
    ns = up.meta.nodes
    sampler = _NamespaceSampler()
    sockets = NamespaceSockets(ns)
    probe = AppProbe("app", "command", sampler, "a", 0.02, 1.0, SystemClock(), sockets=sockets, count=40)
    try:
        probe.start()
        time.sleep(0.2)
        assert probe.reopen("b") == []
        assert probe.reopen("a") == ["command sampler"]
        assert probe.wait(10)
    finally:
        record = probe.stop()
        lifecycle.down(state_dir, up.meta.run_id)
    assert record.error is None and len(record.samples) == 40
    assert sampler.opened == 2 and sampler.closed == 2
    assert all(b.sent_s > a.sent_s for a, b in zip(record.samples, record.samples[1:], strict=False))


@pytest.mark.netns
def test_pair_mesh_follows_a_node_into_its_new_namespace(
    tmp_path: Path, state_dir: Path, host_snapshot: Any
) -> None:
    """Node a of the partition pair mesh gets a new namespace while the mesh runs; after
    reopen() both directions arrive again in the same records, and the replaced sockets are
    closed."""
    up = two_node_line(tmp_path, state_dir, "socket-swap")
    ns = up.meta.nodes
    ends = {}
    for node in ("a", "b"):
        address = up.topology.node(node).primary_address
        assert address is not None
        ends[node] = PairEnd(node, address)
    mesh = PairMesh([(ends["a"], ends["b"]), (ends["b"], ends["a"])], NamespaceSockets(ns), SystemClock(), tag=9)
    try:
        mesh.start()
        time.sleep(0.4)
        _replace_namespace(up, "a")
        assert mesh.reopen("a") == ["a"]
        swapped_s = time.monotonic()
        assert mesh.reopen("not-a-node-of-this-mesh") == []
        time.sleep(0.5)
        deadline = time.monotonic() + 5.0
        while any(r.sock.fileno() != -1 for r in mesh._retiring) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(mesh._retiring) == 2 and all(r.sock.fileno() == -1 for r in mesh._retiring)
    finally:
        records = mesh.stop()
        lifecycle.down(state_dir, up.meta.run_id)
    assert mesh.reopen("a") == []
    for record in records:
        after = [seq for seq, at in enumerate(record.sent) if at > swapped_s]
        lost = _lost_between(record.sent, record.received, swapped_s, swapped_s + 0.4)
        assert len(after) > 20 and len(lost) <= 2, (record.name, lost)


# --------------------------------------------------------------------------- the announcement


class _Probe:
    def __init__(self, name: str, moved: list[str] | None = None, error: Exception | None = None) -> None:
        self.record = type("Record", (), {"name": name})()
        self.moved, self.error = moved or [], error
        self.asked: list[str] = []

    def reopen(self, node: str) -> list[str]:
        self.asked.append(node)
        if self.error is not None:
            raise self.error
        return self.moved


def test_a_replaced_namespace_is_announced_to_every_probe() -> None:
    """FaultContext.namespace_replaced reaches every listener; the drill's listener asks every
    probe to reopen its sockets of that node, logs what moved, and a probe that cannot reopen is
    logged (it measures an outage from there) without stopping the others."""
    import random

    from drills.engine import probe_start
    from drills.engine.faults import FaultContext
    from drills.errors import BackendError

    ops: Any = None
    ctx = FaultContext(ops, SystemClock(), lambda _m: None, random.Random(1))
    heard: list[str] = []
    ctx.namespace_listeners.append(heard.append)
    ctx.namespace_replaced("a")
    assert heard == ["a"]

    log: list[str] = []
    broken = _Probe("broken", error=BackendError("no such address"))
    fine, elsewhere = _Probe("voice", moved=["sender 198.18.0.1"]), _Probe("web")
    probe_start.follow("a", [broken, fine, elsewhere], log.append)  # type: ignore[list-item]
    assert broken.asked == fine.asked == elsewhere.asked == ["a"]
    assert log == [
        "  a: probe broken could not follow it into its new namespace: no such address",
        "  a: probe voice reopened in its new namespace (sender 198.18.0.1)",
    ]


class _SkippingClock(SystemClock):
    """The system clock, 80 ms ahead from its 200th reading on: a sender that lost 80 ms."""

    def __init__(self) -> None:
        self.readings = 0

    def now_s(self) -> float:
        self.readings += 1
        return super().now_s() + (0.080 if self.readings >= 200 else 0.0)


@pytest.mark.netns
@pytest.mark.skipif(realtime.refusal() is not None, reason="this host refuses SCHED_FIFO threads")
def test_a_real_time_sender_that_falls_behind_goes_back_to_ordinary_scheduling(
    tmp_path: Path, state_dir: Path, host_snapshot: Any
) -> None:
    """A stream's sender runs under SCHED_FIFO (drills.realtime); once it is 50 ms or
    more behind its schedule it cannot keep up, and goes back to ordinary scheduling (so that
    catching up never holds a CPU from the daemons), its record saying so; it keeps sending."""
    up = two_node_line(tmp_path, state_dir, "socket-swap")
    ns = up.meta.nodes
    a, b = up.topology.node("a").primary_address, up.topology.node("b").primary_address
    assert a is not None and b is not None
    stream = UdpStream("behind", NamespaceSockets(ns), "a", a, "b", b, 500, 64, _SkippingClock(), tag=8)
    try:
        stream.start()
        time.sleep(0.6)
    finally:
        record = stream.stop(drain_s=0.2)
        lifecycle.down(state_dir, up.meta.run_id)
    # How far behind the lane that saw it was: 80 ms less up to one gap (the reading that jumped may
    # have been a lane's look at a packet not yet due), more its own lateness.
    behind = re.fullmatch(r"SCHED_FIFO 2, then ordinary: (\d+) ms behind its schedule \(it could not keep up\)", record.sender_scheduling)
    assert behind is not None and int(behind[1]) >= 1e3 * realtime.BEHIND_S, record.sender_scheduling
    assert len(record.sent) > 250 and max(record.send_lateness_s) >= 0.050

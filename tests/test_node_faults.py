"""Node faults on real namespaces and real processes: node-loss, node-freeze and service-stop,
each observed from inside the testbed while applied and after it was reverted, and a whole drill
with a node-loss measured by a udp-stream."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from drills import lifecycle, realtime
from drills.clock import SystemClock
from drills.engine.fault import Armable
from drills.engine.faults import Fault, FaultContext, build, supported_kinds, wait_for
from drills.errors import BackendError
from drills.lifecycle import run as run_drill
from drills.netns import kernel, procs, services
from drills.netns.backend import NetnsBackend
from drills.netns.ops import NetnsOps
from drills.runs import Run, RunStore
from drills.scenario.resolved import Topology
from drills.scenario.steps import NodeFreezeStep, NodeLossStep, ServiceStopStep, Step, Timing

pytestmark = pytest.mark.netns

PORT = 8080
TIMEOUT_S = 5.0
HTTP = {
    "name": "http",
    "command": f"exec {sys.executable} -m http.server --bind 0.0.0.0 {PORT}",
    "ready": {"tcp": PORT, "timeout": "20s"},
}
# a — b — c, with a web service in the middle router b; IPv6 on too (b loses its IPv6 addresses
# when its interfaces go down, so node-loss must put them back).
LINE: dict[str, Any] = {
    "addressing": {"ipv6": "fd00:d811:4e0d::/48"},
    "nodes": {
        "a": {"routes": [{"to": "c", "via": "b:a"}]},
        "b": {"routes": [{"to": "a", "via": "a:b"}, {"to": "c", "via": "c:b"}], "services": [HTTP]},
        "c": {"routes": [{"to": "a", "via": "b:c"}]},
    },
    "links": [{"endpoints": ["a:b", "b:a"]}, {"endpoints": ["b:c", "c:b"]}],
}


# --------------------------------------------------------------------------- helpers


def ip_out(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30).stdout


def has_carrier(namespace: str, ifname: str) -> bool:
    flags = json.loads(ip_out("-n", namespace, "-j", "link", "show", "dev", ifname))[0]["flags"]
    return "NO-CARRIER" not in flags and "UP" in flags


def admin_up(namespace: str, ifname: str) -> bool:
    return "UP" in json.loads(ip_out("-n", namespace, "-j", "link", "show", "dev", ifname))[0]["flags"]


def routes(namespace: str) -> list[str]:
    return sorted(line.strip() for line in ip_out("-n", namespace, "route", "show").splitlines() if line.strip())


def process_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat ('S', 'R', 'T', 'Z'...), None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def process_alive(pid: int, ticks: int | None) -> bool:
    return process_state(pid) not in (None, "Z") and kernel.process_start_ticks(pid) == ticks


def socket_in(namespace: str, family: socket.AddressFamily, kind: socket.SocketKind) -> socket.socket:
    sock = kernel.run_in_namespace(namespace, lambda: socket.socket(family, kind))
    sock.settimeout(TIMEOUT_S)
    return sock


@dataclass
class LineBed:
    """The line a — b — c deployed with `drill up`, and a fault context as `drill run` makes it."""

    topology: Topology
    ns: dict[str, str]
    run: Run
    ctx: FaultContext
    log: list[str]
    sockets: list[socket.socket] = field(default_factory=list)

    def fault(self, kind: str, node: str, service: str | None = None) -> Fault:
        return build(resolved_step(self.topology, kind, node, service))

    def service_processes(self) -> list[tuple[int, int | None]]:
        return [
            (int(e["pid"]), e.get("start"))
            for e in self.run.journal.entries()
            if e.get("op") == "process" and e.get("service") == "http" and e.get("ns") == self.ns["b"]
        ]

    def address(self, node: str, ifname: str, v6: bool = False) -> str:
        iface = self.topology.node(node).interface(ifname)
        address = iface.ipv6 if v6 else iface.ipv4
        assert address is not None
        return str(address.ip)

    def socket(self, node: str, kind: socket.SocketKind, v6: bool = False) -> socket.socket:
        sock = socket_in(self.ns[node], socket.AF_INET6 if v6 else socket.AF_INET, kind)
        self.sockets.append(sock)
        return sock

    def a_to_c(self, wait_s: float = 1.0) -> bool:
        """Does a UDP datagram from a's loopback reach c's loopback (through b)?"""
        c_lo = self.topology.node("c").loopback
        assert c_lo is not None
        server, client = self.socket("c", socket.SOCK_DGRAM), self.socket("a", socket.SOCK_DGRAM)
        server.bind((str(c_lo.ip), 0))
        server.settimeout(wait_s)
        payload = uuid.uuid4().bytes
        try:
            client.sendto(payload, (str(c_lo.ip), server.getsockname()[1]))
        except OSError:  # no usable route any more (the route via b is linkdown): not delivered
            return False
        try:
            return server.recvfrom(64)[0] == payload
        except TimeoutError:
            return False
        finally:
            server.close()
            client.close()

    def http_get(self, timeout_s: float = TIMEOUT_S) -> bytes:
        """GET / from b's web service, from a."""
        with self.socket("a", socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout_s)
            conn.connect((self.address("b", "a"), PORT))
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return read_all(conn)


def read_all(conn: socket.socket) -> bytes:
    response = b""
    while chunk := conn.recv(4096):
        response += chunk
    return response


def resolved_step(topology: Topology, kind: str, node_name: str, service: str | None = None) -> Step:
    """A node fault's step as the loader resolves it."""
    node, timing = topology.node(node_name), Timing(0.0)
    if kind == "node-loss":
        links = []
        for link in topology.links:
            if link.a.node == node_name:
                links.append((link.a, link.b))
            if link.b.node == node_name:
                links.append((link.b, link.a))
        return NodeLossStep(0, None, kind, timing, node, tuple(links))
    if kind == "node-freeze":
        return NodeFreezeStep(0, None, kind, timing, node)
    return ServiceStopStep(0, None, kind, timing, node, next(s for s in node.services if s.name == service))


@pytest.fixture
def testbed(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> Iterator[LineBed]:
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "line", "topology": LINE}, sort_keys=False))
    ops: NetnsOps | None = None
    bed: LineBed | None = None
    try:
        up = lifecycle.up(path, state_dir)
        ns, topology = up.meta.nodes, up.topology
        run = RunStore(state_dir).get(up.meta.run_id)
        log: list[str] = []
        backend = NetnsBackend(log.append, service_cwd=tmp_path)
        engines = {link.name: "kernel" for link in topology.links}
        # The node operations as `drill run` makes them (backend.ops after deploy).
        ops = NetnsOps(run, topology, ns, engines, SystemClock(), log.append, backend.start_service)
        ops.warm()
        ctx = FaultContext(ops, SystemClock(), log.append, random.Random(1))
        bed = LineBed(topology, ns, run, ctx, log)
        yield bed
    finally:
        if bed is not None:
            for sock in bed.sockets:
                sock.close()  # an open socket keeps its namespace alive
        if ops is not None:
            ops.close()
        lifecycle.clean(state_dir, include_up=True)


# --------------------------------------------------------------------------- the faults


def test_node_loss_kills_and_darkens_the_node_and_restore_brings_it_back(
    testbed: LineBed, state_dir: Path, host_snapshot: Any
) -> None:
    bed, ns = testbed, testbed.ns
    [(old_pid, old_ticks)] = bed.service_processes()
    assert process_alive(old_pid, old_ticks) and bed.a_to_c()
    routes_before = routes(ns["b"])
    a_lo = bed.topology.node("a").loopback
    assert a_lo is not None and any(r.startswith(f"{a_lo.ip} via") for r in routes_before), routes_before
    fault = bed.fault("node-loss", node="b")
    assert fault.touches()[0] == "b: every process in its namespace (SIGKILL)"
    assert "c:b carrier (lost)" in fault.touches() and "a:b carrier (lost)" in fault.touches()

    fault.apply(bed.ctx)
    assert not process_alive(old_pid, old_ticks), "the service outlived the crash"
    assert kernel.pids_in_namespaces([ns["b"]])[ns["b"]] == [], "a process is left in b"
    assert not admin_up(ns["b"], "a") and not admin_up(ns["b"], "c")
    assert not has_carrier(ns["a"], "b") and not has_carrier(ns["c"], "b"), "b's peers still see carrier"
    assert not bed.a_to_c(wait_s=0.5), "a packet from a crossed the dead router b"
    with pytest.raises(OSError):
        bed.http_get(timeout_s=0.5)

    ops, starts = bed.ctx.ops, []
    start_service = ops.start_service

    def timed_start(*args: Any) -> int:
        starts.append(bed.ctx.clock.now_s())
        return start_service(*args)

    bed.ctx.in_force_s = None
    issued_s = bed.ctx.clock.now_s()
    ops.start_service = timed_start  # type: ignore[method-assign]
    try:
        fault.revert(bed.ctx)
    finally:
        del ops.start_service
    # In force once b's links are back up: its addresses, routes and services follow (its boot).
    assert bed.ctx.in_force_s is not None and starts and issued_s <= bed.ctx.in_force_s <= starts[0]
    for node, ifname in (("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")):
        assert has_carrier(ns[node], ifname), f"{node}:{ifname} has no carrier after the restore"
    assert routes(ns["b"]) == routes_before, "b's routes did not come back as they were"
    assert bed.address("b", "a", v6=True) in ip_out("-n", ns["b"], "-6", "addr", "show", "dev", "a")
    processes = bed.service_processes()
    assert len(processes) == 2, "the restarted service was not journaled"
    new_pid, new_ticks = processes[-1]
    assert (new_pid, new_ticks) != (old_pid, old_ticks) and process_alive(new_pid, new_ticks)
    assert bed.http_get().startswith(b"HTTP/1.0 200")
    assert bed.a_to_c(), "packets from a do not reach c again"
    # b's IPv6 address is back: a reaches it directly.
    server, client = bed.socket("b", socket.SOCK_DGRAM, v6=True), bed.socket("a", socket.SOCK_DGRAM, v6=True)
    server.bind((bed.address("b", "a", v6=True), 0))
    client.sendto(b"v6", (bed.address("b", "a", v6=True), server.getsockname()[1]))
    assert server.recvfrom(64)[0] == b"v6"

    # `drill clean` finds the restarted process from the journal.
    for sock in bed.sockets:
        sock.close()
    report = lifecycle.clean(state_dir, include_up=True)
    assert report.clean and not process_alive(new_pid, new_ticks)


def test_node_freeze_stops_processes_while_the_kernel_forwards(testbed: LineBed, host_snapshot: Any) -> None:
    bed = testbed
    [(pid, ticks)] = bed.service_processes()
    fault = bed.fault("node-freeze", node="b")
    assert fault.describe().endswith("the kernel still forwards")

    bed.ctx.in_force_s = None
    issued_s = bed.ctx.clock.now_s()
    fault.apply(bed.ctx)
    assert process_state(pid) == "T"
    # In force once every process was seen stopped: before the scan that confirms none was missed.
    assert bed.ctx.in_force_s is not None and issued_s <= bed.ctx.in_force_s < bed.ctx.clock.now_s()
    # The kernel completes the TCP handshake into the frozen listener's queue; the request then
    # gets no answer.
    conn = bed.socket("a", socket.SOCK_STREAM)
    conn.settimeout(1.0)
    conn.connect((bed.address("b", "a"), PORT))
    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
    with pytest.raises(TimeoutError):
        conn.recv(1)
    assert bed.a_to_c(), "b stopped forwarding: only its processes should freeze"

    fault.revert(bed.ctx)
    assert process_state(pid) not in (None, "T", "t") and process_alive(pid, ticks)
    conn.settimeout(TIMEOUT_S)
    assert read_all(conn).startswith(b"HTTP/1.0 200"), "the request queued during the freeze was not served"
    assert bed.http_get().startswith(b"HTTP/1.0 200")
    assert bed.service_processes() == [(pid, ticks)], "a freeze restarts nothing"


def test_armed_node_freeze_stops_the_armed_processes_and_one_started_since(testbed: LineBed, host_snapshot: Any) -> None:
    """Armed before the clock (a pidfd per process of b), node-freeze signals those with no scan
    first; a process that entered b after arming is still found by the scan and stopped, and the
    in-force instant is then that later round's. The pidfds are closed once used; what was
    stopped is continued first on revert, which marks its own in-force instant."""
    bed, ops = testbed, testbed.ctx.ops
    assert isinstance(ops, NetnsOps)
    [(pid, ticks)] = bed.service_processes()
    fault = bed.fault("node-freeze", node="b")
    assert isinstance(fault, Armable)
    fault.arm(bed.ctx)
    assert [p for p, _ in (ops._held or {})[("armed", "b")]] == [pid]
    late = subprocess.Popen(["ip", "netns", "exec", bed.ns["b"], "sleep", "30"])
    try:
        assert wait_for(bed.ctx.clock, lambda: late.pid in ops.processes("b"), 5.0, 0.002)
        bed.ctx.in_force_s = None
        issued_s = bed.ctx.clock.now_s()
        fault.apply(bed.ctx)
        assert process_state(pid) == "T" and process_state(late.pid) == "T"
        assert bed.ctx.in_force_s is not None and issued_s <= bed.ctx.in_force_s < bed.ctx.clock.now_s()
        assert not (ops._held or {}).get(("armed", "b")), "the armed pidfds are used once"
        # What it stopped is kept (a pidfd each) for the revert to continue with no scan first.
        assert sorted(p for p, _ in (ops._held or {})[("frozen", "b")]) == sorted([pid, late.pid])
        bed.ctx.in_force_s = None
        issued_s = bed.ctx.clock.now_s()
        fault.revert(bed.ctx)
        assert process_state(late.pid) not in (None, "T", "t") and process_alive(pid, ticks)
        assert bed.ctx.in_force_s is not None and issued_s <= bed.ctx.in_force_s < bed.ctx.clock.now_s()
        assert not (ops._held or {}).get(("frozen", "b"))
        fault.apply(bed.ctx)  # not armed again: the scan finds both
        assert process_state(pid) == "T" and process_state(late.pid) == "T"
        fault.revert(bed.ctx)
    finally:
        late.kill()
        late.wait(timeout=TIMEOUT_S)
    assert bed.http_get().startswith(b"HTTP/1.0 200")


def test_service_stop_refuses_connections_until_reverted(
    testbed: LineBed, host_snapshot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bed = testbed
    [(old_pid, old_ticks)] = bed.service_processes()
    fault = bed.fault("service-stop", node="b", service="http")
    assert fault.describe() == "service b/http stopped"

    bed.ctx.in_force_s = None
    issued_s = bed.ctx.clock.now_s()
    fault.apply(bed.ctx)
    assert not process_alive(old_pid, old_ticks)
    # In force once its process was seen stopped (frozen before its SIGTERM): before its exit.
    assert bed.ctx.in_force_s is not None and issued_s <= bed.ctx.in_force_s < bed.ctx.clock.now_s()
    with pytest.raises(ConnectionRefusedError):
        bed.http_get()
    assert bed.a_to_c(), "stopping a service must not touch forwarding"
    with pytest.raises(BackendError, match="not running"):
        bed.fault("service-stop", node="b", service="http").apply(bed.ctx)

    ready_checks: list[float] = []
    wait_ready = services.wait_ready

    def timed_ready(*args: Any) -> None:
        ready_checks.append(bed.ctx.clock.now_s())
        wait_ready(*args)

    monkeypatch.setattr(services, "wait_ready", timed_ready)
    bed.ctx.in_force_s = None
    issued_s = bed.ctx.clock.now_s()
    with realtime.applying():  # as the engine reverts it
        fault.revert(bed.ctx)
    # In force once the new process runs, before its readiness check: its start-up follows.
    assert bed.ctx.in_force_s is not None and ready_checks and issued_s <= bed.ctx.in_force_s <= ready_checks[0]
    fault.revert(bed.ctx)  # as the undo stack may retry it: a running service is not started twice
    processes = bed.service_processes()
    assert len(processes) == 2 and processes[0] == (old_pid, old_ticks)
    assert process_alive(*processes[-1]) and processes[-1][0] != old_pid
    # Started by a real-time apply, it runs ordinary: no daemon above the probe senders.
    assert os.sched_getscheduler(processes[-1][0]) == os.SCHED_OTHER
    assert bed.http_get().startswith(b"HTTP/1.0 200")
    assert f"service b/http started (pid {processes[-1][0]})" in bed.log


def test_a_stopped_service_is_frozen_first_and_still_runs_its_sigterm_handler(tmp_path: Path) -> None:
    """service-stop's SIGSTOP comes first (the instant it stops acting is seen), then SIGTERM
    and SIGCONT: a service that says goodbye on SIGTERM still does, and a child in its process
    group is stopped and ended with it."""
    said = tmp_path / "goodbye"
    script = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(said)!r}, 'w').write('bye'), child.kill(), sys.exit(0)))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    service = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert service.stdout is not None
        child = int(service.stdout.readline())
        ticks = kernel.process_start_ticks(service.pid)
        clock = SystemClock()
        before_s = clock.now_s()
        frozen_s = procs.freeze_groups([service.pid], clock)
        # None only when the kernel had not run it within the watch (a loaded machine): no instant told.
        assert frozen_s is None or before_s <= frozen_s <= clock.now_s()
        assert wait_for(clock, lambda: process_state(service.pid) == "T", TIMEOUT_S, 0.001)
        # its child had the signal in the same call
        assert wait_for(clock, lambda: process_state(child) == "T", TIMEOUT_S, 0.001)
        assert not said.exists(), "a frozen service runs nothing"
        assert services.stop_processes([(service.pid, ticks)], clock, resume=True) == []
        assert said.read_text() == "bye", "the service's own SIGTERM handler did not run"
        assert process_state(service.pid) in (None, "Z")  # gone (a zombie until this test reaps it)
    finally:
        service.kill()
        service.wait(timeout=TIMEOUT_S)
        subprocess.run(["pkill", "-KILL", "-s", str(service.pid)], check=False)


def test_a_service_that_leads_no_process_group_is_stopped_but_tells_no_instant() -> None:
    """Frozen alone (a child of it would be outside the signal), so no instant is told before
    it is seen gone; SIGTERM and SIGCONT still end it."""
    lone = subprocess.Popen(["sleep", "60"])  # in the test's own process group
    try:
        ticks = kernel.process_start_ticks(lone.pid)
        assert procs.freeze_groups([lone.pid], SystemClock()) is None
        assert wait_for(SystemClock(), lambda: process_state(lone.pid) == "T", TIMEOUT_S, 0.001)
        gone: list[float] = []
        assert services.stop_processes([(lone.pid, ticks)], SystemClock(), gone.append, resume=True) == []
        assert gone and process_state(lone.pid) in (None, "Z")
    finally:
        lone.kill()
        lone.wait(timeout=TIMEOUT_S)


def test_process_operations_see_and_signal_only_the_nodes_processes(testbed: LineBed, host_snapshot: Any) -> None:
    """processes / process_state / signal of NetnsOps: the service is b's process, its state
    reads as ps shows it, and a pid that is not the node's is never signalled."""
    bed, ops = testbed, testbed.ctx.ops
    [(pid, ticks)] = bed.service_processes()
    assert pid in ops.processes("b") and pid not in ops.processes("a")
    assert ops.process_state("b", pid) in ("S", "R") and ops.service_running("b", "http")
    ops.signal("a", [pid], signal.SIGSTOP)  # not a's: left alone
    ops.signal("b", [os.getpid()], signal.SIGSTOP)  # this test's own process is not b's either
    assert ops.process_state("b", pid) in ("S", "R")
    ops.signal("b", [pid], signal.SIGSTOP)
    # The kernel stops a process when it next runs: poll (bounded) instead of asserting at once.
    assert wait_for(bed.ctx.clock, lambda: ops.process_state("b", pid) == "T", 5.0, 0.002)
    ops.continue_all("b")
    assert ops.process_state("b", pid) not in ("T", "t") and process_alive(pid, ticks)
    assert ops.process_state("b", 2**22 + 1) is None  # above pid_max: no such process


# --------------------------------------------------------------------------- a whole drill

# The crash is half a packet interval off the stream's 1 ms grid: at exactly 2 s a packet sent a
# few microseconds before the fault is lost in flight and counted in the baseline, which makes the
# drill inconclusive (the baseline window ends at the fault's instant, not one RTT before it).
DRILL = """
version: 1
name: router-crash
topology:
  nodes:
    a: {routes: [{to: c, via: b:a}]}
    b:
      routes: [{to: a, via: a:b}, {to: c, via: c:b}]
      services: [SERVICE]
    c: {routes: [{to: a, via: b:c}]}
  links:
    - {endpoints: [a:b, b:a]}
    - {endpoints: [b:c, c:b]}
probes:
  - {name: stream, type: udp-stream, from: a, to: c, rate_pps: 1000}
timeline:
  - {id: crash, at: 2.0005s, fault: node-loss, node: b, for: 2s}
expect:
  - {probe: stream, step: crash, max_recovery: 3s}
duration: 7s
"""


def test_drill_with_a_two_second_node_loss(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    assert {"node-loss", "node-freeze", "service-stop"} <= set(supported_kinds())
    path = tmp_path / "crash.yaml"
    path.write_text(DRILL.replace("SERVICE", json.dumps(HTTP)))
    log: list[str] = []
    result = run_drill(path, state_dir, log=log.append)  # preflight accepts node-loss now

    apply, revert = (s for s in result.steps if s.label == "crash")
    assert apply.fault == "node-loss" and apply.detail.startswith("node b lost")
    assert revert.detail.startswith("node b restored")
    crash = next(m for m in result.metrics if m.kind == "apply")
    # b was dark from [apply.issued, apply.confirmed] to [revert.issued, revert.confirmed]; the
    # revert is confirmed only once the service is ready again, well after packets flow.
    # In force once b's links read back down, before its processes were killed and confirmed
    # gone: the event's window (in the accuracy) ends there, not at the confirmation.
    assert apply.in_force_s is not None and apply.issued_s <= apply.in_force_s < apply.confirmed_s
    jitter_s = crash.accuracy_s - (apply.effect_by_s - apply.issued_s)
    assert (
        revert.issued_s - apply.confirmed_s - jitter_s
        <= crash.outage_s
        <= revert.confirmed_s - apply.issued_s + jitter_s
    )
    assert abs(crash.outage_s - 2.0) <= 0.05, crash
    assert not crash.recovered_during_event and crash.time_to_recover_s is not None
    assert not result.inconclusive and result.passed and not result.revert_failures

    # The service ran twice (deploy, then restore), each journaled; neither is left.
    started = [int(m) for m in re.findall(r"service b/http started \(pid (\d+)\)", "\n".join(log))]
    assert len(started) == 2 and started[0] != started[1], log
    assert all(process_state(pid) in (None, "Z") for pid in started)
    assert any("process(es) killed" in m for m in log)
    assert not any(state_dir.glob("runs/*")), "the run directory is still there"


def test_drill_with_a_node_freeze_marks_its_apply_and_its_revert(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """As `drill run` runs it: node-freeze armed before the clock; its apply and its revert each
    recorded in force (every process seen stopped / running again) within [issued, confirmed],
    the revert's mark honoured like an apply's."""
    path = tmp_path / "freeze.yaml"
    text = DRILL.replace("SERVICE", json.dumps(HTTP)).replace("name: router-crash", "name: router-hang")
    text = text.replace("fault: node-loss, node: b, for: 2s", "fault: node-freeze, node: b, for: 1s")
    path.write_text(text.replace("max_recovery: 3s", "max_recovery: 1s").replace("duration: 7s", "duration: 4s"))
    result = run_drill(path, state_dir)
    apply, revert = (s for s in result.steps if s.label == "crash")
    assert apply.fault == "node-freeze" and revert.kind == "revert"
    for step in (apply, revert):
        assert step.in_force_s is not None and step.issued_s <= step.in_force_s <= step.confirmed_s, step
    assert not result.revert_failures

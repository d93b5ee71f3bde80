"""A real relay's control channel under hostile clients: root only (EACCES for others, then
SO_PEERCRED when the directory is opened), alive and forwarding after a burst of malformed
requests, more connections than it serves, oversized requests and a client that never reads;
its socket gone at teardown, and with the run directory after a SIGKILL.

No timed assertions: waits are bounded only so that a broken relay fails instead of hanging."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_testing import EACCES_STATUS, REFUSED_STATUS, Deployed, connect_as_nobody, deployment

from drills.netns import kernel
from drills.userspace import control
from drills.userspace.control import RelayControl
from drills.userspace.impair import DELAY_LINE_LIMIT_PACKETS, Impairments

pytestmark = pytest.mark.netns

SCENARIO = """
version: 1
name: relay-control
seed: 7
topology:
  nodes:
    a: {loopback: none}
    b: {loopback: none}
  links: [{name: wire, endpoints: [a:e1, b:e1], engine: userspace}]
"""
PORT = 47_011
BOUND_S = 20.0  # a packet that has not crossed the link by then never will


class Bed(Deployed):
    """The deployed testbed, with what these tests do to its relay."""
    @property
    def path(self) -> Path:
        return control.socket_path(self.run.dir, "wire")

    def relay_pid(self) -> int:
        return self.backend.relays["wire"].pid

    def raw(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(BOUND_S)
        cwd = os.getcwd()
        os.chdir(self.path.parent)  # sun_path's 108 bytes: tmp_path may be deeper
        try:
            sock.connect(self.path.name)
        finally:
            os.chdir(cwd)
        return sock

    def crosses(self) -> bool:
        """A UDP datagram from a to b gets through the relay (resent until it does, boundedly)."""
        link = self.topology.links[0]
        assert link.a.ipv4 is not None and link.b.ipv4 is not None
        receiver = kernel.run_in_namespace(self.namespaces["b"], lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sender = kernel.run_in_namespace(self.namespaces["a"], lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        try:
            receiver.bind((str(link.b.ipv4.ip), PORT))
            receiver.settimeout(0.2)
            deadline = time.monotonic() + BOUND_S
            while time.monotonic() < deadline:
                sender.sendto(b"still forwarding", (str(link.b.ipv4.ip), PORT))
                try:
                    if receiver.recv(64) == b"still forwarding":
                        return True
                except TimeoutError:
                    continue
            return False
        finally:
            sender.close()
            receiver.close()


@pytest.fixture
def bed(tmp_path: Path, state_dir: Path, host_snapshot: object) -> Iterator[Bed]:
    with deployment(SCENARIO, tmp_path, state_dir, seed=7) as deployed:
        yield Bed(deployed.topology, deployed.namespaces, deployed.run, deployed.backend)


def test_the_control_socket_is_a_root_only_file_of_the_run(bed: Bed) -> None:
    directory = bed.path.parent
    assert directory == bed.run.dir / "relay"
    info = os.lstat(directory)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    info = os.lstat(bed.path)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    # Nothing of this run in the abstract namespace any more (it had no permissions at all).
    assert f"@drills-relay/{bed.namespaces['a']}/" not in Path("/proc/net/unix").read_text()
    journaled = [e for e in bed.run.journal.entries() if e.get("op") == "relay"]
    assert [e["control"] for e in journaled] == [str(bed.path)]


def test_a_user_other_than_root_is_kept_out(bed: Bed) -> None:
    directory = bed.path.parent
    assert connect_as_nobody(directory, bed.path.name, lambda: time.sleep(0.005)) == EACCES_STATUS
    os.chmod(directory, 0o777)  # opened by mistake or by an attack: the relay still refuses
    os.chmod(bed.path, 0o666)
    try:
        assert connect_as_nobody(directory, bed.path.name, lambda: time.sleep(0.005)) == REFUSED_STATUS
    finally:
        os.chmod(directory, 0o700)
    with RelayControl(bed.path) as relay:
        counters = relay.request({"op": "stats"})["control"]
    assert counters["refused_peer"] == 1


def test_hostile_clients_leave_the_relay_alive_and_forwarding(bed: Bed) -> None:
    pid = bed.relay_pid()
    # A burst of malformed requests on one connection: each answered with an error.
    junk = [b"{", b"[" * 50_000, b'{"op":"set","direction":"a-to-b","params":{"delay_s":1e999}}', b"\xff", b"7"]
    burst = bed.raw()
    burst.sendall(b"\n".join(junk * 10) + b"\n")
    data = b""
    while data.count(b"\n") < 50:
        chunk = burst.recv(1 << 16)
        assert chunk, "the relay closed the connection"
        data += chunk
    assert all(not json.loads(line)["ok"] for line in data.splitlines())
    # More connections than it serves: the extra one is told so and closed.
    held = [bed.raw() for _ in range(control.MAX_CONNECTIONS - 1)]
    extra = bed.raw()
    assert json.loads(extra.recv(4096))["error"] == f"{control.MAX_CONNECTIONS} control clients already connected"
    for sock in [burst, extra, *held]:
        sock.close()
    # An oversized request: refused and closed.
    big = bed.raw()
    with pytest.raises(OSError):  # the relay closes it once the bound is passed (EPIPE/ECONNRESET)
        for _ in range(1024):  # 4 MiB: more than any socket buffer holds
            big.sendall(b"x" * 4096)
    big.close()
    # A client that sends and never reads: dropped once its replies pile up.
    greedy = bed.raw()
    greedy.setblocking(False)
    deadline = time.monotonic() + BOUND_S
    dropped = False
    while time.monotonic() < deadline and not dropped:
        try:
            greedy.send(b'{"op": "get"}\n' * 64)
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            dropped = True
    greedy.close()
    assert dropped, "the relay kept a client that never reads"
    # Still the same relay, answering and forwarding.
    with RelayControl(bed.path) as relay:
        state = relay.get()
        counters = relay.request({"op": "stats"})["control"]
    assert state["pid"] == pid
    assert counters["refused_full"] == 1 and counters["dropped"] == 2 and counters["errors"] >= 50, counters
    assert bed.crosses()


def test_a_burst_of_connections_is_served_in_turn(bed: Bed) -> None:
    burst = [bed.raw() for _ in range(control.LISTEN_BACKLOG // 2)]
    for sock in burst:
        sock.close()
    with RelayControl(bed.path) as relay:  # queued behind the burst: waits, is not turned away
        assert relay.get()["pid"] == bed.relay_pid()


def test_a_set_out_of_range_changes_nothing(bed: Bed) -> None:
    with RelayControl(bed.path) as relay:
        before = relay.get()["params"]
    raw = bed.raw()
    raw.sendall(b'{"op":"set","direction":"a-to-b","params":{"loss_pct":-1}}\n')
    line = b""
    while not line.endswith(b"\n"):
        line += raw.recv(4096)
    raw.close()
    assert json.loads(line) == {"ok": False, "error": "loss_pct must be from 0 to 100, not -1"}
    with RelayControl(bed.path) as relay:
        assert relay.get()["params"] == before


def test_a_sigkilled_relay_leaves_its_socket_to_the_run_directory(bed: Bed) -> None:
    os.kill(bed.relay_pid(), signal.SIGKILL)
    deadline = time.monotonic() + BOUND_S
    while Path(f"/proc/{bed.relay_pid()}").exists() and time.monotonic() < deadline:
        os.waitpid(bed.relay_pid(), os.WNOHANG)
        time.sleep(0.01)
    assert bed.path.exists()  # a SIGKILLed relay cannot unlink it: the run directory takes it (fixture)


def test_a_stopped_relay_unlinks_its_socket(bed: Bed) -> None:
    report = bed.backend.teardown(bed.run)
    assert report.clean, report.left
    assert not bed.path.exists()
    assert list(bed.path.parent.iterdir()) == []


def test_a_flood_into_a_long_delay_fills_the_delay_line_to_its_bound_and_no_further(bed: Bed) -> None:
    link = bed.topology.links[0]
    assert link.a.ipv4 is not None and link.b.ipv4 is not None
    ns_a, ns_b = bed.namespaces["a"], bed.namespaces["b"]
    # A permanent neighbour: ARP would cross the delayed link too and never resolve in time.
    shown = subprocess.run(["ip", "-n", ns_b, "-j", "link", "show", "e1"], capture_output=True, text=True, check=True)
    mac = json.loads(shown.stdout)[0]["address"]
    ip = ["ip", "-n", ns_a, "neigh", "replace", str(link.b.ipv4.ip), "lladdr", mac, "dev", "e1", "nud", "permanent"]
    subprocess.run(ip, check=True, timeout=10)
    with RelayControl(bed.path) as relay:
        relay.set("a-to-b", Impairments(delay_s=60.0))
        sender = kernel.run_in_namespace(ns_a, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        try:
            # Bounded: four times the line's bound in datagrams (some the TAP's own queue drops).
            for _ in range(4 * DELAY_LINE_LIMIT_PACKETS // 1000):
                for _ in range(1000):
                    try:
                        sender.sendto(b"flood", (str(link.b.ipv4.ip), PORT))
                    except OSError:  # ENOBUFS: the TAP's queue is full; the relay drains it
                        time.sleep(0.001)
                stats = relay.request({"op": "stats"})  # one snapshot: counters and the line's length
                if stats["counters"]["a-to-b"]["limit_drops"]:
                    break
        finally:
            sender.close()
    counters, pending = stats["counters"]["a-to-b"], stats["pending"]["a-to-b"]
    assert counters["limit_drops"] > 0, counters
    assert pending == DELAY_LINE_LIMIT_PACKETS
    # Every frame read is accounted for: the overflow was dropped, not queued somewhere else.
    gone = counters["delivered"] + counters["write_drops"] + counters["lost"] + counters["limit_drops"]
    assert counters["received"] == gone + pending, counters

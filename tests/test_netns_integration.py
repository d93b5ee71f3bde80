"""The embedded namespace testbed against a real kernel: packets really flow, routes really fail
over, and every way out (down, a failing service, a signal) leaves the host as it was."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest
import yaml

from drills import lifecycle
from drills.errors import BackendError, EnvironmentProblem
from drills.netns import kernel
from drills.runs import RunMeta

pytestmark = pytest.mark.netns

NETNS_DIR = Path("/run/netns")
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux value; Python 3.11 does not export it
TIMEOUT_S = 5.0


# --------------------------------------------------------------------------- helpers


def write_scenario(directory: Path, name: str, topology: dict[str, Any]) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": name, "topology": topology}, sort_keys=False))
    return path


def ring(count: int) -> dict[str, Any]:
    return {
        "nodes": {f"n{i}": {} for i in range(count)},
        "links": [{"endpoints": [f"n{i}:r", f"n{(i + 1) % count}:l"]} for i in range(count)],
    }


def journal(state_dir: Path, run_id: str) -> list[dict[str, Any]]:
    path = state_dir / "runs" / run_id / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_dirs(state_dir: Path) -> list[str]:
    root = state_dir / "runs"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def wait_for_journal(state_dir: Path, proc: subprocess.Popen[str], accept: Callable[[dict[str, Any]], bool]) -> None:
    """Poll until some run's journal holds an entry `accept` likes (fails if `proc` ends first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for run_id in run_dirs(state_dir):
            try:
                if any(accept(entry) for entry in journal(state_dir, run_id)):
                    return
            except (OSError, ValueError):  # not written yet, or a line half written
                pass
        assert proc.poll() is None, f"drill up ended (rc {proc.returncode}) before the moment to signal it"
        time.sleep(0.002)
    raise AssertionError("the journal never showed the awaited entry")


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """The process (pid and start time) still runs; a zombie waiting to be reaped does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat[stat.rindex(")") + 2] == "Z":
        return False
    return start_ticks is None or kernel.process_start_ticks(pid) == start_ticks


def ip_out(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30).stdout


def link_counters(namespace: str, ifname: str) -> dict[str, int]:
    out = ip_out("-n", namespace, "-j", "-s", "link", "show", "dev", ifname)
    stats = json.loads(out)[0]["stats64"]
    return {"rx": int(stats["rx"]["packets"]), "tx": int(stats["tx"]["packets"])}


def socket_in(namespace: str, family: socket.AddressFamily, kind: socket.SocketKind) -> socket.socket:
    """A socket that lives in `namespace` for its whole life, usable from this thread."""
    sock = kernel.run_in_namespace(namespace, lambda: socket.socket(family, kind))
    sock.settimeout(TIMEOUT_S)
    return sock


def assert_run_gone(state_dir: Path, meta: RunMeta, pids: list[tuple[int, int | None]]) -> None:
    left = [ns for ns in meta.nodes.values() if (NETNS_DIR / ns).exists()]
    assert not left, f"namespaces of run {meta.run_id} remain: {left}"
    alive = [pid for pid, ticks in pids if process_alive(pid, ticks)]
    assert not alive, f"processes of run {meta.run_id} remain: {alive}"
    assert not (state_dir / "runs" / meta.run_id).exists(), "the run directory is still there"


def journal_pids(state_dir: Path, run_id: str) -> list[tuple[int, int | None]]:
    return [(int(e["pid"]), e.get("start")) for e in journal(state_dir, run_id) if e.get("op") == "process"]


def ours(host_snapshot: Any) -> list[str]:
    """Namespaces, present now, of any run this test created."""
    ids = host_snapshot.run_ids()
    return sorted(n.name for n in NETNS_DIR.iterdir() if n.name.startswith("drill-") and n.name.split("-")[1] in ids)


# --------------------------------------------------------------------------- data path


def test_line_topology_forwards_through_the_middle_node(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = write_scenario(
        tmp_path,
        "line",
        {
            "nodes": {
                "a": {"routes": [{"to": "c", "via": "b:a"}]},
                "b": {
                    "routes": [{"to": "a", "via": "a:b"}, {"to": "c", "via": "c:b"}],
                    "services": [{"name": "idle", "command": "sleep 300", "ready": {"command": "true"}}],
                },
                "c": {"routes": [{"to": "a", "via": "b:c"}]},
            },
            "links": [{"endpoints": ["a:b", "b:a"]}, {"endpoints": ["b:c", "c:b"]}],
        },
    )
    sockets: list[socket.socket] = []
    try:
        up = lifecycle.up(path, state_dir)
        ns, topo = up.meta.nodes, up.topology
        assert set(ns) == {"a", "b", "c"} and all((NETNS_DIR / name).exists() for name in ns.values())
        pids = journal_pids(state_dir, up.meta.run_id)
        assert len(pids) == 1 and all(process_alive(pid, ticks) for pid, ticks in pids)
        a_lo, c_lo = topo.node("a").loopback, topo.node("c").loopback
        assert a_lo is not None and c_lo is not None

        server = socket_in(ns["c"], socket.AF_INET, socket.SOCK_DGRAM)
        client = socket_in(ns["a"], socket.AF_INET, socket.SOCK_DGRAM)
        sockets += [server, client]
        server.bind((str(c_lo.ip), 0))
        server.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        client.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
        port = server.getsockname()[1]
        before = (link_counters(ns["b"], "a"), link_counters(ns["b"], "c"))

        count = 20
        for seq in range(count):
            client.sendto(f"ping {seq}".encode(), (str(c_lo.ip), port))
            data, ancillary, _flags, sender = server.recvmsg(1024, socket.CMSG_SPACE(4))
            assert data == f"ping {seq}".encode()
            ttls = [
                int.from_bytes(d[:4], sys.byteorder)
                for lvl, typ, d in ancillary
                if (lvl, typ) == (socket.IPPROTO_IP, socket.IP_TTL)
            ]
            assert ttls == [63], f"a packet crossing one router arrives with TTL 63, got {ttls}"
            # The route's preferred source is a's loopback, which c routes back through b.
            assert IPv4Address(sender[0]) == a_lo.ip
            server.sendto(b"pong " + data, sender)
            reply, replier = client.recvfrom(1024)
            assert reply == b"pong " + data and IPv4Address(replier[0]) == c_lo.ip

        after = (link_counters(ns["b"], "a"), link_counters(ns["b"], "c"))
        assert after[0]["rx"] - before[0]["rx"] >= count, "b did not receive a's packets"
        assert after[1]["tx"] - before[1]["tx"] >= count, "b did not forward them to c"
        assert after[1]["rx"] - before[1]["rx"] >= count and after[0]["tx"] - before[0]["tx"] >= count, (
            "replies bypassed b"
        )
        for sock in sockets:
            sock.close()  # an open socket would keep its namespace (and veths) alive

        run_id, report = lifecycle.down(state_dir, up.meta.run_id)
        assert run_id == up.meta.run_id and report.clean
        assert_run_gone(state_dir, up.meta, pids)
        assert host_snapshot.leftovers() == []  # no veth or route in the root namespace, no process
    finally:
        for sock in sockets:
            sock.close()
        lifecycle.clean(state_dir, include_up=True)


def test_service_is_reachable_from_another_node_and_stops_at_down(
    tmp_path: Path, state_dir: Path, host_snapshot: Any
) -> None:
    path = write_scenario(
        tmp_path,
        "web",
        {
            "nodes": {
                "web": {
                    "services": [
                        {
                            "name": "http",
                            "command": f"exec {sys.executable} -m http.server --bind 0.0.0.0 8080",
                            "ready": {"tcp": 8080, "timeout": "20s"},
                        }
                    ]
                },
                "client": {},
            },
            "links": [{"endpoints": ["client:w", "web:c"]}],
        },
    )
    try:
        up = lifecycle.up(path, state_dir)
        pids = journal_pids(state_dir, up.meta.run_id)
        assert len(pids) == 1 and process_alive(*pids[0])
        address = up.topology.node("web").interface("c").ipv4
        assert address is not None
        with socket_in(up.meta.nodes["client"], socket.AF_INET, socket.SOCK_STREAM) as conn:
            conn.connect((str(address.ip), 8080))
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            response = b""
            while chunk := conn.recv(4096):
                response += chunk
        assert response.startswith(b"HTTP/1.0 200"), response[:100]

        lifecycle.down(state_dir, up.meta.run_id)
        assert_run_gone(state_dir, up.meta, pids)
    finally:
        lifecycle.clean(state_dir, include_up=True)


def test_ipv6_between_neighbours(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = write_scenario(
        tmp_path,
        "v6",
        {
            "addressing": {"ipv6": "fd00:d811:7e57::/48"},
            "nodes": {"p": {}, "q": {}},
            "links": [{"endpoints": ["p:q", "q:p"]}],
        },
    )
    try:
        up = lifecycle.up(path, state_dir)
        ns = up.meta.nodes
        p6, q6 = up.topology.node("p").interface("q").ipv6, up.topology.node("q").interface("p").ipv6
        assert p6 is not None and q6 is not None and p6.network == q6.network

        ping = subprocess.run(
            ["ip", "netns", "exec", ns["p"], "ping", "-6", "-c", "1", "-W", "3", str(q6.ip)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr

        with (
            socket_in(ns["q"], socket.AF_INET6, socket.SOCK_DGRAM) as server,
            socket_in(ns["p"], socket.AF_INET6, socket.SOCK_DGRAM) as client,
        ):
            server.bind((str(q6.ip), 0))
            client.sendto(b"hello over v6", (str(q6.ip), server.getsockname()[1]))
            data, sender = server.recvfrom(1024)
            assert data == b"hello over v6" and IPv6Address(sender[0]) == p6.ip
            server.sendto(b"ack", sender)
            assert client.recvfrom(1024)[0] == b"ack"

        lifecycle.down(state_dir, up.meta.run_id)
        assert_run_gone(state_dir, up.meta, [])
    finally:
        lifecycle.clean(state_dir, include_up=True)


def test_backup_route_takes_over_on_carrier_loss(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = write_scenario(
        tmp_path,
        "failover",
        {
            "nodes": {
                "x": {"routes": [{"to": "y", "via": "y:p0", "metric": 10}, {"to": "y", "via": "y:b0", "metric": 100}]},
                "y": {"routes": [{"to": "x", "via": "x:p0", "metric": 10}, {"to": "x", "via": "x:b0", "metric": 100}]},
            },
            "links": [
                {"name": "primary", "endpoints": ["x:p0", "y:p0"]},
                {"name": "backup", "endpoints": ["x:b0", "y:b0"]},
            ],
        },
    )
    sockets: list[socket.socket] = []
    try:
        up = lifecycle.up(path, state_dir)
        ns = up.meta.nodes
        y_lo = up.topology.node("y").loopback
        assert y_lo is not None
        server = socket_in(ns["y"], socket.AF_INET, socket.SOCK_DGRAM)
        client = socket_in(ns["x"], socket.AF_INET, socket.SOCK_DGRAM)
        sockets += [server, client]
        server.bind((str(y_lo.ip), 0))
        target = (str(y_lo.ip), server.getsockname()[1])

        def exchange(count: int) -> None:
            for seq in range(count):
                client.sendto(b"%d" % seq, target)
                data, sender = server.recvfrom(64)
                server.sendto(data, sender)
                assert client.recvfrom(64)[0] == data

        def counters() -> dict[str, dict[str, int]]:
            return {ifname: link_counters(ns["y"], ifname) for ifname in ("p0", "b0")}

        start = counters()
        exchange(10)
        mid = counters()
        assert mid["p0"]["rx"] - start["p0"]["rx"] >= 10, "traffic should take the metric-10 primary link"
        assert mid["b0"]["tx"] - start["b0"]["tx"] < 10, "replies should take the primary link too"

        # Cut the primary from x's side: y's end loses carrier, so y's metric-10 route is
        # skipped (ignore_routes_with_linkdown) and both directions use the backup.
        ipr = kernel.open_netlink(ns["x"])
        try:
            kernel.set_link(ipr, "p0", up=False)
        finally:
            ipr.close()
        # The carrier change reaches y's routing table through the kernel's linkwatch worker,
        # a few milliseconds later; a reply sent before that still takes the dead link.
        x_lo = up.topology.node("x").loopback
        assert x_lo is not None
        deadline = time.monotonic() + TIMEOUT_S
        while "linkdown" not in ip_out("-n", ns["y"], "route", "show", str(x_lo), "metric", "10"):
            assert time.monotonic() < deadline, "y's primary route never showed linkdown"
            time.sleep(0.01)
        exchange(10)
        end = counters()
        assert end["b0"]["rx"] - mid["b0"]["rx"] >= 10, "x's packets should arrive over the backup"
        assert end["b0"]["tx"] - mid["b0"]["tx"] >= 10, "y's replies should leave over the backup"
        # (Not == : x may still have sent an IPv6 router solicitation over p0 before the cut.)
        assert end["p0"]["rx"] - mid["p0"]["rx"] < 10, "x's packets should no longer use the primary"
    finally:
        for sock in sockets:
            sock.close()
        lifecycle.clean(state_dir, include_up=True)


# --------------------------------------------------------------------------- failure leaves nothing


def test_failing_service_fails_up_and_leaves_nothing(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = write_scenario(
        tmp_path,
        "broken-service",
        {
            "nodes": {
                "s1": {"services": [{"name": "idle", "command": "sleep 300", "ready": {"command": "true"}}]},
                "s2": {
                    "services": [
                        {"name": "crash", "command": "exit 3", "ready": {"command": "false", "timeout": "10s"}}
                    ]
                },
            },
            "links": [{"endpoints": ["s1:e", "s2:e"]}],
        },
    )
    try:
        with pytest.raises(BackendError, match="exited with status 3") as caught:
            lifecycle.up(path, state_dir)
        assert isinstance(caught.value, EnvironmentProblem)
        assert host_snapshot.run_ids(), "up should have created a run"
        assert run_dirs(state_dir) == [], "the run directory should be removed"
        assert ours(host_snapshot) == []
        assert host_snapshot.leftovers() == []  # the started `sleep` is gone as well
    finally:
        lifecycle.clean(state_dir, include_up=True)


def test_clean_never_touches_a_foreign_namespace(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, foreign_netns: str
) -> None:
    path = write_scenario(tmp_path, "pair", {"nodes": {"u": {}, "v": {}}, "links": [{"endpoints": ["u:v", "v:u"]}]})
    foreign = NETNS_DIR / foreign_netns
    sleeper = subprocess.Popen(["ip", "netns", "exec", foreign_netns, "sleep", "60"])
    try:
        up = lifecycle.up(path, state_dir)
        lifecycle.down(state_dir, up.meta.run_id)
        assert foreign.exists()
        lifecycle.up(path, state_dir)
        report = lifecycle.clean(state_dir, include_up=True)
        assert report.clean and len(report.cleaned) == 1
        report = lifecycle.clean(state_dir, include_up=True)
        assert report.cleaned == {}
        assert foreign.exists(), "clean removed a namespace drills did not create"
        assert sleeper.poll() is None, "clean killed a process in a namespace drills did not create"
    finally:
        sleeper.kill()
        sleeper.wait()
        lifecycle.clean(state_dir, include_up=True)


# --------------------------------------------------------------------------- the CLI


def test_cli_validate_reports_file_and_line(tmp_path: Path, state_dir: Path, host_snapshot: Any, drill: Any) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "version: 1\n"
        "name: broken\n"
        "topology:\n"
        "  nodes:\n"
        "    a:\n"
        "      routes:\n"
        "        - {to: nowhere, via: b:a}\n"  # line 7: unknown destination
        "    b: {}\n"
        "  links:\n"
        "    - {endpoints: [a:b, b:a]}\n"
    )
    result = drill("validate", str(broken))
    assert result.returncode == 2, result.stderr
    assert f"{broken}:7:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert run_dirs(state_dir) == []


def test_cli_up_ls_exec_down(tmp_path: Path, state_dir: Path, host_snapshot: Any, drill: Any) -> None:
    path = write_scenario(
        tmp_path, "cli", {"nodes": {"left": {}, "right": {}}, "links": [{"endpoints": ["left:r", "right:l"]}]}
    )
    try:
        result = drill("down")
        assert result.returncode == 2 and "no testbed is up" in result.stderr

        result = drill("up", str(path))
        assert result.returncode == 0, result.stderr
        (run_id,) = run_dirs(state_dir)
        assert run_id in result.stdout

        result = drill("ls")
        assert result.returncode == 0 and run_id in result.stdout and "up" in result.stdout
        assert "netns" in result.stdout  # the backend column

        result = drill("exec", "left", "--", "ip", "-br", "addr")
        assert result.returncode == 0, result.stderr
        assert "198.18.0.1/30" in result.stdout and result.stdout.split()[0] == "lo"

        result = drill("exec", "nosuchnode", "--", "true")
        assert result.returncode == 2 and "nosuchnode" in result.stderr

        result = drill("down")
        assert result.returncode == 0, result.stderr
        assert run_dirs(state_dir) == [] and ours(host_snapshot) == []

        result = drill("down")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        result = drill("exec", "nosuchnode", "--", "true")
        assert result.returncode == 2 and "Traceback" not in result.stderr
    finally:
        lifecycle.clean(state_dir, include_up=True)


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("moment", ["deploying", "awaiting-readiness"])
def test_signal_during_up_tears_everything_down(
    tmp_path: Path, state_dir: Path, host_snapshot: Any, drill: Any, signum: signal.Signals, moment: str
) -> None:
    if moment == "deploying":
        path = write_scenario(tmp_path, "ring", ring(150))

        def now(entry: dict[str, Any]) -> bool:
            return entry.get("op") == "netns"  # namespaces are being created
    else:
        slow = {"name": "slow", "command": "sleep 30", "ready": {"command": "false", "timeout": "20s"}}
        path = write_scenario(
            tmp_path, "slow", {"nodes": {"h": {"services": [slow]}, "g": {}}, "links": [{"endpoints": ["h:g", "g:h"]}]}
        )

        def now(entry: dict[str, Any]) -> bool:
            return entry.get("op") == "process"  # the service runs; readiness is being awaited

    proc = drill.popen("up", str(path))
    try:
        wait_for_journal(state_dir, proc, now)
        if moment == "awaiting-readiness":
            time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert f"stopped by {signum.name}" in stderr and "Traceback" not in stderr
        assert time.monotonic() - sent < 15, "teardown after a signal should be quick"
        assert run_dirs(state_dir) == []
        assert ours(host_snapshot) == []
        assert host_snapshot.leftovers() == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        lifecycle.clean(state_dir, include_up=True)

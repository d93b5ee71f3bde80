#!/usr/bin/env python3
"""Where deploy time goes, and what candidate speed-ups would gain (measured, not guessed).

    .venv/bin/python bench/profile_deploy.py [--sizes 100,500] [--repeats 3] [--out bench/results/profile.json]

Three parts, on the same ring scenarios as bench/deploy.py:

1. Phase breakdown. The backend's calls into `drills.netns.kernel` are wrapped (in this process
   only) with timers that keep inclusive and exclusive (self) wall time per call site, across the
   worker threads the backend uses. Median over `--repeats` deploys.
2. cProfile of one deploy, every worker thread included (each `kernel._in_thread` worker runs
   under its own profiler; the stats are merged). Top functions by self time and by cumulative
   time go to bench/results/profile-deploy-N.txt.
3. Variants. Candidate changes to drills/netns/backend.py and kernel.py, applied here by monkey
   patching (the files themselves are not touched), deployed in alternation with the unchanged
   code (base, v1, v2, ..., base, v1, ...), medians compared. Every variant's testbed is checked
   against the base one (interfaces, up/down, MTU, addresses of every node) before its time counts.

Needs root; uses a temporary state directory; removes everything, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402
import deploy as bench  # noqa: E402  (bench/deploy.py: ring scenarios, cleanup, settle)

from drills.errors import BackendError  # noqa: E402
from drills.netns import backend as backend_mod  # noqa: E402
from drills.netns import kernel  # noqa: E402
from drills.netns.backend import NetnsBackend, namespace_name  # noqa: E402
from drills.runs import Journal  # noqa: E402
from drills.scenario.resolved import Node, Scenario  # noqa: E402

# --------------------------------------------------------------------------- patching


@contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextmanager
def patches(*items: tuple[Any, str, Any]) -> Iterator[None]:
    olds = [(obj, name, getattr(obj, name)) for obj, name, _ in items]
    for obj, name, value in items:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for obj, name, old in reversed(olds):
            setattr(obj, name, old)


# --------------------------------------------------------------------------- 1. phases


class PhaseTimer:
    """Inclusive and self wall time per label; nested calls are subtracted from their caller's
    self time (per thread)."""

    def __init__(self) -> None:
        self.incl: dict[str, float] = {}
        self.self_: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            stack = getattr(self._local, "stack", None)
            if stack is None:
                stack = self._local.stack = []
            stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                children = stack.pop()
                if stack:
                    stack[-1] += elapsed
                with self._lock:
                    self.incl[label] = self.incl.get(label, 0.0) + elapsed
                    self.self_[label] = self.self_.get(label, 0.0) + elapsed - children
                    self.calls[label] = self.calls.get(label, 0) + 1

        return wrapper

    def in_thread(self, orig: Callable[[Callable[[], Any]], Any]) -> Callable[[Callable[[], Any]], Any]:
        """A `kernel._in_thread` whose worker's timed calls count as children of the caller's
        current call (the caller only waits for the worker)."""

        def run(fn: Callable[[], Any]) -> Any:
            parent = getattr(self._local, "stack", None)
            box: dict[str, float] = {}

            def work() -> Any:
                self._local.stack = [0.0]
                try:
                    return fn()
                finally:
                    box["children"] = self._local.stack[0]

            try:
                return orig(work)
            finally:
                if parent:
                    parent[-1] += box.get("children", 0.0)

        return run


def phase_breakdown(scenario: Scenario, path: Path, state: Path, cleanup: bench.Cleanup) -> dict[str, Any]:
    timer = PhaseTimer()
    route_pass = {"n": 0}
    orig_each = kernel.in_each_namespace

    def each(names: Any, fn: Any) -> None:
        # The backend calls in_each_namespace twice: configure, then routes.
        route_pass["n"] += 1
        label = "pass 1: configure (in_each_namespace)" if route_pass["n"] % 2 else "pass 2: routes (in_each_namespace)"
        return timer.wrap(label, orig_each)(names, fn)

    orig_iproute = kernel.IPRoute

    def iproute(*args: Any, **kwargs: Any) -> Any:
        ipr = orig_iproute(*args, **kwargs)
        close = ipr.close
        ipr.close = timer.wrap("IPRoute close", close)
        return ipr

    items = [
        (Journal, "record", timer.wrap("journal (fsync)", Journal.record)),
        (kernel, "create_namespaces", timer.wrap("namespaces: unshare + bind mount", kernel.create_namespaces)),
        (kernel, "write_sysctl", timer.wrap("sysctl writes", kernel.write_sysctl)),
        (kernel, "root_netlink", timer.wrap("veths: open root netlink", kernel.root_netlink)),
        (kernel, "add_veth", timer.wrap("veths: create pair (add_veth)", kernel.add_veth)),
        (kernel, "in_each_namespace", each),
        (kernel, "_in_thread", timer.in_thread(kernel._in_thread)),
        (kernel, "_enter", timer.wrap("setns", kernel._enter)),
        (kernel, "IPRoute", timer.wrap("IPRoute open (per namespace)", iproute)),
        (kernel, "link_index", timer.wrap("link_index (RTM_GETLINK by name)", kernel.link_index)),
        (kernel, "set_link", timer.wrap("set_link (up/mtu)", kernel.set_link)),
        (kernel, "add_address", timer.wrap("add_address", kernel.add_address)),
        (kernel, "add_route", timer.wrap("add_route", kernel.add_route)),
    ]
    run = cleanup.new_run(state, scenario, path)
    backend = NetnsBackend()
    with patches(*items):
        t0 = time.perf_counter()
        backend.deploy(scenario.topology, run)
        total = time.perf_counter() - t0
    _teardown(backend, run, scenario, cleanup)
    outside = total - sum(timer.self_.values())
    timer.self_[OUTSIDE] = outside
    timer.incl[OUTSIDE] = outside
    timer.calls[OUTSIDE] = 1
    return {"total_s": total, "self_s": timer.self_, "incl_s": timer.incl, "calls": timer.calls}


OUTSIDE = "(backend code outside the wrapped calls)"


def _teardown(backend: NetnsBackend, run: Any, scenario: Scenario, cleanup: bench.Cleanup) -> None:
    report = backend.teardown(run)
    bench.wait_namespaces_gone(namespace_name(run.run_id, n.name) for n in scenario.topology.nodes)
    if not report.clean:
        raise RuntimeError(report.left)
    run.remove()
    cleanup.runs.remove(run)
    bench.settle()


# --------------------------------------------------------------------------- 2. cProfile


def profile_once(scenario: Scenario, path: Path, state: Path, cleanup: bench.Cleanup, top: int) -> str:
    profilers: list[cProfile.Profile] = []
    orig = kernel._in_thread

    def in_thread(fn: Callable[[], Any]) -> Any:
        def work() -> Any:
            prof = cProfile.Profile()
            profilers.append(prof)
            prof.enable()
            try:
                return fn()
            finally:
                prof.disable()

        return orig(work)

    run = cleanup.new_run(state, scenario, path)
    backend = NetnsBackend()
    main = cProfile.Profile()
    with patched(kernel, "_in_thread", in_thread):
        t0 = time.perf_counter()
        main.enable()
        backend.deploy(scenario.topology, run)
        main.disable()
        total = time.perf_counter() - t0
    _teardown(backend, run, scenario, cleanup)
    # The main thread only waits (lock acquire) while workers run: report the workers and the
    # main thread's own work apart from that wait.
    out = io.StringIO()
    out.write(f"deploy of a {len(scenario.topology.nodes)}-node ring under cProfile: {total:.3f} s wall\n")
    out.write("(profiling inflates Python-heavy parts; use the phase table for real proportions)\n\n")
    stats = pstats.Stats(profilers[0], stream=out)
    for prof in profilers[1:]:
        stats.add(prof)
    stats.add(main)
    stats.strip_dirs()
    out.write("=== by self time (tottime) ===\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("=== by cumulative time ===\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --------------------------------------------------------------------------- 3. variants

# Candidate A: the second pass (routes) visits only the nodes that have routes. Today it enters
# every namespace and opens (and closes) a netlink socket there even when there is nothing to do.


def deploy_skip_empty_route_pass(self: NetnsBackend, topology: Any, run: Any) -> None:
    orig = kernel.in_each_namespace
    calls = {"n": 0}

    def each(names: list[str], fn: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the route pass: `nodes` maps namespace -> node in deploy()
            names = [name for name in names if _node_of(topology, run, name).routes]
        orig(names, fn)

    with patched(kernel, "in_each_namespace", each):
        ORIGINAL_DEPLOY(self, topology, run)


def _node_of(topology: Any, run: Any, namespace: str) -> Node:
    for node in topology.nodes:
        if namespace_name(run.run_id, node.name) == namespace:
            return node
    raise KeyError(namespace)


# Candidate B: look interface indexes up with if_nametoindex(3) (an ioctl on a socket of the
# calling thread's namespace: valid in in_each_namespace's worker, which has entered the node's
# namespace) instead of an RTM_GETLINK round trip through pyroute2 for every call.


def _link_index_local(_ipr: Any, ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise BackendError(f"interface {ifname} not found") from None


def deploy_local_index(self: NetnsBackend, topology: Any, run: Any) -> None:
    # Only during deploy's configure/route passes (threads inside the node's namespace); the
    # veth phase does not look indexes up.
    with patched(kernel, "link_index", _link_index_local):
        ORIGINAL_DEPLOY(self, topology, run)


def deploy_a_and_b(self: NetnsBackend, topology: Any, run: Any) -> None:
    with patched(kernel, "link_index", _link_index_local):
        deploy_skip_empty_route_pass(self, topology, run)


# Candidate D: write sysctls with os.open/os.write instead of Path.write_text (no text-mode file
# object, no encoder; same error translation).


def _write_sysctl_os(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BackendError(f"sysctl {key} does not exist in this kernel") from None
    except OSError as exc:
        raise BackendError(f"cannot set sysctl {key}={value}: {exc.strerror}") from None
    try:
        os.write(fd, f"{value}\n".encode())
    except OSError as exc:
        raise BackendError(f"cannot set sysctl {key}={value}: {exc.strerror}") from None
    finally:
        os.close(fd)


def deploy_os_sysctl(self: NetnsBackend, topology: Any, run: Any) -> None:
    with patched(kernel, "write_sysctl", _write_sysctl_os):
        ORIGINAL_DEPLOY(self, topology, run)


def deploy_abd(self: NetnsBackend, topology: Any, run: Any) -> None:
    with patched(kernel, "write_sysctl", _write_sysctl_os):
        deploy_a_and_b(self, topology, run)


# Candidate C (ceiling): configuration of a node as one batch of raw rtnetlink messages, sent in
# one datagram and acknowledged one by one; veths created the same way, 64 per datagram. Same
# messages, same order as the backend sends through pyroute2 today.

NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 1, 4, 0x100, 0x200, 0x400
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_NEWADDR = 16, 20
IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 4, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP = 1


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("=BxHiII", 0, 0, index, flags, change)


class Batch:
    """Netlink requests sent in one datagram; every one acknowledged or the first error raised."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.what: dict[int, str] = {}

    def add(self, kind: int, flags: int, body: bytes, what: str) -> None:
        seq = len(self.parts) + 1
        self.parts.append(struct.pack("=IHHII", 16 + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body)
        self.what[seq] = what

    def send(self, sock: socket.socket) -> None:
        if not self.parts:
            return
        sock.send(b"".join(self.parts))
        pending = set(self.what)
        while pending:
            buf = sock.recv(1 << 17)
            offset = 0
            while offset + 16 <= len(buf):
                length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", buf, offset)
                if kind == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", buf, offset + 16)
                    if err:
                        raise BackendError(f"{self.what.get(seq, seq)}: {os.strerror(-err)}")
                    pending.discard(seq)
                offset += (length + 3) & ~3


def _raw_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, kernel.NETLINK_ROUTE)
    sock.settimeout(30)
    sock.bind((0, 0))
    return sock


def _address_body(index: int, address: Any) -> bytes:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    packed = address.ip.packed
    head = struct.pack("=BBBBI", family, address.network.prefixlen, 0, 0, index)
    if family == socket.AF_INET:
        return head + _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
    return head + _attr(IFA_ADDRESS, packed)


def _configure_raw(node: Node) -> None:
    """backend._configure, as one batch (runs in the node's namespace thread)."""
    for key, value in node.sysctls:
        kernel.write_sysctl(key, value)
    batch = Batch()
    replace = NLM_F_CREATE | NLM_F_REPLACE
    lo = socket.if_nametoindex("lo")
    batch.add(RTM_NEWLINK, 0, _ifinfo(lo, IFF_UP, IFF_UP), "set lo up")
    if node.loopback is not None:
        batch.add(RTM_NEWADDR, replace, _address_body(lo, node.loopback), f"add address {node.loopback} to lo")
    for iface in node.interfaces:
        index = socket.if_nametoindex(iface.name)
        for address in (iface.ipv4, iface.ipv6):
            if address is not None:
                batch.add(RTM_NEWADDR, replace, _address_body(index, address), f"add address {address} to {iface.name}")
        if iface.mtu is not None:
            batch.add(
                RTM_NEWLINK, 0, _ifinfo(index) + _attr(IFLA_MTU, struct.pack("=I", iface.mtu)), f"set {iface.name} mtu"
            )
        batch.add(RTM_NEWLINK, 0, _ifinfo(index, IFF_UP, IFF_UP), f"set {iface.name} up")
    sock = _raw_socket()
    try:
        batch.send(sock)
    finally:
        sock.close()


def deploy_raw(self: NetnsBackend, topology: Any, run: Any) -> None:
    """NetnsBackend.deploy with phases 2 and 3 in raw batched netlink (no services, no routes:
    enough for the benchmark ring; the real change would keep pyroute2 for routes)."""
    assert all(not node.routes and not node.services for node in topology.nodes)
    kernel.require_root()
    ns = {node.name: namespace_name(run.run_id, node.name) for node in topology.nodes}
    run.journal.record({"op": "netns", "name": name} for name in ns.values())
    kernel.create_namespaces(list(ns.values()), backend_mod.NODE_SYSCTLS)
    run.journal.record(
        {"op": "veth", "a": [ns[link.a.node], link.a.name], "b": [ns[link.b.node], link.b.name]}
        for link in topology.links
    )
    fds = {name: os.open(kernel.netns_path(name), os.O_RDONLY | os.O_CLOEXEC) for name in ns.values()}
    try:
        sock = _raw_socket()
        try:
            links = list(topology.links)
            for start in range(0, len(links), 64):
                batch = Batch()
                for link in links[start : start + 64]:
                    peer = (
                        _ifinfo()
                        + _attr(IFLA_IFNAME, link.b.name.encode() + b"\0")
                        + _attr(IFLA_NET_NS_FD, struct.pack("=I", fds[ns[link.b.node]]))
                    )
                    info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer))
                    body = (
                        _ifinfo()
                        + _attr(IFLA_IFNAME, link.a.name.encode() + b"\0")
                        + _attr(IFLA_NET_NS_FD, struct.pack("=I", fds[ns[link.a.node]]))
                        + _attr(IFLA_LINKINFO, info)
                    )
                    batch.add(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {link.name}")
                batch.send(sock)
        finally:
            sock.close()
    finally:
        for fd in fds.values():
            os.close(fd)
    nodes = {ns[node.name]: node for node in topology.nodes}

    def work() -> None:
        for name, node in nodes.items():
            kernel._enter(name)
            _configure_raw(node)

    kernel._in_thread(work)


ORIGINAL_DEPLOY = NetnsBackend.deploy

VARIANTS: dict[str, tuple[str, Callable[..., None]]] = {
    "base": ("unchanged code", ORIGINAL_DEPLOY),
    "A": ("route pass skips nodes without routes", deploy_skip_empty_route_pass),
    "B": ("interface index by if_nametoindex, not an RTM_GETLINK round trip", deploy_local_index),
    "A+B": ("A and B together", deploy_a_and_b),
    "D": ("sysctls written with os.write, not Path.write_text", deploy_os_sysctl),
    "A+B+D": ("A, B and D together", deploy_abd),
    "C": ("raw batched rtnetlink for veths and node configuration (ceiling)", deploy_raw),
}


def snapshot(run_id: str, names: list[str]) -> dict[str, Any]:
    """Per node: interfaces with up flag, MTU and addresses (IPv6 link-local ones left out)."""
    state: dict[str, Any] = {}

    def read() -> dict[str, Any]:
        ipr = kernel.IPRoute(use_socket=socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, kernel.NETLINK_ROUTE))
        try:
            links = {
                int(m["index"]): [m.get_attr("IFLA_IFNAME"), bool(m["flags"] & IFF_UP), m.get_attr("IFLA_MTU"), []]
                for m in ipr.link("dump")
            }
            for a in ipr.addr("dump"):
                if str(a.get_attr("IFA_ADDRESS")).startswith("fe80:"):
                    continue  # link-local: random (from the random MAC) and added asynchronously
                links[int(a["index"])][3].append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
            return {v[0]: [v[1], v[2], sorted(v[3])] for v in links.values()}
        finally:
            ipr.close()

    for node in names:
        state[node] = kernel.run_in_namespace(namespace_name(run_id, node), read)
    return state


def compare_variants(
    scenario: Scenario, path: Path, state: Path, cleanup: bench.Cleanup, repeats: int, names: list[str]
) -> dict[str, Any]:
    times: dict[str, list[float]] = {key: [] for key in names}
    reference: dict[str, Any] | None = None
    node_names = [node.name for node in scenario.topology.nodes]
    for _ in range(repeats):
        for key in names:  # base, A, B, ..., base, A, B, ...: drift hits every variant alike
            _desc, fn = VARIANTS[key]
            run = cleanup.new_run(state, scenario, path)
            backend = NetnsBackend()
            with patched(NetnsBackend, "deploy", fn):
                t0 = time.perf_counter()
                backend.deploy(scenario.topology, run)
                elapsed = time.perf_counter() - t0
            shot = snapshot(run.run_id, node_names)
            _teardown(backend, run, scenario, cleanup)
            if reference is None:
                if key != "base":
                    raise AssertionError("base must come first")
                reference = shot
            elif shot != reference:
                bad = [n for n in node_names if shot[n] != reference[n]][:3]
                raise RuntimeError(
                    f"variant {key} builds a different testbed: {[(n, shot[n], reference[n]) for n in bad]}"
                )
            times[key].append(elapsed)
    base = statistics.median(times["base"])
    return {
        key: {
            "description": VARIANTS[key][0],
            "deploy_s": bench.summary(values),
            "gain_vs_base": 1 - statistics.median(values) / base,
            "identical_testbed": True,
        }
        for key, values in times.items()
    }


# --------------------------------------------------------------------------- report


def render(result: dict[str, Any]) -> str:
    lines = []
    for n, entry in result["sizes"].items():
        phases = entry["phases"]
        total = phases["total_s"]
        lines.append(f"### {n}-node ring: deploy {total['median']:.3f} s (median of {total['n']})")
        lines.append("")
        lines.append("| phase / call (self time, nested calls excluded) | s | share | calls | per call, ms |")
        lines.append("|---|---:|---:|---:|---:|")
        for label, stat in sorted(phases["self_s"].items(), key=lambda kv: -kv[1]["median"]):
            calls = phases["calls"][label]
            per_call = f"{stat['median'] / calls * 1000:.3f}" if label != OUTSIDE else ""
            lines.append(
                f"| {label} | {stat['median']:.3f} | {stat['median'] / total['median']:.0%} "
                f"| {calls if label != OUTSIDE else ''} | {per_call} |"
            )
        lines.append("")
        lines.append("(medians per row over the repeats: rows need not add up exactly to the total)")
        lines.append("")
        if entry.get("variants"):
            lines.append("| variant | deploy, s median (min–max) | gain vs base | same testbed |")
            lines.append("|---|---:|---:|---|")
            for key, v in entry["variants"].items():
                d = v["deploy_s"]
                lines.append(
                    f"| {key}: {v['description']} | {d['median']:.3f} ({d['min']:.3f}–{d['max']:.3f}) "
                    f"| {v['gain_vs_base']:.0%} | {'yes' if v['identical_testbed'] else 'NO'} |"
                )
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=bench._parse_sizes, default=[100, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="base,A,B,A+B,D,A+B+D,C", help="comma-separated, base first")
    parser.add_argument("--top", type=int, default=30, help="functions listed per cProfile table")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "profile.json")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if variants and variants[0] != "base":
        variants.insert(0, "base")
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2

    cleanup = bench.Cleanup()
    result: dict[str, Any] = {"sizes": {}}
    with common.interruptible(cleanup.run_all) as stop:
        work = cleanup.tmpdir("drills-bench-profile-")
        state = cleanup.state_dir(work, "state")
        _, warm = bench.load_ring(work, 4)
        bench.time_drills(warm, work / "ring-4.yaml", state, cleanup)
        for n in args.sizes:
            path, scenario = bench.load_ring(work, n)
            runs = [phase_breakdown(scenario, path, state, cleanup) for _ in range(args.repeats)]
            labels = sorted({label for r in runs for label in r["self_s"]})
            phases = {
                "total_s": bench.summary(r["total_s"] for r in runs),
                "self_s": {label: bench.summary(r["self_s"].get(label, 0.0) for r in runs) for label in labels},
                "incl_s": {label: bench.summary(r["incl_s"].get(label, 0.0) for r in runs) for label in labels},
                "calls": runs[0]["calls"],
            }
            text = profile_once(scenario, path, state, cleanup, args.top)
            prof_path = args.out.parent / f"profile-deploy-{n}.txt"
            prof_path.parent.mkdir(parents=True, exist_ok=True)
            prof_path.write_text(text)
            entry: dict[str, Any] = {"phases": phases, "cprofile": str(prof_path)}
            if len(variants) > 1:
                entry["variants"] = compare_variants(scenario, path, state, cleanup, args.repeats, variants)
            result["sizes"][str(n)] = entry
            print(render({"sizes": {str(n): entry}}), flush=True)
    if stop.interrupted:
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(result) + "\n")
    print(f"written: {args.out}, {args.out.with_suffix('.md')}")
    return 1 if stop.left else 0


if __name__ == "__main__":
    raise SystemExit(main())

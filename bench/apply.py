#!/usr/bin/env python3
"""Fault apply latency on a 100-link testbed: drills' netlink path against `ip netns exec` subprocesses.

    .venv/bin/python bench/apply.py [--links 100] [--repeats 300] [--out bench/results/apply.json]

A ring of `--links` nodes (links r{i}:east <-> r{i+1 mod N}:west, automatic addressing) is brought
up with `lifecycle.up` in a temporary state directory. Then, in one run:

(a)/(b) link-down and degrade, `--repeats` cycles each. A cycle applies and reverts the fault on a
    random link (seeded) with every method in turn, the order rotating from cycle to cycle
    (A B C, B C A, C A B ...) so drift hits every method alike. Each action is scheduled at an
    instant on the monotonic clock 5-15 ms ahead, waited for with
    `SystemClock().sleep_until(t, precise=True)` (as `run_drill` does), then timed:
    issued - scheduled (how late the first change left) and confirmed - scheduled (when the
    kernel showed the change on both ends: the apply latency the target is about).
    Methods:
    * drills: `LinkDown` and `LinkDegrade` (the `degrade` fault, `rate: 10mbit`: a tbf with handle
      d511: on both ends), built before the clock from resolved steps, applied/reverted with a
      `FaultContext` whose node operations (`NetnsOps`) were warmed before the clock (sockets open
      in every namespace, indices known).
      Both are the real engine path: struct-built rtnetlink (drills/netns/rtnl.py for links,
      drills/netns/tc.py for qdiscs: dump, replace, read back kind, handle and options).
    * raw netlink: the same requests and read-backs as struct-built rtnetlink messages
      (RTM_NEWLINK with ifi_change=IFF_UP, RTM_GETLINK read-back of IFF_UP and IFLA_CARRIER;
      RTM_GETQDISC dumps, RTM_NEWQDISC replace / RTM_DELQDISC of the same tbf) on plain
      AF_NETLINK sockets opened in each namespace before the clock: the bare minimum, with no
      fault logic around it (the floor the drills column can approach).
    * subprocess: `ip netns exec NS ip link set IF down` for both ends, then
      `ip netns exec NS ip link show IF` for both ends (the same two changes and two read-backs);
      degrade `ip netns exec NS tc qdisc replace|del dev IF root handle d511: tbf ...` and
      `tc qdisc show dev IF root` per end.
    Every method must install the same qdisc (`tc qdisc show`, checked first). netem-based
    degrade cannot be measured on a kernel without sch_netem (checked with
    `doctor.capabilities()`; the output says so); tbf, which every kernel here has, stands in.
(c) timeline skew: `run_drill` itself on a generated scenario (the same ring, 10 links flapping
    in turn: one action every 20 ms (50 a second) or 10 ms (100 a second) for 10 s, plus a
    1000 pps udp-stream probe), skew = issued - scheduled of each step (and confirmed -
    scheduled); each rate with run_drill's heap freeze before the clock and without it, the one
    its source lacks patched in or out in this process (`--skew-runs` times, alternating).
(d) profile of the drills path (cProfile of LinkDown apply/revert, time shares by component) and
    per-call costs of pyroute2 against raw netlink, without the profiler.

Results: p50/p99/max per method, the ratio subprocess ÷ drills (and ÷ raw), whether each target
is met, written to JSON (`--out`) and Markdown (same name, `.md`), every sample to
`<out stem>.samples.json`, the profile to `<out stem>.profile.txt`; the Markdown is printed. Everything created is removed at the end,
also on Ctrl-C or SIGTERM. Run as root. Never touches /var/lib/drills.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import itertools
import json
import math
import os
import pstats
import random
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))  # bench/ is not a package: for common

import apply_filters  # noqa: E402
import common  # noqa: E402

from drills import doctor, lifecycle  # noqa: E402
from drills.clock import SystemClock  # noqa: E402
from drills.engine import drill as drill_module  # noqa: E402
from drills.engine.degrade import LinkDegrade  # noqa: E402
from drills.engine.faults import FaultContext  # noqa: E402
from drills.lifecycle import run as run_drill  # noqa: E402
from drills.netns import kernel, tc  # noqa: E402
from drills.netns.handles import Handles  # noqa: E402
from drills.netns.ops import NetnsOps  # noqa: E402
from drills.netns.qdisc import HANDLE as DEGRADE_HANDLE  # noqa: E402
from drills.netns.qdisc import tbf_spec  # noqa: E402
from drills.runs import Run, RunStore  # noqa: E402
from drills.scenario import model  # noqa: E402
from drills.scenario.loader import builtin_profiles  # noqa: E402
from drills.scenario.resolved import Link, Topology  # noqa: E402
from drills.scenario.steps import DegradeStep, resolve_step  # noqa: E402

# The degrade every method applies: drills' `degrade` fault with `rate: 10mbit` (a tbf; netem is
# missing here), i.e. tbf handle d511: with drills' burst and limit, on both ends of the link.
DEGRADE_RATE = "10mbit"
LEAD_S = (0.005, 0.015)  # each action is scheduled this far ahead (uniform), as a timeline would
APPLY_TARGET_S = 0.002
SKEW_TARGET_S = 0.001
FASTER_TARGET = 10.0
# "50 faults a second", read two ways: 50 timeline actions a second (25 links down, 25 up), and
# 50 faults applied a second, each reverted in turn (100 actions a second).
SKEW_RATES_HZ = (50, 100)
FREEZE, NO_FREEZE = "heap frozen", "heap not frozen"
VARIANTS = (FREEZE, NO_FREEZE)
SKEW_SECONDS = 10
SKEW_FLAPPING_LINKS = 10

# --------------------------------------------------------------------------- scenario


def ring_yaml(n: int, flaps: Sequence[str] = (), rate_hz: int = 50, seed: int = 1) -> str:
    """A ring of n nodes; with `flaps` (link names), a timeline where those links flap in turn
    so that one action (a down or an up) falls every 1/rate_hz s for SKEW_SECONDS, and a
    1000 pps udp-stream probe on l0 (never flapped)."""
    lines = ["version: 1", f"name: apply-ring-{n}", f"seed: {seed}", "topology:", "  nodes:"]
    lines += [f"    r{i}: {{}}" for i in range(n)]
    lines.append("  links:")
    lines += [f"    - {{name: l{i}, endpoints: [r{i}:east, r{(i + 1) % n}:west]}}" for i in range(n)]
    if flaps:
        slot_ms = 1000 // rate_hz
        period_ms = 2 * len(flaps) * slot_ms  # each link: down in its slot, up half a period later
        count = SKEW_SECONDS * 1000 // period_ms
        lines += ["probes:", "  - {name: stream, type: udp-stream, from: r0, to: 'r1:west', rate_pps: 1000}"]
        lines.append("timeline:")
        lines += [
            f"  - {{id: flap{k}, at: {1000 + k * slot_ms}ms, fault: link-flap, link: {name},"
            f" period: {period_ms}ms, duty: 50, count: {count}}}"
            for k, name in enumerate(flaps)
        ]
        lines.append(f"duration: {SKEW_SECONDS + 2}s")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- raw rtnetlink

_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
_RTA = struct.Struct("=HH")
_TBF_QOPT = struct.Struct("=BBHhHI BBHhHI III")  # rate ratespec, peak ratespec, limit, buffer, mtu
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x4, 0x300, 0x100, 0x400
IFF_UP = 0x1
IFLA_CARRIER = 33
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_TBF_PARMS, TCA_TBF_BURST = 1, 6
TC_H_ROOT = 0xFFFFFFFF
TC_LINKLAYER_ETHERNET = 1


def _rta(kind: int, payload: bytes) -> bytes:
    data = _RTA.pack(4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _attrs(buf: bytes, offset: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while offset + 4 <= len(buf):
        length, kind = _RTA.unpack_from(buf, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = buf[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


class RawRtnl:
    """A plain AF_NETLINK socket in one namespace, speaking struct-built rtnetlink."""

    def __init__(self, namespace: str) -> None:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.bind((0, 0))
            return sock

        self.sock = kernel.run_in_namespace(namespace, make)
        self.seq = 0

    def request(self, msg_type: int, flags: int, body: bytes) -> bytes:
        """Send one request and return its reply message (b"" for a plain ack); OSError on a
        netlink error. With NLM_F_ACK, reads on to the ack."""
        self.seq += 1
        self.sock.send(_NLMSG.pack(16 + len(body), msg_type, flags | NLM_F_REQUEST, self.seq, 0) + body)
        found = b""
        while True:
            reply = self.sock.recv(65536)
            _length, kind, _flags, seq, _pid = _NLMSG.unpack_from(reply)
            if seq != self.seq:
                continue  # a late reply to an earlier request
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", reply, 16)
                if code:
                    raise OSError(-code, os.strerror(-code))
                return found
            if not flags & NLM_F_ACK:
                return reply
            found = reply

    def set_link(self, index: int, up: bool) -> None:
        self.request(RTM_NEWLINK, NLM_F_ACK, _IFINFO.pack(0, 0, index, IFF_UP if up else 0, IFF_UP))

    def link_state(self, index: int) -> tuple[bool, bool]:
        """(admin up, carrier)."""
        reply = self.request(RTM_GETLINK, 0, _IFINFO.pack(0, 0, index, 0, 0))
        _family, _type, _index, flags, _change = _IFINFO.unpack_from(reply, 16)
        carrier = _attrs(reply, 16 + _IFINFO.size).get(IFLA_CARRIER, b"\0")
        return bool(flags & IFF_UP), carrier != b"\0"

    def replace_root_qdisc(self, index: int, handle: int, kind: str, options: bytes) -> None:
        body = _TCMSG.pack(0, index, handle, TC_H_ROOT, 0) + _rta(TCA_KIND, kind.encode() + b"\0")
        self.request(RTM_NEWQDISC, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body + _rta(TCA_OPTIONS, options))

    def delete_root_qdisc(self, index: int, handle: int) -> None:
        self.request(RTM_DELQDISC, NLM_F_ACK, _TCMSG.pack(0, index, handle, TC_H_ROOT, 0))

    def dump(self, msg_type: int, body: bytes) -> list[bytes]:
        """Every message of a dump request (NLM_F_DUMP), each as its own bytes."""
        self.seq += 1
        self.sock.send(_NLMSG.pack(16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, self.seq, 0) + body)
        messages: list[bytes] = []
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, seq, _pid = _NLMSG.unpack_from(data, offset)
                message = data[offset : offset + length]
                offset += (length + 3) & ~3
                if seq != self.seq:
                    continue
                if kind == NLMSG_DONE:
                    return messages
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", message, 16)
                    raise OSError(-code, os.strerror(-code))
                messages.append(message)

    def qdiscs(self, index: int) -> list[tuple[str, int, int, int | None]]:
        """(kind, handle, parent, tbf rate in bytes/s) of `index`'s qdiscs: one dump, filtered
        here, as pyroute2's get_qdiscs does (this kernel acks a plain RTM_GETQDISC of the root
        without sending the qdisc)."""
        found = []
        for message in self.dump(RTM_GETQDISC, _TCMSG.pack(0, 0, 0, 0, 0)):
            _family, ifindex, handle, parent, _info = _TCMSG.unpack_from(message, 16)
            if ifindex != index:
                continue
            attrs = _attrs(message, 16 + _TCMSG.size)
            kind = attrs.get(TCA_KIND, b"").rstrip(b"\0").decode()
            rate = None
            if kind == "tbf" and TCA_OPTIONS in attrs:
                parms = _attrs(attrs[TCA_OPTIONS], 0).get(TCA_TBF_PARMS)
                rate = struct.unpack_from("=I", parms, 8)[0] if parms else None
            found.append((kind, handle, parent, rate))
        return found

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- methods


class Mismatch(RuntimeError):
    """The kernel does not show the state a method just asked for."""


@dataclass
class Testbed:
    topology: Topology
    namespaces: dict[str, str]  # node -> namespace
    ops: NetnsOps
    ctx: FaultContext
    raw: dict[str, RawRtnl]  # node -> raw socket

    @property
    def handles(self) -> Handles:
        """The netlink handles of this (the bench's) thread, as the drill clock's thread has them."""
        return self.ops.handles

    def index(self, node: str, ifname: str) -> int:
        return self.handles.index(node, ifname)


class Method(Protocol):
    name: str
    label: str
    degrade_label: str
    faults: tuple[str, ...]  # which of "link-down", "degrade" it does

    def link(self, link: Link, down: bool) -> None:
        """Both ends of `link` down (or up), then confirm both."""

    def degrade(self, link: Link, on: bool) -> None:
        """A tbf on both ends of `link` (or none), then confirm both."""


def _ends(link: Link) -> tuple[Any, Any]:
    return link.a, link.b


def degrade_step(link: Link) -> model.Degrade:
    return model.Degrade.model_validate({"at": 0, "fault": "degrade", "link": link.name, "rate": DEGRADE_RATE})


def resolved_degrade(topology: Topology, link: Link) -> DegradeStep:
    """The step as the loader resolves it (the fault is built from resolved steps only)."""
    step = resolve_step(0, degrade_step(link), topology, builtin_profiles(), {})
    assert isinstance(step, DegradeStep)
    return step


link_down = common.link_down


class DrillsMethod:
    name = "drills"
    label = "drills: LinkDown as it is"
    degrade_label = "drills: LinkDegrade (struct-built rtnetlink, tc.py)"
    faults: tuple[str, ...] = ("link-down", "degrade")

    def __init__(self, bed: Testbed) -> None:
        self.bed = bed
        # Built before any clock, as run_drill builds its faults.
        self.downs = {link.name: link_down(bed.topology, link) for link in bed.topology.links}
        self.degrades = {
            link.name: LinkDegrade.from_step(resolved_degrade(bed.topology, link)) for link in bed.topology.links
        }

    def link(self, link: Link, down: bool) -> None:
        fault = self.downs[link.name]
        if down:
            fault.apply(self.bed.ctx)
        else:
            fault.revert(self.bed.ctx)

    def degrade(self, link: Link, on: bool) -> None:
        fault = self.degrades[link.name]
        if on:
            fault.apply(self.bed.ctx)
        else:
            fault.revert(self.bed.ctx)


class Pyroute2LinkMethod:
    """LinkDown's calls as they were before it moved to struct-built rtnetlink (commit 13a53f0):
    pyroute2 `set_link` for each end, then `link_state` for each end, on the warmed handles."""

    name = "pyroute2"
    label = "pyroute2: LinkDown's calls before 13a53f0"
    degrade_label = label
    faults: tuple[str, ...] = ("link-down",)

    def __init__(self, bed: Testbed) -> None:
        self.bed = bed

    def link(self, link: Link, down: bool) -> None:
        handles = self.bed.handles
        for end in _ends(link):
            kernel.set_link(handles.of(end.node), end.name, up=not down, index=handles.index(end.node, end.name))
        for end in _ends(link):
            state = kernel.link_state(handles.of(end.node), end.name, handles.index(end.node, end.name))
            if state.carrier == down or state.admin_up == down:
                raise Mismatch(f"{end.endpoint}: {state} after {'down' if down else 'up'}")

    def degrade(self, link: Link, on: bool) -> None:
        raise NotImplementedError("drills' degrade is on pyroute2 already: see the drills column")


class RawMethod:
    """The drills faults' requests and read-backs, as struct-built messages on plain sockets."""

    name = "raw"
    label = "raw netlink (struct, prototype in apply.py)"
    degrade_label = label
    faults: tuple[str, ...] = ("link-down", "degrade")

    def __init__(self, bed: Testbed) -> None:
        self.bed = bed
        spec = tbf_spec(degrade_step(bed.topology.links[0]).rate or 0, bed.topology.links[0].a.mtu)
        self.rate_bytes_s = spec.rate_bytes_ps
        self.tbf = spec.encode()  # the same bytes drills sends: the same qdisc

    def link(self, link: Link, down: bool) -> None:
        bed = self.bed
        for end in _ends(link):
            bed.raw[end.node].set_link(bed.index(end.node, end.name), up=not down)
        for end in _ends(link):
            admin_up, carrier = bed.raw[end.node].link_state(bed.index(end.node, end.name))
            if carrier == down or admin_up == down:
                raise Mismatch(
                    f"{end.endpoint}: admin_up={admin_up} carrier={carrier} after {'down' if down else 'up'}"
                )

    def degrade(self, link: Link, on: bool) -> None:
        """What LinkDegrade does: read the root (never replace a qdisc drills did not make),
        replace (or delete) ours, read back handle, kind and rate."""
        bed = self.bed
        for end in _ends(link):
            raw, index = bed.raw[end.node], bed.index(end.node, end.name)
            root = next((q for q in raw.qdiscs(index) if q[2] == TC_H_ROOT), None)
            if root is not None and root[1] not in (0, DEGRADE_HANDLE):
                raise Mismatch(f"{end.endpoint}: a root qdisc drills did not make: {root}")
            if on:
                raw.replace_root_qdisc(index, DEGRADE_HANDLE, "tbf", self.tbf)
            elif root is not None and root[1] == DEGRADE_HANDLE:
                raw.delete_root_qdisc(index, DEGRADE_HANDLE)
        for end in _ends(link):
            qdiscs = bed.raw[end.node].qdiscs(bed.index(end.node, end.name))
            ours = [q for q in qdiscs if q[1] == DEGRADE_HANDLE]
            if on and not (
                ours and ours[0][0] == "tbf" and ours[0][2] == TC_H_ROOT and ours[0][3] == self.rate_bytes_s
            ):
                raise Mismatch(f"{end.endpoint}: qdiscs {qdiscs} after the degrade")
            if not on and ours:
                raise Mismatch(f"{end.endpoint}: {ours} still there after reverting the degrade")


class SubprocessMethod:
    """What a shell script would run: one `ip netns exec` per change and per read-back."""

    name = "subprocess"
    label = "`ip netns exec` subprocesses"
    degrade_label = label
    faults: tuple[str, ...] = ("link-down", "degrade")

    def __init__(self, bed: Testbed) -> None:
        self.bed = bed
        self.ip = shutil.which("ip") or "ip"
        self.tc = shutil.which("tc") or "tc"
        spec = tbf_spec(degrade_step(bed.topology.links[0]).rate or 0, bed.topology.links[0].a.mtu)
        self.handle = f"{DEGRADE_HANDLE >> 16:x}:"
        self.tbf = ["tbf", "rate", f"{spec.rate_bytes_ps * 8}bit", "burst", f"{spec.burst_bytes}"]
        self.tbf += ["limit", f"{spec.limit_bytes}"]

    def _run(self, node: str, *argv: str) -> str:
        return subprocess.run(
            [self.ip, "netns", "exec", self.bed.namespaces[node], *argv],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip

    def link(self, link: Link, down: bool) -> None:
        for end in _ends(link):
            self._run(end.node, self.ip, "link", "set", end.name, "down" if down else "up")
        for end in _ends(link):
            out = self._run(end.node, self.ip, "link", "show", end.name)
            flags = out[out.index("<") + 1 : out.index(">")].split(",")
            if ("LOWER_UP" in flags) == down or ("UP" in flags) == down:
                raise Mismatch(f"{end.endpoint}: flags {flags} after {'down' if down else 'up'}")

    def degrade(self, link: Link, on: bool) -> None:
        for end in _ends(link):
            qdisc = ["qdisc", "replace" if on else "del", "dev", end.name, "root", "handle", self.handle]
            self._run(end.node, self.tc, *qdisc, *(self.tbf if on else []))
        for end in _ends(link):
            out = self._run(end.node, self.tc, "qdisc", "show", "dev", end.name, "root")
            if out.startswith(f"qdisc tbf {self.handle} root") != on:
                raise Mismatch(f"{end.endpoint}: `{out.strip()}` after the degrade {'apply' if on else 'revert'}")


# --------------------------------------------------------------------------- timing


class GcWatch:
    """When the cyclic garbage collector ran (monotonic intervals), to explain outliers."""

    def __init__(self) -> None:
        self.intervals: list[tuple[float, float, int]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.monotonic()
        else:
            self.intervals.append((self._start, time.monotonic(), int(info["generation"])))

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self)

    def inside(self, start: float, end: float) -> float:
        """Seconds the collector ran within [start, end]."""
        return sum(max(0.0, min(e, end) - max(s, start)) for s, e, _gen in self.intervals)


def timed(
    clock: SystemClock, rng: random.Random, action: Callable[[Link, bool], None], link: Link, on: bool
) -> dict[str, float]:
    """Schedule `action(link, on)` a little ahead on the monotonic clock, wait for it precisely, run it."""
    scheduled = clock.now_s() + rng.uniform(*LEAD_S)
    clock.sleep_until(scheduled, precise=True)
    issued = clock.now_s()
    action(link, on)
    confirmed = clock.now_s()
    return {"scheduled": scheduled, "issued_s": issued - scheduled, "confirmed_s": confirmed - scheduled}


def measure(
    bed: Testbed, methods: list[Method], fault: str, repeats: int, rng: random.Random, progress: Callable[[str], None]
) -> dict[str, dict[str, list[dict[str, float]]]]:
    """`repeats` cycles; in each, every method (rotating order) applies then reverts `fault`
    ("link-down" or "degrade") on its own random link."""
    clock = SystemClock()
    links = bed.topology.links
    methods = [m for m in methods if fault in m.faults]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {m.name: {"apply": [], "revert": []} for m in methods}
    for cycle in range(repeats):
        shift = cycle % len(methods)
        for method in methods[shift:] + methods[:shift]:
            link = rng.choice(links)
            do = method.link if fault == "link-down" else method.degrade
            samples[method.name]["apply"].append(timed(clock, rng, do, link, True))
            samples[method.name]["revert"].append(timed(clock, rng, do, link, False))
        if (cycle + 1) % 50 == 0:
            progress(f"{fault}: {cycle + 1}/{repeats} cycles")
    return samples


def check_same_tbf(bed: Testbed, methods: list[Method]) -> dict[str, str]:
    """Outside the clock: each method's tbf, as `tc qdisc show` prints it, must be the same qdisc."""
    link = bed.topology.links[0]
    shown = {}
    for method in methods:
        if "degrade" not in method.faults:
            continue
        method.degrade(link, True)
        out = subprocess.run(
            ["ip", "netns", "exec", bed.namespaces[link.a.node], "tc", "qdisc", "show", "dev", link.a.name, "root"],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        method.degrade(link, False)
        shown[method.name] = out.strip()
    if len(set(shown.values())) != 1:
        raise Mismatch(f"the methods install different tbf qdiscs: {shown}")
    return shown


# --------------------------------------------------------------------------- (c) skew


def run_drill_freezes() -> bool:
    """Does run_drill collect and freeze the heap before its clock starts (the fix this
    benchmark first measured as a variant)? Read from the compiled code, not the source file,
    which may have been edited since it was imported."""
    return "freeze" in drill_module.run_drill.__code__.co_names


class _GcWithoutFreeze:
    """The gc module, but collect/freeze/unfreeze do nothing: run_drill as it was before the fix."""

    def __getattr__(self, name: str) -> Any:
        return getattr(gc, name)

    @staticmethod
    def collect(*_args: Any) -> int:
        return 0

    @staticmethod
    def freeze() -> None:
        pass

    @staticmethod
    def unfreeze() -> None:
        pass


@contextmanager
def heap_freeze(wanted: bool) -> Iterator[None]:
    """run_drill with (`wanted`) or without `gc.collect(); gc.freeze()` before its clock,
    whichever way its source has it: the missing one is patched in (after `Handles.warm`) or
    out, in this process only; drills/ is not edited."""
    if wanted == run_drill_freezes():
        yield
        return
    if not wanted:
        setattr(drill_module, "gc", _GcWithoutFreeze())  # noqa: B010 (the module's own `import gc`)
        try:
            yield
        finally:
            setattr(drill_module, "gc", gc)  # noqa: B010
        return
    original = Handles.warm

    def warm(self: Handles, topology: Topology) -> None:
        original(self, topology)
        gc.collect()
        gc.freeze()

    Handles.warm = warm  # type: ignore[method-assign]
    try:
        yield
    finally:
        Handles.warm = original  # type: ignore[method-assign]
        gc.unfreeze()


def timeline_skew(work: Path, state: Path, n: int, rng: random.Random, rate_hz: int, variant: str) -> dict[str, Any]:
    """`run_drill` on the ring: 10 links flap in turn, one action every 1/rate_hz s for 10 s."""
    candidates = [f"l{i}" for i in range(2, n)]  # l0 carries the probe
    flaps = rng.sample(candidates, min(SKEW_FLAPPING_LINKS, len(candidates)))
    path = work / f"skew-ring-{n}-{rate_hz}.yaml"
    path.write_text(ring_yaml(n, flaps, rate_hz))
    t0 = [0.0]

    def log(message: str) -> None:
        if "drill clock started" in message:
            t0[0] = time.monotonic()  # run_drill's t0 was taken just before this message

    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
    load_before = os.getloadavg()[0]
    with GcWatch() as watch, heap_freeze(variant == FREEZE):
        result = run_drill(path, state, log=log)
    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switches
    steps = result.steps
    span = steps[-1].scheduled_s - steps[0].scheduled_s if len(steps) > 1 else 0.0
    start, end = t0[0], t0[0] + SKEW_SECONDS + 2
    on_clock = [(s, e, g) for s, e, g in watch.intervals if s < end and e > start]
    late = [x for x in steps if x.issued_s - x.scheduled_s > SKEW_TARGET_S]
    # A step due while the one before it was still being applied cannot start on time.
    queued = {id(b) for a, b in itertools.pairwise(steps) if a.confirmed_s > b.scheduled_s}
    return {
        "rate_hz": rate_hz,
        "variant": variant,
        "flapping_links": flaps,
        "steps": len(steps),
        "measured_rate_hz": (len(steps) - 1) / span if span else None,
        "issued_s": [x.issued_s - x.scheduled_s for x in steps],
        "confirmed_s": [x.confirmed_s - x.scheduled_s for x in steps],
        "late": len(late),
        # A late step whose wait overlapped a collection: GC held the GIL past the instant.
        "late_during_gc": sum(watch.inside(start + x.scheduled_s, start + x.issued_s) > 0.0005 for x in late),
        "late_behind_previous": sum(id(x) in queued for x in late),
        "gc_on_clock": {str(g): [round((e - s) * 1e3, 2) for s, e, gg in on_clock if gg == g] for g in (0, 1, 2)},
        "involuntary_context_switches": switches,
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "revert_failures": result.revert_failures,
    }


# --------------------------------------------------------------------------- (d) profile


def per_call(fn: Callable[[], Any], count: int = 300) -> dict[str, float]:
    times = []
    for _ in range(count):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return summary(times)


def profile_drills(bed: Testbed, rng: random.Random, cycles: int, out_txt: Path) -> dict[str, Any]:
    """cProfile of the drills degrade fault (LinkDegrade: apply+revert, on tc.py), shares by
    component, and per-call costs of pyroute2 and raw requests, unprofiled."""
    method = DrillsMethod(bed)
    picks = [rng.choice(bed.topology.links) for _ in range(cycles)]
    profiler = cProfile.Profile()
    profiler.enable()
    for link in picks:
        method.degrade(link, True)
        method.degrade(link, False)
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw_stats: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw_stats.values())  # every function's own time: the whole loop

    def own(match: Callable[[str, str], bool]) -> float:
        return float(sum(v[2] for (f, _l, name), v in raw_stats.items() if match(f, name)))

    def cumulative(file_end: str, names: set[str]) -> float:
        return float(sum(v[3] for (f, _l, name), v in raw_stats.items() if f.endswith(file_end) and name in names))

    syscalls = {"send", "recv", "recvfrom", "recv_into", "poll", "sendto"}
    parts = {
        "kernel: socket send/recv syscalls (rtnetlink does its work inside send)": own(
            lambda f, name: f == "~" and any(f"method '{s}'" in name for s in syscalls)
        ),
        "asyncio: an event loop run per call (run_until_complete, _run_once, selector)": own(
            lambda f, _name: "/asyncio/" in f or f.endswith("selectors.py")
        ),
        "pyroute2: decode the whole reply (every attribute, stats included)": cumulative(
            "pyroute2/netlink/marshal.py", {"parse"}
        ),
        "pyroute2: encode the request (nla machinery)": cumulative("pyroute2/netlink/__init__.py", {"encode"}),
        "pyroute2: request argument filters (get_arguments_processor, dump filters)": cumulative(
            "pyroute2/iproute/linux.py", {"get_arguments_processor", "get_dump_filter", "get_default_request_filters"}
        ),
        "pyroute2: sequence number allocation (AddrPool.alloc, a lock and a scan)": cumulative(
            "pyroute2/common.py", {"alloc"}
        ),
    }
    parts["rest (LinkDegrade, tc.py's encoding and decoding, request/response plumbing)"] = max(0.0, total - sum(parts.values()))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(40)
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
    out_txt.write_text(
        f"cProfile of {cycles} LinkDegrade apply+revert cycles (drills, warmed Handles)\n\n" + text.getvalue()
    )

    # Per call, no profiler: what one request costs each way.
    link = bed.topology.links[1]
    end = link.a
    ipr, index, raw = bed.handles.of(end.node), bed.index(end.node, end.name), bed.raw[end.node]
    state = {"up": True}

    def flip_pyroute2() -> None:
        state["up"] = not state["up"]
        kernel.set_link(ipr, end.name, up=state["up"], index=index)

    def flip_raw() -> None:
        state["up"] = not state["up"]
        raw.set_link(index, state["up"])

    costs = {
        "pyroute2 set_link (RTM_NEWLINK + ack)": per_call(flip_pyroute2),
        "pyroute2 link_state (RTM_GETLINK + decode)": per_call(lambda: kernel.link_state(ipr, end.name, index)),
        "raw set_link (RTM_NEWLINK + ack)": per_call(flip_raw),
        "raw link_state (RTM_GETLINK, IFLA_CARRIER only)": per_call(lambda: raw.link_state(index)),
    }
    raw.set_link(index, True)

    # The degrade fault's calls: a qdisc dump (LinkDegrade reads before and after each change)
    # and a tbf replace + delete, each way.
    spec = tbf_spec(degrade_step(link).rate or 0, end.mtu)
    tbf = spec.encode()
    control = tc.Tc(bed.handles.raw(end.node))

    def tc_pyroute2() -> None:
        ipr.tc("replace", "tbf", index, DEGRADE_HANDLE, parent=TC_H_ROOT, rate=spec.rate_bytes_ps, burst=spec.burst_bytes, limit=spec.limit_bytes)
        ipr.tc("del", index=index, handle=DEGRADE_HANDLE, parent=TC_H_ROOT)

    def tc_raw() -> None:
        raw.replace_root_qdisc(index, DEGRADE_HANDLE, "tbf", tbf)
        raw.delete_root_qdisc(index, DEGRADE_HANDLE)

    costs["pyroute2 get_qdiscs (RTM_GETQDISC dump + decode)"] = per_call(lambda: ipr.get_qdiscs(index=index))
    costs["raw qdisc dump (RTM_GETQDISC, kind/handle/rate only)"] = per_call(lambda: raw.qdiscs(index))
    costs["pyroute2 tc replace + tc del (tbf)"] = per_call(tc_pyroute2)
    costs["raw replace + del (tbf)"] = per_call(tc_raw)

    def tc_drills() -> None:
        control.replace(index, DEGRADE_HANDLE, TC_H_ROOT, spec, "bench tbf")
        control.delete(index, DEGRADE_HANDLE, TC_H_ROOT, "bench tbf")

    costs["drills tc.py qdisc dump (RTM_GETQDISC + full decode)"] = per_call(lambda: control.qdiscs(index))
    costs["drills tc.py replace + delete (tbf)"] = per_call(tc_drills)
    loop = ipr.asyncore.event_loop if hasattr(ipr, "asyncore") else None
    if loop is not None:

        async def nothing() -> None:
            return None

        costs["asyncio run_until_complete of an empty coroutine"] = per_call(lambda: loop.run_until_complete(nothing()))
    return {
        "cycles": cycles,
        "profiled_total_s": total,
        "shares": {k: {"s": v, "share": v / total if total else 0.0} for k, v in parts.items()},
        "per_call_s": costs,
    }


# --------------------------------------------------------------------------- analysis


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def meta_as_is(raw: dict[str, Any]) -> str:
    """The skew variant that is run_drill as it is."""
    return FREEZE if raw.get("run_drill_freezes") else NO_FREEZE


def analyse(raw: dict[str, Any], gc_watch: GcWatch | None = None) -> dict[str, Any]:
    faults: dict[str, Any] = {}
    for fault, by_method in raw["faults"].items():
        entry: dict[str, Any] = {}
        for method, by_kind in by_method.items():
            entry[method] = {}
            for kind, samples in by_kind.items():
                stats: dict[str, Any] = {
                    "issued_s": summary([s["issued_s"] for s in samples]),
                    "confirmed_s": summary([s["confirmed_s"] for s in samples]),
                }
                slow = [s for s in samples if s["confirmed_s"] > APPLY_TARGET_S]
                stats["over_target"] = len(slow)
                if gc_watch is not None:
                    # Slow samples that would have made the target but for a collection inside them.
                    stats["over_target_gc_explained"] = sum(
                        s["confirmed_s"] - gc_watch.inside(s["scheduled"], s["scheduled"] + s["confirmed_s"])
                        < APPLY_TARGET_S
                        for s in slow
                    )
                entry[method][kind] = stats
        for kind in ("apply", "revert"):
            sub = entry.get("subprocess", {}).get(kind)
            for method in ("drills", "pyroute2", "raw"):
                mine = entry.get(method, {}).get(kind)
                if sub and mine:
                    mine["subprocess_over_this"] = {
                        q: sub["confirmed_s"][q] / mine["confirmed_s"][q] for q in ("p50", "p99", "max")
                    }
        faults[fault] = entry
    targets: dict[str, Any] = {}
    for fault, entry in faults.items():
        for method in ("drills", "raw"):
            if method not in entry:
                continue
            apply = entry[method]["apply"]
            targets[f"{fault} {method}: apply p99 < 2 ms"] = {
                "value_ms": apply["confirmed_s"]["p99"] * 1e3,
                "met": apply["confirmed_s"]["p99"] < APPLY_TARGET_S,
            }
            if "subprocess_over_this" in apply:
                ratio = apply["subprocess_over_this"]
                targets[f"{fault} {method}: ≥ 10× better than subprocess"] = {
                    "p50_ratio": ratio["p50"],
                    "p99_ratio": ratio["p99"],
                    "met": ratio["p50"] >= FASTER_TARGET and ratio["p99"] >= FASTER_TARGET,
                }
    runs = []
    for run in raw.get("skew", []):
        stats = {k: v for k, v in run.items() if k not in ("issued_s", "confirmed_s")}
        stats["issued"] = summary(run["issued_s"])
        stats["confirmed"] = summary(run["confirmed_s"])
        runs.append(stats)
    pooled = []
    for rate_hz in dict.fromkeys(r["rate_hz"] for r in raw.get("skew", [])):
        for variant in dict.fromkeys(r["variant"] for r in raw.get("skew", [])):
            same = [r for r in raw["skew"] if r["rate_hz"] == rate_hz and r["variant"] == variant]
            issued = summary([x for r in same for x in r["issued_s"]])
            confirmed = summary([x for r in same for x in r["confirmed_s"]])
            pooled.append(
                {"rate_hz": rate_hz, "variant": variant, "runs": len(same), "issued": issued, "confirmed": confirmed}
            )
            if variant == meta_as_is(raw):
                reading = "actions" if rate_hz == 50 else "applies (each reverted: 100 actions/s)"
                targets[f"timeline skew p99 < 1 ms, 50 {reading} a second"] = {
                    "value_ms": issued["p99"] * 1e3,
                    "met": issued["p99"] < SKEW_TARGET_S,
                }
    skew_stats = {"runs": runs, "pooled": pooled} if runs else None
    return {"faults": faults, "skew": skew_stats, "targets": targets}


def compact(raw: dict[str, Any]) -> dict[str, Any]:
    """Every sample, in ms to the microsecond: [issued - scheduled, confirmed - scheduled]."""

    def ms(x: float) -> float:
        return round(x * 1e3, 3)

    return {
        "unit": "ms; each sample [issued - scheduled, confirmed - scheduled]",
        "faults": {
            fault: {
                method: {
                    kind: [[ms(s["issued_s"]), ms(s["confirmed_s"])] for s in samples] for kind, samples in k.items()
                }
                for method, k in by_method.items()
            }
            for fault, by_method in raw["faults"].items()
        },
        "skew": [
            {
                **{k: v for k, v in run.items() if k not in ("issued_s", "confirmed_s")},
                "samples": [[ms(i), ms(c)] for i, c in zip(run["issued_s"], run["confirmed_s"], strict=True)],
            }
            for run in raw.get("skew", [])
        ],
    }


# --------------------------------------------------------------------------- report


def _ms(stat: dict[str, float]) -> str:
    return f"{stat['p50'] * 1e3:.2f} / {stat['p99'] * 1e3:.2f} / {stat['max'] * 1e3:.2f}"


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    analysis = result["analysis"]
    lines = [
        f"Fault apply latency, ring of {meta['links']} links, {meta['date']}, {meta['cpus']} CPUs, kernel"
        f" {meta['kernel']}, pyroute2 {meta['pyroute2']}, {meta['repeats']} cycles per fault (each cycle: every"
        " method applies then reverts on a random link; method order rotates). Milliseconds, p50 / p99 / max."
        " *confirmed* = scheduled instant → kernel shows the change on both ends; *issued* = scheduled instant"
        " → first request sent.",
        "",
        "| fault | action | method | confirmed − scheduled | issued − scheduled | > 2 ms (of which under 2 ms but for a GC pause) "
        "| subprocess ÷ this (p50, p99) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    labels = {
        "drills": DrillsMethod.label,
        "pyroute2": Pyroute2LinkMethod.label,
        "raw": RawMethod.label,
        "subprocess": SubprocessMethod.label,
    }
    degrade_labels = {**labels, "drills": DrillsMethod.degrade_label}
    names = {
        ("link-down", "apply"): "link down",
        ("link-down", "revert"): "link up (revert)",
        ("degrade", "apply"): "tbf on (apply)",
        ("degrade", "revert"): "tbf off (revert)",
    }
    for fault, entry in analysis["faults"].items():
        for kind in ("apply", "revert"):
            for method in ("drills", "pyroute2", "raw", "subprocess"):
                if method not in entry:
                    continue
                s = entry[method][kind]
                ratio = s.get("subprocess_over_this")
                ratio_text = f"{ratio['p50']:.1f}×, {ratio['p99']:.1f}×" if ratio else "–"
                gc_part = f" ({s['over_target_gc_explained']})" if "over_target_gc_explained" in s else ""
                lines.append(
                    f"| {fault} | {names[(fault, kind)]} | {(labels if fault == 'link-down' else degrade_labels)[method]} "
                    f"| {_ms(s['confirmed_s'])} "
                    f"| {_ms(s['issued_s'])} | {s['over_target']}{gc_part} "
                    f"| {ratio_text} |"
                )
    lines += [
        "",
        f"Degrade: **netem-based degrade could not be measured here**: this kernel has no sch_netem"
        f" (`doctor.capabilities()`: netem {'present' if meta['netem'] else 'absent'}). Measured instead: drills'"
        f" `degrade` fault with `rate: {DEGRADE_RATE}` (a tbf on the egress root of both ends, applied and"
        " reverted); every method installs the same qdisc"
        f" (`{next(iter(result['tbf_check'].values()), '?')}`). drills and raw netlink do what `LinkDegrade`"
        " does: read the qdiscs first (never replace one drills did not make), replace, read back handle, kind"
        " and rate (revert: read, delete ours, read back); the subprocesses do what a script would: `tc qdisc"
        " replace|del` then `tc qdisc show` per end.",
    ]
    skew = analysis.get("skew")
    if skew:
        lines += [
            "",
            f"Timeline skew through `run_drill` itself: a ring of {meta['links']} links, 10 links flapping in turn"
            f" for {SKEW_SECONDS} s, a 1000 pps udp-stream probe running. *issued* = skew (step issued −"
            " scheduled), *confirmed* = kernel confirmed − scheduled. ms, p50 / p99 / max; runs in the order made,"
            " then pooled per rate and variant.",
            "",
            "| timeline actions a second | variant | steps | issued − scheduled | confirmed − scheduled "
            "| issued > 1 ms (of which: in a GC pause / behind a slow previous step) "
            "| collections on the clock: gen0 / gen1 / gen2 (gen2 pauses, ms) "
            "| involuntary context switches (whole process) | load average before → after |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        as_is = FREEZE if meta.get("run_drill_freezes") else NO_FREEZE

        def variant(name: str) -> str:
            return f"{name} (as is)" if name == as_is else f"{name} (patched)"

        for run in skew["runs"]:
            gcs = run["gc_on_clock"]
            gen2 = ", ".join(f"{x:g}" for x in gcs["2"]) or "–"
            lines.append(
                f"| {run['measured_rate_hz']:.1f} | {variant(run['variant'])} | {run['steps']} | {_ms(run['issued'])} "
                f"| {_ms(run['confirmed'])} | {run['late']} ({run['late_during_gc']} / {run['late_behind_previous']}) "
                f"| {len(gcs['0'])} / {len(gcs['1'])} / {len(gcs['2'])} ({gen2}) "
                f"| {run['involuntary_context_switches']} | {' → '.join(str(x) for x in run.get('loadavg_1min', []))} |"
            )
        for pool in skew["pooled"]:
            lines.append(
                f"| **{pool['rate_hz']}** | **{variant(pool['variant'])}, {pool['runs']} runs pooled** | {pool['issued']['n']} "
                f"| **{_ms(pool['issued'])}** | {_ms(pool['confirmed'])} | | | | |"
            )
        lines += [
            "",
            f"*{FREEZE}* = `gc.collect(); gc.freeze()` after `Handles.warm`, before the probes and the clock"
            f" start; *{NO_FREEZE}* = without. run_drill as it is {'freezes' if meta['run_drill_freezes'] else 'does not freeze'}"
            " the heap; the other variant is patched in or out in this process. Targets are judged on the code as it is.",
        ]
    lines += ["", "Targets:"]
    for name, t in analysis["targets"].items():
        if "value_ms" in t:
            detail = f"{t['value_ms']:.2f} ms"
        else:
            detail = f"p50 {t['p50_ratio']:.1f}×, p99 {t['p99_ratio']:.1f}×"
        lines.append(f"- {name}: {detail} — {'**met**' if t['met'] else '**not met**'}")
    prof = result.get("profile")
    if prof:
        lines += [
            "",
            f"Where the time of drills' degrade path goes (cProfile of {prof['cycles']} LinkDegrade apply+revert cycles;"
            " the profiler inflates Python-heavy parts, read the proportions):",
            "",
            "| component | share |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v['share'] * 100:.0f}% |" for k, v in prof["shares"].items()]
        lines += ["", "Per call, without the profiler (ms, p50 / p99 / max over 300 calls):", ""]
        lines += ["| call | ms |", "|---|---:|"]
        lines += [f"| {k} | {_ms(v)} |" for k, v in prof["per_call_s"].items()]
    lines += ["", f"Load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def open_testbed(topology: Topology, namespaces: dict[str, str], run: Run) -> Testbed:
    ops = common.node_ops(topology, namespaces, run)  # every socket open, every index known
    ctx = FaultContext(ops, SystemClock(), lambda _m: None, random.Random(0))
    raw = {node: RawRtnl(ns) for node, ns in namespaces.items()}
    return Testbed(topology, namespaces, ops, ctx, raw)


def close_testbed(bed: Testbed | None) -> None:
    if bed is None:
        return
    bed.ops.close()
    for sock in bed.raw.values():
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--links", type=int, default=100, help="links (= nodes) of the ring")
    parser.add_argument("--repeats", type=int, default=300, help="apply/revert cycles per fault and method")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "apply.json")
    parser.add_argument(
        "--skew-runs", type=int, default=2, help="run_drill skew runs per rate and variant (12 s each; 0: none)"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the profile of the drills path")
    parser.add_argument(
        "--filters", action="store_true",
        help="only the blackhole/partition (libnftables in-process beside `nft`) and node-loss rows "
        "(bench/apply_filters.py), written to <out stem>-filters.json/.md",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.links < 3:
        parser.error("--links: a ring needs at least 3")
    if os.geteuid() != 0:
        print("bench/apply.py needs root (network namespaces)", file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        print(message, flush=True)

    if args.filters:
        return filters_only(args.out.with_name(args.out.stem + "-filters.json"), args.repeats, args.seed, progress)

    capabilities = doctor.capabilities()
    netem, tbf = capabilities.get(doctor.NETEM, False), capabilities.get(doctor.TBF, False)
    progress(f"doctor: netem qdisc {'present' if netem else 'ABSENT'}, tbf qdisc {'present' if tbf else 'ABSENT'}")
    if not tbf:
        print("bench/apply.py needs the tbf qdisc for its degrade measurement", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="drills-bench-apply-"))
    state = work / "state"
    state.mkdir()
    bed: Testbed | None = None
    raw: dict[str, Any] = {"faults": {}}
    gc_watch = GcWatch()
    loadavg_start = os.getloadavg()
    started = time.perf_counter()
    tbf_check: dict[str, str] = {}
    profile: dict[str, Any] | None = None

    def cleanup() -> list[str]:
        close_testbed(bed)
        return common.clean_state(state, work)

    with common.interruptible(cleanup) as stop:
        path = work / f"ring-{args.links}.yaml"
        path.write_text(ring_yaml(args.links))
        up = lifecycle.up(path, state)
        progress(f"ring of {args.links} links up (run {up.meta.run_id})")
        bed = open_testbed(up.topology, dict(up.meta.nodes), RunStore(state).get(up.meta.run_id))
        methods: list[Method] = [DrillsMethod(bed), Pyroute2LinkMethod(bed), RawMethod(bed), SubprocessMethod(bed)]
        tbf_check = check_same_tbf(bed, methods)
        for method in methods:  # warm-up, not recorded: first use of every code path
            for _ in range(3):
                link = rng.choice(bed.topology.links)
                method.link(link, True)
                method.link(link, False)
                if "degrade" in method.faults:
                    method.degrade(link, True)
                    method.degrade(link, False)
        with gc_watch:
            for fault in ("link-down", "degrade"):
                raw["faults"][fault] = measure(bed, methods, fault, args.repeats, rng, progress)
        if not args.no_profile:
            progress("profiling the drills path")
            profile = profile_drills(bed, rng, 300, args.out.with_suffix(".profile.txt"))
        close_testbed(bed)
        bed = None
        lifecycle.down(state, up.meta.run_id)
        if args.skew_runs:
            raw["skew"] = []
            raw["run_drill_freezes"] = run_drill_freezes()
            for rate_hz, variant in [(r, v) for _ in range(args.skew_runs) for r in SKEW_RATES_HZ for v in VARIANTS]:
                progress(f"timeline skew: run_drill, {rate_hz} actions/s for {SKEW_SECONDS} s ({variant})")
                run = timeline_skew(work, state, args.links, rng, rate_hz, variant)
                raw["skew"].append(run)
                issued = summary(run["issued_s"])
                progress(f"  issued − scheduled p50 {issued['p50'] * 1e3:.2f} ms, p99 {issued['p99'] * 1e3:.2f} ms")
    if stop.interrupted:
        return 130

    result = {
        "meta": {
            **common.host_meta(),
            "links": args.links,
            "repeats": args.repeats,
            "seed": args.seed,
            "netem": netem,
            "degrade": f"drills degrade, rate {DEGRADE_RATE}, both directions",
            "loadavg_start": [round(x, 2) for x in loadavg_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "wall_s": time.perf_counter() - started,
            "gc_collections_during_measurement": len(gc_watch.intervals),
            "run_drill_freezes": run_drill_freezes(),
        },
        "tbf_check": tbf_check,
        "analysis": analyse(raw, gc_watch),
        "profile": profile,
        "cleanup_problems": stop.left,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".samples.json").write_text(json.dumps(compact(raw), separators=(",", ":")) + "\n")
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table)
    print()
    print(table)
    print(f"written: {args.out}, {args.out.with_suffix('.md')}, {args.out.with_suffix('.samples.json')}")
    return 1 if stop.left else 0


def filters_only(out: Path, repeats: int, seed: int, progress: Callable[[str], None]) -> int:
    """The packet-filter and node-loss rows alone (bench/apply_filters.py), in one run."""
    work = Path(tempfile.mkdtemp(prefix="drills-bench-filters-"))
    state = work / "state"
    state.mkdir()
    samples: dict[str, Any] = {}
    loadavg_start = os.getloadavg()
    started = time.perf_counter()
    with common.interruptible(lambda: common.clean_state(state, work)) as stop:
        samples = apply_filters.measure(work, state, repeats, random.Random(seed), progress)
    if stop.interrupted:
        return 130
    result = {
        "meta": {
            **common.host_meta(),
            "repeats": repeats,
            "seed": seed,
            "nftables": common.debian_version("nftables"),
            "loadavg_start": [round(x, 2) for x in loadavg_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "wall_s": time.perf_counter() - started,
        },
        "analysis": apply_filters.analyse(samples),
        "cleanup_problems": stop.left,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".samples.json").write_text(json.dumps(samples, separators=(",", ":")) + "\n")
    meta = result["meta"]
    table = apply_filters.markdown(result["analysis"]) + (
        f"\n{repeats} cycles, methods interleaved (order rotating per cycle), {meta['date']}; load average"
        f" (1 / 5 / 15 min, 2 CPUs shared with other work) at the start {' / '.join(map(str, meta['loadavg_start']))},"
        f" at the end {' / '.join(map(str, meta['loadavg_end']))}.\n"
    )
    out.with_suffix(".md").write_text(table)
    print()
    print(table)
    print(f"written: {out}, {out.with_suffix('.md')}, {out.with_suffix('.samples.json')}")
    return 1 if stop.left else 0


if __name__ == "__main__":
    raise SystemExit(main())

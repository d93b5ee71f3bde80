"""Qdiscs through struct-built rtnetlink: tbf and netem, replaced, deleted, dumped and decoded.

Every tc message drills sends is encoded here and nowhere else, on the namespace's `RawLinks`
socket (rtnl.py), so a degrade costs a few tens of microseconds of Python rather than pyroute2's
fraction of a millisecond per request (bench/apply.py), and netem's whole option set can be sent:
pyroute2 0.9.7 cannot encode netem's distribution table, Gilbert-Elliott loss or rate.

Layouts follow the kernel's uapi (linux/pkt_sched.h) and iproute2's q_tbf.c / q_netem.c:
- tbf's TCA_OPTIONS is a nest of TCA_TBF_PARMS (struct tc_tbf_qopt, the bucket as a buffer time
  in ticks) and, above 2**32-1 bytes/s, TCA_TBF_RATE64; the rate is link-layer aware, so no rate
  table is needed.
- netem's TCA_OPTIONS is struct tc_netem_qopt *followed by* attributes (not a plain nest).
  Probabilities are u32 fractions of 2**32-1; delays go as 64-bit nanoseconds (LATENCY64,
  JITTER64), with the 32-bit tick fields filled for kernels older than 4.15.

A netem `replace` on an existing netem keeps every attribute the request leaves out (its old
correlation, reorder, corrupt, rate); so every one is always sent, zeros included, and a change
in place (the time-varying driver) leaves nothing of the previous settings behind. The delay
table is the exception (the kernel cannot be told "no table"): its owner deletes first.

Failures are `NetlinkFailure` (a BackendError); a qdisc kind the kernel lacks (sch_netem, on
many hosts) is `MissingQdisc`, which the degrade fault words as how to get it.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from drills.errors import BackendError
from drills.netns.rtnl import NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NetlinkFailure, RawLinks, attributes, rta

RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
TC_H_ROOT = 0xFFFFFFFF
TCA_KIND, TCA_OPTIONS, TCA_STATS2 = 1, 2, 7
TCA_STATS_BASIC, TCA_STATS_QUEUE = 1, 3
TCA_TBF_PARMS, TCA_TBF_RATE64, TCA_TBF_BURST = 1, 4, 6
TCA_NETEM_CORR, TCA_NETEM_DELAY_DIST, TCA_NETEM_REORDER, TCA_NETEM_CORRUPT = 1, 2, 3, 4
TCA_NETEM_LOSS, TCA_NETEM_RATE, TCA_NETEM_RATE64 = 5, 6, 8
TCA_NETEM_LATENCY64, TCA_NETEM_JITTER64 = 10, 11
NETEM_LOSS_GE = 2
TC_LINKLAYER_ETHERNET = 1
U32_MAX = 0xFFFFFFFF
NS_PER_TICK = 64  # PSCHED_SHIFT 6: the kernel's tc time unit since 2.6.31

_NLMSG_BYTES = 16
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
_RATESPEC = struct.Struct("=BBHhHI")  # cell_log, linklayer, overhead, cell_align, mpu, rate (bytes/s)
_TBF_QOPT = struct.Struct("=BBHhHI BBHhHI III")  # rate, peak rate, limit, buffer (ticks), mtu
_NETEM_QOPT = struct.Struct("=IIIIII")  # latency (ticks), limit, loss, gap, duplicate, jitter (ticks)
_NETEM_CORR = struct.Struct("=III")  # delay, loss, duplicate correlation
_NETEM_PAIR = struct.Struct("=II")  # reorder or corrupt: probability, correlation
_NETEM_RATE = struct.Struct("=IiIi")  # rate (bytes/s), packet overhead, cell size, cell overhead
_NETEM_GE = struct.Struct("=IIII")  # p, r, h, k1
_STATS_BASIC = struct.Struct("=QI")  # bytes, packets
_STATS_QUEUE = struct.Struct("=IIIII")  # qlen, backlog, drops, requeues, overlimits

class MissingQdisc(BackendError):
    """The kernel has no qdisc of this kind (no module, not built in)."""


def probability(pct: float) -> int:
    """A percentage as the kernel keeps it: a fraction of 2**32-1 (tc's get_percent)."""
    return min(max(round(pct / 100.0 * U32_MAX), 0), U32_MAX)


def percent(value: int) -> float:
    return value * 100.0 / U32_MAX


@cache
def _ticks_per_us() -> float:
    """tc's tick_in_usec, from /proc/net/psched (t2us / us2t); 1000/64 on every kernel since 2.6.31."""
    try:
        t2us, us2t = (int(x, 16) for x in Path("/proc/net/psched").read_text().split()[:2])
        return t2us / us2t
    except (OSError, ValueError):
        return 1000 / NS_PER_TICK


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Tbf:
    """A token bucket: `rate_bytes_ps`, a bucket of `burst_bytes`, a queue of `limit_bytes`."""

    rate_bytes_ps: int
    burst_bytes: int
    limit_bytes: int

    kind = "tbf"

    def encode(self) -> bytes:
        rate32 = min(self.rate_bytes_ps, U32_MAX)
        buffer_ticks = int(1e6 * self.burst_bytes / self.rate_bytes_ps * _ticks_per_us())  # tc_calc_xmittime
        rate = (0, TC_LINKLAYER_ETHERNET, 0, -1, 0, rate32)
        qopt = _TBF_QOPT.pack(*rate, *(0, 0, 0, 0, 0, 0), self.limit_bytes, min(buffer_ticks, U32_MAX), 0)
        # No TCA_TBF_BURST, as tc: the kernel derives the bucket from the buffer time, so it reads
        # back the burst asked (with it, the kernel's own rounding shows a byte less).
        out = rta(TCA_TBF_PARMS, qopt)
        if buffer_ticks > U32_MAX:  # a bucket of minutes (a rate of a few bytes/s): say it in bytes
            out += rta(TCA_TBF_BURST, struct.pack("=I", self.burst_bytes))
        if self.rate_bytes_ps > U32_MAX:
            out += rta(TCA_TBF_RATE64, struct.pack("=Q", self.rate_bytes_ps))
        return out

    @classmethod
    def decode(cls, options: bytes) -> Tbf:
        """What the kernel shows; the burst is derived from the buffer time, as tc does."""
        found = attributes(options)
        parms = found.get(TCA_TBF_PARMS, b"")
        if len(parms) < _TBF_QOPT.size:
            raise BackendError("tbf options without TCA_TBF_PARMS")
        fields = _TBF_QOPT.unpack_from(parms)
        rate, limit, buffer_ticks = fields[5], fields[12], fields[13]
        if TCA_TBF_RATE64 in found:
            (rate,) = struct.unpack_from("=Q", found[TCA_TBF_RATE64])
        burst = round(buffer_ticks / _ticks_per_us() * rate / 1e6)
        if TCA_TBF_BURST in found:  # in our own requests; the kernel dumps the buffer time only
            (burst,) = struct.unpack_from("=I", found[TCA_TBF_BURST])
        return cls(rate, burst, limit)


@dataclass(frozen=True)
class GilbertElliott:
    """netem's 2-state loss model in the kernel's own terms (struct tc_netem_gemodel)."""

    p_pct: float  # good -> bad, per packet
    r_pct: float  # bad -> good, per packet
    h_pct: float  # a packet gets through in the bad state (tc's third argument is 1-h)
    k1_pct: float  # a packet is lost in the good state (tc's fourth argument, "1-k")

    def integers(self) -> tuple[int, int, int, int]:
        return (probability(self.p_pct), probability(self.r_pct), probability(self.h_pct), probability(self.k1_pct))


@dataclass(frozen=True)
class Netem:
    """netem's options, in SI units at this edge (ns, bytes/s) and percentages."""

    limit_packets: int = 1000
    delay_ns: int = 0
    jitter_ns: int = 0
    delay_corr_pct: float = 0.0
    loss_pct: float = 0.0
    loss_corr_pct: float = 0.0
    duplicate_pct: float = 0.0
    duplicate_corr_pct: float = 0.0
    corrupt_pct: float = 0.0
    corrupt_corr_pct: float = 0.0
    reorder_pct: float = 0.0
    reorder_corr_pct: float = 0.0
    gap: int = 0  # with reorder: 1 = any packet may be sent early (tc's default when reorder is set)
    loss_model: GilbertElliott | None = None
    rate_bytes_ps: int = 0
    # Not dumped by the kernel: a read-back never has it, so it takes no part in `integers`.
    distribution: tuple[int, ...] | None = field(default=None, compare=False)

    kind = "netem"

    def integers(self) -> tuple[int, ...]:
        """Everything the kernel reads back, as the integers it keeps: what confirmation compares."""
        ge = self.loss_model.integers() if self.loss_model is not None else ()
        return (
            self.limit_packets, self.delay_ns, self.jitter_ns, probability(self.delay_corr_pct),
            probability(self.loss_pct), probability(self.loss_corr_pct), probability(self.duplicate_pct),
            probability(self.duplicate_corr_pct), probability(self.corrupt_pct), probability(self.corrupt_corr_pct),
            probability(self.reorder_pct), probability(self.reorder_corr_pct), self.gap, *ge, self.rate_bytes_ps,
        )  # fmt: skip

    def encode(self) -> bytes:
        qopt = _NETEM_QOPT.pack(
            min(self.delay_ns // NS_PER_TICK, U32_MAX), self.limit_packets, probability(self.loss_pct),
            self.gap, probability(self.duplicate_pct), min(self.jitter_ns // NS_PER_TICK, U32_MAX),
        )  # fmt: skip
        corr = (probability(self.delay_corr_pct), probability(self.loss_corr_pct), probability(self.duplicate_corr_pct))
        out = [
            qopt,
            rta(TCA_NETEM_CORR, _NETEM_CORR.pack(*corr)),
            rta(TCA_NETEM_REORDER, _NETEM_PAIR.pack(probability(self.reorder_pct), probability(self.reorder_corr_pct))),
            rta(TCA_NETEM_CORRUPT, _NETEM_PAIR.pack(probability(self.corrupt_pct), probability(self.corrupt_corr_pct))),
            rta(TCA_NETEM_RATE, _NETEM_RATE.pack(min(self.rate_bytes_ps, U32_MAX), 0, 0, 0)),
            rta(TCA_NETEM_LATENCY64, struct.pack("=q", self.delay_ns)),
            rta(TCA_NETEM_JITTER64, struct.pack("=q", self.jitter_ns)),
        ]
        if self.rate_bytes_ps > U32_MAX:
            out.append(rta(TCA_NETEM_RATE64, struct.pack("=Q", self.rate_bytes_ps)))
        if self.loss_model is not None:
            out.append(rta(TCA_NETEM_LOSS, rta(NETEM_LOSS_GE, _NETEM_GE.pack(*self.loss_model.integers()))))
        if self.distribution is not None:
            out.append(rta(TCA_NETEM_DELAY_DIST, struct.pack(f"={len(self.distribution)}h", *self.distribution)))
        # The qopt is 24 bytes: the attributes after it are aligned without padding.
        return b"".join(out)

    @classmethod
    def decode(cls, options: bytes) -> Netem:
        if len(options) < _NETEM_QOPT.size:
            raise BackendError("netem options shorter than struct tc_netem_qopt")
        latency, limit, loss, gap, duplicate, jitter = _NETEM_QOPT.unpack_from(options)
        found = attributes(options, _NETEM_QOPT.size)
        delay_ns, jitter_ns = latency * NS_PER_TICK, jitter * NS_PER_TICK
        if TCA_NETEM_LATENCY64 in found:
            (delay_ns,) = struct.unpack_from("=q", found[TCA_NETEM_LATENCY64])
        if TCA_NETEM_JITTER64 in found:
            (jitter_ns,) = struct.unpack_from("=q", found[TCA_NETEM_JITTER64])
        delay_corr, loss_corr, dup_corr = _NETEM_CORR.unpack_from(found.get(TCA_NETEM_CORR, bytes(12)))
        reorder, reorder_corr = _NETEM_PAIR.unpack_from(found.get(TCA_NETEM_REORDER, bytes(8)))
        corrupt, corrupt_corr = _NETEM_PAIR.unpack_from(found.get(TCA_NETEM_CORRUPT, bytes(8)))
        rate = _NETEM_RATE.unpack_from(found.get(TCA_NETEM_RATE, bytes(16)))[0]
        if TCA_NETEM_RATE64 in found:
            (rate,) = struct.unpack_from("=Q", found[TCA_NETEM_RATE64])
        model = None
        ge = attributes(found[TCA_NETEM_LOSS]).get(NETEM_LOSS_GE) if TCA_NETEM_LOSS in found else None
        if ge is not None:
            p, r, h, k1 = _NETEM_GE.unpack_from(ge)
            model = GilbertElliott(percent(p), percent(r), percent(h), percent(k1))
        table = None
        if TCA_NETEM_DELAY_DIST in found:  # never dumped by the kernel; decoded for our own tests
            raw = found[TCA_NETEM_DELAY_DIST]
            table = struct.unpack(f"={len(raw) // 2}h", raw)
        return cls(
            limit, delay_ns, jitter_ns, percent(delay_corr), percent(loss), percent(loss_corr), percent(duplicate),
            percent(dup_corr), percent(corrupt), percent(corrupt_corr), percent(reorder), percent(reorder_corr),
            gap, model, rate, table,
        )  # fmt: skip


Options = Tbf | Netem


# --------------------------------------------------------------------------- qdiscs


@dataclass(frozen=True)
class Qdisc:
    """A qdisc as the kernel shows it, with its options when drills can decode them."""

    index: int
    kind: str
    handle: int
    parent: int
    options: Options | None = None
    packets: int = 0  # sent so far (TCA_STATS2)
    drops: int = 0

    def text(self) -> str:
        return f"{self.kind} {handle_text(self.handle)}"


def handle_text(handle: int) -> str:
    return f"{handle >> 16:x}:"


def qdisc_message(index: int, handle: int, parent: int, options: Options | None) -> bytes:
    """The body of an RTM_NEWQDISC / RTM_DELQDISC request (after the netlink header)."""
    body = _TCMSG.pack(0, index, handle, parent, 0)
    if options is not None:
        body += rta(TCA_KIND, options.kind.encode() + b"\0") + rta(TCA_OPTIONS, options.encode())
    return body


def parse_qdisc(message: bytes) -> Qdisc:
    """One RTM_NEWQDISC message (a dump entry), header included."""
    _family, index, handle, parent, _info = _TCMSG.unpack_from(message, _NLMSG_BYTES)
    found = attributes(message, _NLMSG_BYTES + _TCMSG.size)
    kind = found.get(TCA_KIND, b"").rstrip(b"\0").decode()
    raw = found.get(TCA_OPTIONS)
    options: Options | None = None
    if raw is not None and kind == "tbf":
        options = Tbf.decode(raw)
    elif raw is not None and kind == "netem":
        options = Netem.decode(raw)
    stats = attributes(found.get(TCA_STATS2, b""))
    packets = _STATS_BASIC.unpack_from(stats[TCA_STATS_BASIC])[1] if TCA_STATS_BASIC in stats else 0
    drops = _STATS_QUEUE.unpack_from(stats[TCA_STATS_QUEUE])[2] if TCA_STATS_QUEUE in stats else 0
    return Qdisc(index, kind, handle, parent, options, packets, drops)


class Tc:
    """Qdisc requests on one namespace's rtnetlink socket (not thread-safe: one user at a time)."""

    def __init__(self, links: RawLinks) -> None:
        self._links = links

    def replace(self, index: int, handle: int, parent: int, options: Options, what: str) -> None:
        """Create the qdisc, or change ours in place (same handle and kind); acked by the kernel."""
        body = qdisc_message(index, handle, parent, options)
        try:
            self._links.request(RTM_NEWQDISC, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body, what)
        except NetlinkFailure as exc:
            if exc.code == errno.ENOENT:  # what the kernel says when no module provides the kind
                raise MissingQdisc(f"{what}: this kernel has no {options.kind} qdisc ({exc.kernel_message or exc})") from exc
            raise

    def delete(self, index: int, handle: int, parent: int, what: str) -> None:
        self._links.request(RTM_DELQDISC, NLM_F_ACK, qdisc_message(index, handle, parent, None), what)

    def qdiscs(self, index: int) -> list[Qdisc]:
        """Every qdisc of interface `index` (a dump, filtered here: kernels differ in filtering)."""
        messages = self._links.dump(RTM_GETQDISC, _TCMSG.pack(0, index, 0, 0, 0), f"read the qdiscs of interface {index}")
        return [q for q in map(parse_qdisc, messages) if q.index == index]

"""The kernel engine's impairments: one direction's `Settings` as our qdiscs on the egress root
of the direction's sending end, installed, confirmed, removed and confirmed gone.

What goes into the kernel:
- `rate` alone: one tbf qdisc (works on every kernel drills has met);
- anything else (delay, jitter and its distribution table, loss or Gilbert-Elliott bursts,
  duplicate, corrupt, reorder): a netem qdisc, with a tbf child for `rate` (the recipe of
  tc-netem(8): tbf drops beyond a 50 ms queue, where netem's own rate would queue up to its
  packet limit, seconds of delay the scenario did not ask for).
- a ramp's or a handover's next step: the same netem, changed in place (`in_place`).

Our qdiscs carry fixed handles (`drills.impairment.QDISC_HANDLE`, `d511:` at the root, and
`d512:` for the tbf under netem), so that a removal can tell ours from anyone else's: it deletes
the root qdisc only when its handle is ours, which also takes our child with it and gives the
interface back its default qdisc. An install refuses an interface whose root qdisc is somebody
else's: `replace` with another handle would silently destroy it.

The requests are struct-built rtnetlink (tc.py) on the namespace's raw socket; each change is
confirmed by decoding the kernel's dump.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from drills.errors import BackendError
from drills.impairment import (
    NO_NETEM,
    QDISC_CHILD_HANDLE,
    QDISC_HANDLE,
    Settings,
    at_start,
    microseconds,
    profile_directions,
    qdisc_text,
)
from drills.netns import netem_tables, tc
from drills.netns.handles import Handles
from drills.scenario import model
from drills.scenario.resolved import Interface, Link

TC_H_ROOT = tc.TC_H_ROOT
HANDLE = QDISC_HANDLE  # "d511:": our root qdisc (tbf, or netem)
CHILD_HANDLE = QDISC_CHILD_HANDLE  # "d512:": our tbf under our netem
CHILD_PARENT = HANDLE | 1  # "d511:1": netem's only class

# tbf. The bucket holds 4 ms of traffic (tc's rule of thumb, burst >= rate/HZ at HZ=250) but
# never less than two full frames: a frame larger than the bucket could never be sent. The
# queue in front of it holds 50 ms of traffic: enough for a TCP flow to fill the limited rate,
# short enough not to add queueing delay (bufferbloat) the scenario did not ask for.
TBF_BURST_S = 0.004
TBF_LATENCY_S = 0.050
ETHERNET_HEADER_BYTES = 14  # qdiscs count the frame, L2 header included
DEFAULT_MTU = 1500
RATE_READBACK_TOLERANCE = 0.001  # the kernel reports the rate it stores: equal but for rounding

# netem. Its queue must hold every packet in flight through the delay, or it drops packets the
# scenario did not ask to lose; its default of 1000 packets would at GEO delays above about
# 40 Mbit/s. We size it for `delay + jitter` of 1500-byte frames at 1 Gbit/s, within bounds.
NETEM_SIZING_BPS = 1_000_000_000
NETEM_LIMIT_MIN_PACKETS = 1000
NETEM_LIMIT_MAX_PACKETS = 100_000

Log = Callable[[str], None]

# --------------------------------------------------------------------------- kernel integers


def rate_bytes_per_s(rate_bps: int) -> int:
    """tc rates are bytes per second; scenarios state bits per second."""
    return max(1, round(rate_bps / 8))


def tbf_spec(rate_bps: int, mtu: int | None) -> tc.Tbf:
    rate = rate_bytes_per_s(rate_bps)
    frame = (mtu or DEFAULT_MTU) + ETHERNET_HEADER_BYTES
    burst = max(math.ceil(rate * TBF_BURST_S), 2 * frame)
    return tc.Tbf(rate, burst, burst + math.ceil(rate * TBF_LATENCY_S))


def netem_limit_packets(settings: Settings) -> int:
    in_flight = (settings.delay_s + settings.jitter_s) * NETEM_SIZING_BPS / 8 / (DEFAULT_MTU + ETHERNET_HEADER_BYTES)
    return min(max(math.ceil(in_flight), NETEM_LIMIT_MIN_PACKETS), NETEM_LIMIT_MAX_PACKETS)


def gilbert_elliott(bursts: model.GilbertElliott) -> tc.GilbertElliott:
    """The scenario's model is written as tc writes it (`loss gemodel p r 1-h 1-k`): its `h` is the
    loss in the bad state and its `k` the loss in the good state; the kernel keeps h as the
    chance of getting through in the bad state."""
    return tc.GilbertElliott(p_pct=bursts.p, r_pct=bursts.r, h_pct=100.0 - bursts.h, k1_pct=bursts.k)


def netem_spec(settings: Settings) -> tc.Netem:
    """netem's options for one direction (time-varying parts at their start)."""
    s = at_start(settings)
    shape = s.distribution if s.distribution not in (None, "uniform") else None  # uniform: netem's own
    return tc.Netem(
        limit_packets=netem_limit_packets(s),
        delay_ns=microseconds(s.delay_s) * 1000,
        jitter_ns=microseconds(s.jitter_s) * 1000,
        delay_corr_pct=s.correlation_pct,
        loss_pct=s.loss_pct,
        duplicate_pct=s.duplicate_pct,
        corrupt_pct=s.corrupt_pct,
        reorder_pct=s.reorder_pct,
        gap=1 if s.reorder_pct else 0,  # tc's default: any packet may be the one sent at once
        loss_model=gilbert_elliott(s.loss_bursts) if s.loss_bursts is not None else None,
        distribution=netem_tables.table(shape) if shape is not None else None,
    )


# --------------------------------------------------------------------------- qdiscs in the kernel


def _root(qdiscs: list[tc.Qdisc]) -> tc.Qdisc | None:
    return next((q for q in qdiscs if q.parent == TC_H_ROOT), None)


def _delete_ours(control: tc.Tc, index: int, endpoint: str) -> None:
    control.delete(index, HANDLE, TC_H_ROOT, f"{endpoint}: delete root qdisc {tc.handle_text(HANDLE)}")


def install(control: tc.Tc, index: int, end: Interface, s: Settings, in_place: bool = False) -> None:
    """Put our qdiscs for `s` on the egress root of `end`. A fresh install first deletes ours if
    present (a netem keeps a delay table it is not sent again); `in_place` changes ours without
    a gap (a ramp's next step: same kind, same table)."""
    endpoint = end.endpoint
    kind = "netem" if s.needs_netem else "tbf"
    root = _root(control.qdiscs(index))
    if root is not None and root.handle not in (0, HANDLE):
        # A `replace` under another handle would destroy it: never touch a qdisc we did not create.
        raise BackendError(
            f"{endpoint} has a root qdisc drills did not create ({root.text()}); degrade leaves it alone: remove it or impair another link"
        )
    if root is not None and root.handle == HANDLE and (root.kind != kind or not in_place):
        _delete_ours(control, index, endpoint)  # the kernel refuses to change a qdisc's kind in place
    what = f"{endpoint}: {kind} on the egress root ({qdisc_text(s)})"
    if kind == "netem":
        try:
            control.replace(index, HANDLE, TC_H_ROOT, netem_spec(s), what)
        except tc.MissingQdisc as exc:
            raise BackendError(f"{what}: {NO_NETEM}") from exc
        if s.rate_bps is not None:
            control.replace(index, CHILD_HANDLE, CHILD_PARENT, tbf_spec(s.rate_bps, end.mtu), what)
    else:
        assert s.rate_bps is not None
        control.replace(index, HANDLE, TC_H_ROOT, tbf_spec(s.rate_bps, end.mtu), what)


def confirm_installed(control: tc.Tc, index: int, end: Interface, s: Settings) -> None:
    """The kernel shows our qdiscs with the options asked: kind, handle, parent, and every netem
    integer (the delay table excepted: the kernel never dumps it) or tbf's rate and queue."""
    endpoint = end.endpoint
    qdiscs = control.qdiscs(index)
    root = _root(qdiscs)
    kind = "netem" if s.needs_netem else "tbf"
    if root is None or root.handle != HANDLE or root.kind != kind:
        shown = root.text() if root is not None else "none"
        raise BackendError(f"{endpoint}: the kernel shows root qdisc {shown}, not {kind} {tc.handle_text(HANDLE)}")
    if kind == "netem":
        asked = netem_spec(s)
        if not isinstance(root.options, tc.Netem) or root.options.integers() != asked.integers():
            raise BackendError(f"{endpoint}: netem reads back as {root.options}, asked {asked}")
    if s.rate_bps is None:
        return
    tbf = root if kind == "tbf" else next((q for q in qdiscs if q.handle == CHILD_HANDLE), None)
    if tbf is None or tbf.kind != "tbf" or tbf.parent != (TC_H_ROOT if kind == "tbf" else CHILD_PARENT):
        raise BackendError(f"{endpoint}: the kernel shows no tbf {tc.handle_text(CHILD_HANDLE)} under our netem")
    asked_rate = rate_bytes_per_s(s.rate_bps)
    shown_rate = tbf.options.rate_bytes_ps if isinstance(tbf.options, tc.Tbf) else None
    if shown_rate is None or abs(shown_rate - asked_rate) > max(1.0, asked_rate * RATE_READBACK_TOLERANCE):
        raise BackendError(f"{endpoint}: tbf rate reads back as {shown_rate} bytes/s, asked {asked_rate}")


def remove(control: tc.Tc, index: int, end: Interface, log: Log) -> None:
    """Delete our root qdisc (our tbf child, if any, goes with it); anyone else's is left alone."""
    root = _root(control.qdiscs(index))
    if root is not None and root.handle == HANDLE:
        _delete_ours(control, index, end.endpoint)
    elif root is not None and root.handle != 0:
        log(f"{end.endpoint}: root qdisc {root.text()} is not ours; left alone")


def confirm_removed(control: tc.Tc, index: int, end: Interface) -> None:
    left = [q for q in control.qdiscs(index) if q.handle in (HANDLE, CHILD_HANDLE)]
    if left:
        raise BackendError(f"{end.endpoint}: {', '.join(q.text() for q in left)} still there after reverting degrade")


# --------------------------------------------------------------------------- at deploy


def install_link_profile(handles: Handles, link: Link) -> None:
    """Deploy, kernel engine: the link's profile as our qdiscs on both ends, confirmed."""
    for d in profile_directions(link):
        if d.settings.empty:
            continue
        control, index = tc.Tc(handles.raw(d.end.node)), handles.index(d.end.node, d.end.name)
        install(control, index, d.end, d.settings)
        confirm_installed(control, index, d.end, d.settings)

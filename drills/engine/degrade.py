"""`degrade`: impair one or both directions of a link, through the engine that serves it.

A link served by the userspace engine (drills.userspace: a TAP pair joined by a relay process)
is impaired through its relay's control channel, which reads the parameters back (`LinkDegrade`
finds the relay by its socket name; no relay means the kernel serves the link). Everything below
is the kernel engine. A step composes with the link's own profile (in force from deploy): its
parameters override the profile's, and revert goes back to the profile.

Direction a-to-b is the traffic from a link's first endpoint to its second: it is impaired on
the egress of endpoint a (a's root qdisc); b-to-a on the egress of b. A step's `profile` gives
the starting values (its `reverse` overrides them for b-to-a); parameters written on the step
override both.

What goes into the kernel:
- `rate` alone: one tbf qdisc (works on every kernel drills has met, this one included);
- anything else (delay, jitter and its distribution table, loss or Gilbert-Elliott bursts,
  duplicate, corrupt, reorder): a netem qdisc, with a tbf child for `rate` (the recipe of
  tc-netem(8): tbf drops beyond a 50 ms queue, where netem's own rate would queue up to its
  packet limit, seconds of delay the scenario did not ask for).
- a `ramp` or a profile's `handover`: the same netem, changed in place on a schedule by the
  driver of timevarying.py (`apply_settings` is its callback), stopped before the revert.

Our qdiscs carry fixed handles, `d511:` at the root and `d512:` for the tbf under netem ("d5"
for drills; no tool we know picks these), so that revert can tell ours from anyone else's: it
deletes the root qdisc only when its handle is ours, which also takes our child with it and
gives the interface back its default qdisc. Apply refuses an interface whose root qdisc is
somebody else's: `replace` with another handle would silently destroy it.

The qdisc requests are struct-built rtnetlink (drills/netns/tc.py) on the namespace's raw
socket, each change confirmed by decoding the kernel's dump. The netem path cannot be exercised
on kernels without sch_netem (see `requirements`, which refuses such steps before anything is
deployed); tests/test_netem_kernel.py runs it in a VM that has it (`./dev vm-test`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from drills import doctor
from drills.clock import Clock, SystemClock
from drills.engine import timevarying
from drills.engine.faults import FaultContext, register
from drills.errors import BackendError, BadInput, Problem
from drills.impairment import NETEM_PARAMETERS as NETEM_PARAMETERS
from drills.impairment import Direction, Settings, plan, profile_directions, rate_text
from drills.netns import netem_tables, tc
from drills.netns.handles import Handles
from drills.scenario import model
from drills.scenario.resolved import Interface, Link, Scenario, Topology
from drills.userspace import control as relay_control
from drills.userspace import select
from drills.userspace.control import RelayControl
from drills.userspace.profile import from_settings, profile_impairments

TC_H_ROOT = 0xFFFFFFFF
HANDLE = 0xD511_0000  # "d511:": our root qdisc (tbf, or netem)
CHILD_HANDLE = 0xD512_0000  # "d512:": our tbf under our netem
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
# netem's delay fields are 32-bit counts of 64 ns ticks: about 274 s at most.
MAX_NETEM_DELAY_S = 200.0

NO_NETEM = (
    'this kernel has no sch_netem (tc says "Specified qdisc kind is unknown"): install a kernel with '
    "CONFIG_NET_SCH_NETEM (Debian: linux-image-amd64; RHEL: kernel-modules-extra), or set the link's "
    "`engine:` to `userspace` or `auto` (drills' userspace engine applies the same parameters). A `rate` limit alone works on this kernel (tbf)."
)

NOTHING = "nothing to impair: give a parameter or a profile"

CapabilityLookup = Callable[[], Mapping[str, bool]]


# --------------------------------------------------------------------------- what is asked


def install_link_profile(handles: Handles, link: Link) -> None:
    """Deploy, kernel engine: the link's profile as our qdiscs on both ends, confirmed."""
    for d in profile_directions(link):
        if d.settings.empty:
            continue
        index = handles.index(d.end.node, d.end.name)
        _install(tc.Tc(handles.raw(d.end.node)), index, d)
        _confirm_installed(tc.Tc(handles.raw(d.end.node)), index, d)


def invalid(settings: Settings) -> list[str]:
    """What netem or tbf would refuse, checked before anything is applied: for a ramp or a
    handover, at every extreme its schedule reaches (timevarying.extremes)."""
    found: list[str] = []
    for steady in timevarying.extremes(settings):
        found += [message for message in _invalid_steady(steady) if message not in found]
    handover = settings.handover
    if handover is not None:
        if handover.every <= 0:
            found.append("handover needs a period (every) above 0")
        elif max(handover.loss_burst, handover.spike_length if handover.delay_spike else 0.0) >= handover.every:
            found.append("a handover's loss_burst and spike_length must be shorter than its period (every)")
    return found


def _invalid_steady(settings: Settings) -> list[str]:
    found = []
    delay_us, jitter_us = microseconds(settings.delay_s), microseconds(settings.jitter_s)
    if settings.delay_s and not delay_us:
        found.append("delay is below netem's resolution of 1 µs")
    if jitter_us and not delay_us:
        found.append("jitter needs a delay (netem varies the delay by up to the jitter)")
    if settings.correlation_pct and not (delay_us and jitter_us):
        found.append("correlation needs delay and jitter (it correlates successive delays)")
    if settings.distribution is not None and not (delay_us and jitter_us):
        found.append("distribution needs delay and jitter (it shapes the jitter)")
    if settings.reorder_pct and not delay_us:
        found.append("reorder needs a delay (reordered packets are the ones sent without it)")
    if settings.loss_pct and settings.loss_bursts is not None:
        found.append("loss and loss_bursts exclude each other (netem has one loss model)")
    if settings.delay_s + settings.jitter_s > MAX_NETEM_DELAY_S:
        found.append(f"delay plus jitter is above {MAX_NETEM_DELAY_S:g} s (netem counts it in 32-bit ticks)")
    return found


def not_applied_yet(settings: Settings) -> list[str]:
    """What the kernel path cannot apply in this version, even on a kernel with netem: nothing
    any more (distribution tables, Gilbert-Elliott loss, ramps and handovers all are). Kept as
    the place to name a future parameter before the kernel path learns it."""
    return []


# --------------------------------------------------------------------------- kernel integers


def microseconds(seconds: float) -> int:
    """Delays are applied with microsecond resolution (the scenario format's finest unit)."""
    return round(seconds * 1e6)


def rate_bytes_per_s(rate_bps: int) -> int:
    """tc rates are bytes per second; scenarios state bits per second."""
    return max(1, round(rate_bps / 8))


TbfSpec = tc.Tbf  # the name tests and the benchmark know


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
    """netem's options for one direction (time-varying parts at their start: see timevarying)."""
    s = timevarying.at_start(settings)
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


# --------------------------------------------------------------------------- the fault


@dataclass(frozen=True)
class LinkDegrade:
    """Impairments on one or both directions of a link, through the engine that serves it:
    qdiscs on the egress of each end (kernel), or the relay's control channel (userspace).
    Revert goes back to the link's own profile, or to nothing."""

    link: Link
    directions: tuple[Direction, ...]
    profile: str | None = None
    reversible: bool = True
    _relay: dict[str, RelayControl | None] = field(default_factory=dict, compare=False, repr=False)
    # Ramps and handovers: the driver playing them while the degrade is applied (timevarying).
    clock: Clock = field(default_factory=SystemClock, compare=False, repr=False)
    _driver: dict[str, tuple[timevarying.Driver, Handles]] = field(default_factory=dict, compare=False, repr=False)
    _played: list[timevarying.ChangeRecord] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_step(cls, topology: Topology, step: Any) -> LinkDegrade:
        """The registered builder. It is given no scenario, so a `profile` is looked up among the
        built-in profiles; `requirements` refuses a step naming one the scenario redefines."""
        from drills.scenario.loader import builtin_profiles  # pydantic and YAML: only when building

        return cls.build(topology, step, builtin_profiles())

    @classmethod
    def build(cls, topology: Topology, step: model.Degrade, profiles: Mapping[str, model.Profile]) -> LinkDegrade:
        link = topology.link(step.link)
        directions = plan(link, step, profiles)
        for direction in directions:
            # What the kernel path cannot apply is refused by `requirements` and, should it get
            # this far, when applied through the kernel: the userspace engine applies it.
            wrong = invalid(direction.settings)
            if direction.settings.empty:
                wrong.append(NOTHING)
            if wrong:
                raise BadInput(f"degrade {direction.name} on link {link.name}: {'; '.join(wrong)}")
        return cls(link, directions, step.profile)

    def describe(self, reverted: bool = False) -> str:
        if reverted:
            ends = ", ".join(d.end.endpoint for d in self.directions)
            back = f"profile {self.link.profile}" if self.link.profile_spec is not None else "the default qdisc"
            return f"link {self.link.name}: degrade lifted ({ends} back to {back})"
        via = f" (profile {self.profile})" if self.profile else ""
        texts = {d.settings.text() for d in self.directions}
        if len(self.directions) == 2 and len(texts) == 1:
            return f"degrade link {self.link.name}{via}, both directions: {texts.pop()}"
        each = "; ".join(f"{d.name} {d.settings.text()}" for d in self.directions)
        return f"degrade link {self.link.name}{via}: {each}"

    def touches(self) -> list[str]:
        out = []
        for d in self.directions:
            qdisc = f"{d.end.endpoint} egress root qdisc ({_qdisc_text(d)})"
            relay = f"link {self.link.name} relay, direction {d.name} ({d.settings.text()})"
            # An `auto` link's engine depends on the host (see `drill plan`'s links): named as the kernel's.
            out.append(relay if self.link.engine == select.USERSPACE else qdisc)
        return out

    def relay(self, ctx: FaultContext) -> RelayControl | None:
        """The control channel of the link's relay, or None when the kernel serves the link
        (the run's directory holds no control socket for the link). Looked up once per fault;
        a relay that is there but does not answer is an error, not a reason to try qdiscs."""
        if "relay" not in self._relay:
            path = relay_control.socket_path(ctx.run_dir, self.link.name) if ctx.run_dir is not None else None
            self._relay["relay"] = RelayControl(path) if path is not None and os.path.lexists(path) else None
        return self._relay["relay"]

    def apply_settings(self, ctx: FaultContext, direction: Direction, settings: Settings) -> None:
        """Put `settings` in force on one direction, through the link's engine, confirmed: the
        callback for drivers of time-varying impairments (ramps, handovers)."""
        relay = self.relay(ctx)
        if relay is not None:
            relay.set(direction.name, from_settings(settings))
            return
        changed = replace(direction, settings=settings)
        index = ctx.handles.index(direction.end.node, direction.end.name)
        _install(_tc(ctx, direction.end.node), index, changed, in_place=True)
        _confirm_installed(_tc(ctx, direction.end.node), index, changed)

    def _start_driver(self, ctx: FaultContext) -> None:
        """Play the ramps and handovers, if any, from now. The driver's thread gets sockets of its
        own (a netlink socket serves one caller at a time; the clock thread keeps its own)."""
        if not any(timevarying.time_varying(d.settings) for d in self.directions) or "on" in self._driver:
            return
        handles = Handles(ctx.namespaces)
        private = replace(ctx, handles=handles)
        driver = timevarying.Driver(
            self.directions, lambda d, s: self.apply_settings(private, d, s), self.clock, ctx.log,
            label=f"degrade {self.link.name}",
        )  # fmt: skip
        self._driver["on"] = (driver, handles)
        driver.start()

    def _stop_driver(self) -> None:
        """Stop the driver before restoring: no change may land after the revert."""
        if "on" in self._driver:
            driver, handles = self._driver.pop("on")
            driver.stop()
            handles.close()
            self._played.extend(driver.records)

    def changes(self) -> list[timevarying.ChangeRecord]:
        """Every ramp or handover change played so far (for the run's step records)."""
        running = [record for driver, _h in self._driver.values() for record in driver.records]
        return [*self._played, *running]

    def apply(self, ctx: FaultContext) -> None:
        relay = self.relay(ctx)
        if relay is not None:
            for d in self.directions:
                # Confirmed: the relay reads them back. A ramp starts at its `from` (the driver plays the rest).
                relay.set(d.name, from_settings(timevarying.at_start(d.settings)))
            self._start_driver(ctx)
            return
        for d in self.directions:
            later = not_applied_yet(d.settings)
            if later:
                raise BackendError(f"degrade {d.name} on link {self.link.name}: the kernel path cannot apply {'; '.join(later)}")
        for d in self.directions:
            _install(_tc(ctx, d.end.node), ctx.handles.index(d.end.node, d.end.name), d)
        for d in self.directions:
            _confirm_installed(_tc(ctx, d.end.node), ctx.handles.index(d.end.node, d.end.name), d)
        self._start_driver(ctx)

    def revert(self, ctx: FaultContext) -> None:
        self._stop_driver()
        relay = self.relay(ctx)
        if relay is not None:
            base = profile_impairments(self.link)
            for d in self.directions:
                relay.set(d.name, base[d.name])
            relay.close()  # a later apply (a repeat) connects again
            self._relay.clear()
            return
        # Back to the link's own profile where it has one (installed at deploy), else to nothing.
        own = {d.name: d for d in profile_directions(self.link) if not d.settings.empty}
        for d in self.directions:
            if d.name in own:
                _install(_tc(ctx, d.end.node), ctx.handles.index(d.end.node, d.end.name), own[d.name])
            else:
                _remove(_tc(ctx, d.end.node), ctx.handles.index(d.end.node, d.end.name), d.end, ctx.log)
        for d in self.directions:
            if d.name in own:
                _confirm_installed(_tc(ctx, d.end.node), ctx.handles.index(d.end.node, d.end.name), own[d.name])
            else:
                _confirm_removed(_tc(ctx, d.end.node), ctx.handles.index(d.end.node, d.end.name), d.end)


register("degrade")(LinkDegrade.from_step)


def _qdisc_text(d: Direction) -> str:
    s = d.settings
    if not s.needs_netem:
        assert s.rate_bps is not None
        return f"tbf {rate_text(s.rate_bps)}, handle {handle_text(HANDLE)}"
    text = f"netem {replace(s, rate_bps=None).text()}, handle {handle_text(HANDLE)}"
    if s.rate_bps is not None:
        text += f"; its child tbf {rate_text(s.rate_bps)}, handle {handle_text(CHILD_HANDLE)}"
    return text


# --------------------------------------------------------------------------- qdiscs in the kernel

Qdisc = tc.Qdisc


def _tc(ctx: FaultContext, node: str) -> tc.Tc:
    """The qdisc requests of a node, on its struct-built rtnetlink socket."""
    return tc.Tc(ctx.handles.raw(node))


def read_qdiscs(control: tc.Tc, index: int) -> list[tc.Qdisc]:
    return control.qdiscs(index)


def _root(qdiscs: list[tc.Qdisc]) -> tc.Qdisc | None:
    return next((q for q in qdiscs if q.parent == TC_H_ROOT), None)


def _delete_ours(control: tc.Tc, index: int, endpoint: str) -> None:
    control.delete(index, HANDLE, TC_H_ROOT, f"{endpoint}: delete root qdisc {handle_text(HANDLE)}")


def _install(control: tc.Tc, index: int, d: Direction, in_place: bool = False) -> None:
    """Put our qdiscs for `d` on the egress root. A fresh install first deletes ours if present
    (a netem keeps a delay table it is not sent again); `in_place` changes ours without a gap
    (the time-varying driver: same kind, same table)."""
    endpoint, s = d.end.endpoint, d.settings
    kind = "netem" if s.needs_netem else "tbf"
    root = _root(read_qdiscs(control, index))
    if root is not None and root.handle not in (0, HANDLE):
        # A `replace` under another handle would destroy it: never touch a qdisc we did not create.
        raise BackendError(
            f"{endpoint} has a root qdisc drills did not create ({root.text()}); degrade leaves it alone: remove it or impair another link"
        )
    if root is not None and root.handle == HANDLE and (root.kind != kind or not in_place):
        _delete_ours(control, index, endpoint)  # the kernel refuses to change a qdisc's kind in place
    what = f"{endpoint}: {kind} on the egress root ({_qdisc_text(d)})"
    if kind == "netem":
        try:
            control.replace(index, HANDLE, TC_H_ROOT, netem_spec(s), what)
        except tc.MissingQdisc as exc:
            raise BackendError(f"{what}: {NO_NETEM}") from exc
        if s.rate_bps is not None:
            control.replace(index, CHILD_HANDLE, CHILD_PARENT, tbf_spec(s.rate_bps, d.end.mtu), what)
    else:
        assert s.rate_bps is not None
        control.replace(index, HANDLE, TC_H_ROOT, tbf_spec(s.rate_bps, d.end.mtu), what)


def _confirm_installed(control: tc.Tc, index: int, d: Direction) -> None:
    """The kernel shows our qdiscs with the options asked: kind, handle, parent, and every netem
    integer (the delay table excepted: the kernel never dumps it) or tbf's rate and queue."""
    endpoint, s = d.end.endpoint, d.settings
    qdiscs = read_qdiscs(control, index)
    root = _root(qdiscs)
    kind = "netem" if s.needs_netem else "tbf"
    if root is None or root.handle != HANDLE or root.kind != kind:
        shown = root.text() if root is not None else "none"
        raise BackendError(f"{endpoint}: the kernel shows root qdisc {shown}, not {kind} {handle_text(HANDLE)}")
    if kind == "netem":
        asked = netem_spec(s)
        if not isinstance(root.options, tc.Netem) or root.options.integers() != asked.integers():
            raise BackendError(f"{endpoint}: netem reads back as {root.options}, asked {asked}")
    if s.rate_bps is None:
        return
    tbf = root if kind == "tbf" else next((q for q in qdiscs if q.handle == CHILD_HANDLE), None)
    if tbf is None or tbf.kind != "tbf" or tbf.parent != (TC_H_ROOT if kind == "tbf" else CHILD_PARENT):
        raise BackendError(f"{endpoint}: the kernel shows no tbf {handle_text(CHILD_HANDLE)} under our netem")
    asked_rate = rate_bytes_per_s(s.rate_bps)
    shown_rate = tbf.options.rate_bytes_ps if isinstance(tbf.options, tc.Tbf) else None
    if shown_rate is None or abs(shown_rate - asked_rate) > max(1.0, asked_rate * RATE_READBACK_TOLERANCE):
        raise BackendError(f"{endpoint}: tbf rate reads back as {shown_rate} bytes/s, asked {asked_rate}")


def _remove(control: tc.Tc, index: int, end: Interface, log: Callable[[str], None]) -> None:
    root = _root(read_qdiscs(control, index))
    if root is not None and root.handle == HANDLE:
        _delete_ours(control, index, end.endpoint)  # our tbf child, if any, goes with it
    elif root is not None and root.handle != 0:
        log(f"{end.endpoint}: root qdisc {root.text()} is not ours; left alone")


def _confirm_removed(control: tc.Tc, index: int, end: Interface) -> None:
    left = [q for q in read_qdiscs(control, index) if q.handle in (HANDLE, CHILD_HANDLE)]
    if left:
        raise BackendError(f"{end.endpoint}: {', '.join(q.text() for q in left)} still there after reverting degrade")


# --------------------------------------------------------------------------- before deploying


def requirements(scenario: Scenario, capabilities: CapabilityLookup = doctor.capabilities) -> list[Problem]:
    """Every reason a `degrade` step or a link of `scenario` cannot run here, located in the file.

    Checked: parameter combinations netem or tbf would refuse (for ramps and handovers, at
    every extreme of their schedule); what the link's engine does not apply yet (nothing, now;
    `not_applied_yet` is where a future parameter goes); a
    profile the scenario redefines (the fault builder sees only the built-in ones); and, only when
    a choice depends on them, the host's capabilities (`capabilities` is called at most once):
    netem for anything but `rate` on a kernel-served link, tbf for `rate`, TUN/TAP for a userspace
    link. Each link's engine is chosen as deploy chooses it (`drills.userspace.select`). A host
    that could not be probed (no namespace: not root) is not a problem here: the run's preflight,
    as root, asks again. (The loader refuses overlapping degrades.)"""
    steps = [(i, s) for i, s in enumerate(scenario.source.timeline) if isinstance(s, model.Degrade)]
    links = scenario.topology.links
    if not steps and not any(link.engine != select.AUTO or link.profile_spec is not None for link in links):
        return []
    from drills.scenario.loader import builtin_profiles

    cached: dict[str, Mapping[str, bool]] = {}

    def caps() -> Mapping[str, bool]:
        if "caps" not in cached:
            cached["caps"] = capabilities()
        return cached["caps"]

    engines = select.engines(links, caps)
    probed = not cached or cached["caps"].get(doctor.NAMESPACES, True)
    problems = _link_requirements(scenario, engines, caps) if probed else []
    builtin = builtin_profiles()
    for i, step in steps:
        link = scenario.topology.link(step.link)
        userspace = engines[link.name] == select.USERSPACE
        directions = plan(link, step, scenario.profiles)
        if step.profile is not None and scenario.profiles.get(step.profile) != builtin.get(step.profile):
            problems.append(
                scenario.problem(
                    ("timeline", i, "profile"),
                    f"profile '{step.profile}' is defined in this scenario, but `drill run` applies only the built-in profiles yet; write its parameters on the step",
                )
            )
        messages = _per_direction(directions, lambda s: invalid(s) + ([NOTHING] if s.empty else []))
        if messages:
            problems.append(scenario.problem(("timeline", i), "; ".join(messages)))
        later = _per_direction(directions, userspace_not_applied_yet if userspace else not_applied_yet)
        if later:
            problems.append(scenario.problem(("timeline", i), f"not applied by `drill run` yet: {'; '.join(later)}"))
        if userspace:
            continue  # the relay applies every parameter; _link_requirements checked TUN/TAP
        needs = _unique(name for d in directions for name in d.settings.netem_parameters())
        rate = any(d.settings.rate_bps is not None for d in directions)
        if not needs and not rate:
            continue
        if not caps().get(doctor.NAMESPACES, True):
            continue
        if needs and not caps().get(doctor.NETEM, False):
            via = f" (from profile '{step.profile or link.profile}')" if step.profile or link.profile else ""
            verb = "needs" if len(needs) == 1 else "need"
            asked = (
                f" (link {link.name} asks for `engine: kernel`; the userspace engine, `engine: userspace` or `auto`, runs it here)"
                if link.engine == select.KERNEL and caps().get(doctor.TUNTAP, False)
                else ""
            )
            problems.append(
                scenario.problem(("timeline", i), f"{_join(needs)}{via} {verb} the netem qdisc, and {NO_NETEM}{asked}")
            )
        if rate and not caps().get(doctor.TBF, False):
            problems.append(
                scenario.problem(
                    ("timeline", i),
                    "rate needs the tbf qdisc, and this kernel has none: use a kernel with CONFIG_NET_SCH_TBF",
                )
            )
    return problems


def userspace_not_applied_yet(settings: Settings) -> list[str]:
    """What the userspace engine cannot apply in this version: nothing (ramps and handovers are
    played by the timevarying driver through the relay's control channel)."""
    return []


def _link_requirements(
    scenario: Scenario, engines: Mapping[str, str], caps: Callable[[], Mapping[str, bool]]
) -> list[Problem]:
    """A link asking for the kernel engine on a kernel without netem while its profile or a
    degrade step needs netem; a userspace link on a host without TUN/TAP."""
    problems = []
    for i, link in enumerate(scenario.topology.links):
        engine = engines[link.name]
        if engine == select.USERSPACE and not caps().get(doctor.TUNTAP, False):
            problems.append(
                scenario.problem(
                    ("topology", "links", i, "engine"),
                    f"link {link.name} needs the userspace engine (TAP devices), and this host has no /dev/net/tun: "
                    "load the tun module or give the container --device /dev/net/tun",
                )
            )
        profile_netem = select.impairment_needs_netem(link.profile_spec)
        if link.engine == select.KERNEL and profile_netem and not caps().get(doctor.NETEM, False):
            problems.append(
                scenario.problem(
                    ("topology", "links", i, "engine"),
                    f"link {link.name} asks for `engine: kernel`, and its profile '{link.profile}' needs netem; {NO_NETEM}",
                )
            )
    return problems


def _per_direction(directions: tuple[Direction, ...], check: Callable[[Settings], list[str]]) -> list[str]:
    """Messages of `check` for each direction; named by direction when they differ."""
    found = [(d.name, check(d.settings)) for d in directions]
    if len(found) == 2 and found[0][1] == found[1][1]:
        return found[0][1]
    if len(found) == 1:
        return found[0][1]
    return [f"{name}: {message}" for name, messages in found for message in messages]


# --------------------------------------------------------------------------- text


def handle_text(handle: int) -> str:
    return f"{handle >> 16:x}:"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

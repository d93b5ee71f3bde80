"""`degrade`: impair one or both directions of a link with the kernel's qdiscs.

Direction a-to-b is the traffic from a link's first endpoint to its second: it is impaired on
the egress of endpoint a (a's root qdisc); b-to-a on the egress of b. A step's `profile` gives
the starting values (its `reverse` overrides them for b-to-a); parameters written on the step
override both.

What goes into the kernel:
- `rate` alone: one tbf qdisc (works on every kernel drills has met, this one included);
- anything else (delay, jitter, loss, ...): a netem qdisc, with a tbf child for `rate` (the
  recipe of tc-netem(8); pyroute2 0.9.7 cannot encode netem's own rate attribute: TypeError).

Our qdiscs carry fixed handles, `d511:` at the root and `d512:` for the tbf under netem ("d5"
for drills; no tool we know picks these), so that revert can tell ours from anyone else's: it
deletes the root qdisc only when its handle is ours, which also takes our child with it and
gives the interface back its default qdisc. Apply refuses an interface whose root qdisc is
somebody else's: `replace` with another handle would silently destroy it.

The qdisc calls go through the namespace's rtnetlink handle (pyroute2), with every failure
translated into `BackendError` here. The netem path cannot be exercised on kernels without
sch_netem (see `requirements`, which refuses such steps before anything is deployed).
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from drills import doctor
from drills.engine.faults import FaultContext, find_link, register
from drills.errors import BackendError, BadInput, DrillError, Problem
from drills.netns import kernel
from drills.scenario import model
from drills.scenario.resolved import Interface, Link, Scenario, Topology

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
# pyroute2 0.9.7 sends tbf's 32-bit rate only (no TCA_TBF_RATE64): at most 2**32-1 bytes/s.
MAX_RATE_BPS = (2**32 - 1) * 8
RATE_READBACK_TOLERANCE = 0.001  # the kernel reports the rate it stores: equal but for rounding

# netem. Its queue must hold every packet in flight through the delay, or it drops packets the
# scenario did not ask to lose; its default of 1000 packets would at GEO delays above about
# 40 Mbit/s. We size it for `delay + jitter` of 1500-byte frames at 1 Gbit/s, within bounds.
NETEM_SIZING_BPS = 1_000_000_000
NETEM_LIMIT_MIN_PACKETS = 1000
NETEM_LIMIT_MAX_PACKETS = 100_000
# netem's delay fields are 32-bit counts of 64 ns ticks: about 274 s at most.
MAX_NETEM_DELAY_S = 200.0

NETEM_PARAMETERS = (
    "delay",
    "jitter",
    "distribution",
    "correlation",
    "loss",
    "loss_bursts",
    "duplicate",
    "corrupt",
    "reorder",
    "ramp",
    "handover",
)
_IMPAIRMENT_FIELDS = (*NETEM_PARAMETERS[:9], "rate")

NO_NETEM = (
    'this kernel has no sch_netem (tc says "Specified qdisc kind is unknown"): install a kernel with '
    "CONFIG_NET_SCH_NETEM (Debian: linux-image-amd64; RHEL: kernel-modules-extra), or use the userspace "
    "engine (planned). A `rate` limit alone works on this kernel (tbf)."
)

NOTHING = "nothing to impair: give a parameter or a profile"

CapabilityLookup = Callable[[], Mapping[str, bool]]


# --------------------------------------------------------------------------- what is asked


@dataclass(frozen=True)
class Settings:
    """The impairments of one direction, in scenario units; 0 or None means untouched."""

    delay_s: float = 0.0
    jitter_s: float = 0.0
    distribution: str | None = None
    correlation_pct: float = 0.0
    loss_pct: float = 0.0
    loss_bursts: model.GilbertElliott | None = None
    duplicate_pct: float = 0.0
    corrupt_pct: float = 0.0
    reorder_pct: float = 0.0
    rate_bps: int | None = None
    ramp: model.Ramp | None = None
    handover: model.Handover | None = None

    def netem_parameters(self) -> list[str]:
        """The parameters asked for (non-zero) that only netem can apply, as named in scenarios."""
        values = (
            self.delay_s, self.jitter_s, self.distribution, self.correlation_pct, self.loss_pct,
            self.loss_bursts, self.duplicate_pct, self.corrupt_pct, self.reorder_pct, self.ramp, self.handover,
        )  # fmt: skip
        return [name for name, value in zip(NETEM_PARAMETERS, values, strict=True) if value]

    @property
    def needs_netem(self) -> bool:
        return bool(self.netem_parameters())

    @property
    def empty(self) -> bool:
        return not self.needs_netem and self.rate_bps is None

    def text(self) -> str:
        parts = []
        if self.delay_s:
            parts.append(f"delay {_duration_text(self.delay_s)}")
        if self.jitter_s:
            shape = f" ({self.distribution})" if self.distribution else ""
            parts.append(f"jitter {_duration_text(self.jitter_s)}{shape}")
        for name, pct in (
            ("correlation", self.correlation_pct),
            ("loss", self.loss_pct),
            ("duplicate", self.duplicate_pct),
            ("corrupt", self.corrupt_pct),
            ("reorder", self.reorder_pct),
        ):
            if pct:
                parts.append(f"{name} {pct:g} %")
        if self.loss_bursts is not None:
            parts.append(f"loss bursts (p {self.loss_bursts.p:g} %, r {self.loss_bursts.r:g} %)")
        if self.ramp is not None:
            ramp = self.ramp
            parts.append(
                f"delay ramp {_duration_text(ramp.delay_from)} to {_duration_text(ramp.delay_to)} over {ramp.over:g} s"
            )
        if self.handover is not None:
            parts.append(f"handover every {self.handover.every:g} s")
        if self.rate_bps is not None:
            parts.append(f"rate {rate_text(self.rate_bps)}")
        return ", ".join(parts) or "nothing"


def settings_for(step: model.Degrade, profile: model.Profile | None, *, reverse: bool) -> Settings:
    """One direction's settings: the profile's values, then (b-to-a) its `reverse`, then the step's."""
    values: dict[str, Any] = {}
    layers: list[model.Impairment | None] = [profile, profile.reverse if profile and reverse else None, step]
    for layer in layers:
        if layer is None:
            continue
        for name in _IMPAIRMENT_FIELDS:
            value = getattr(layer, name)
            if value is not None:
                values[name] = value
    return Settings(
        delay_s=float(values.get("delay", 0.0)),
        jitter_s=float(values.get("jitter", 0.0)),
        distribution=values.get("distribution"),
        correlation_pct=float(values.get("correlation", 0.0)),
        loss_pct=float(values.get("loss", 0.0)),
        loss_bursts=values.get("loss_bursts"),
        duplicate_pct=float(values.get("duplicate", 0.0)),
        corrupt_pct=float(values.get("corrupt", 0.0)),
        reorder_pct=float(values.get("reorder", 0.0)),
        rate_bps=values.get("rate"),
        ramp=step.ramp,
        handover=profile.handover if profile is not None else None,
    )


@dataclass(frozen=True)
class Direction:
    """One impaired direction: `settings` applied on the egress of `end`, towards `peer`."""

    name: str  # "a-to-b" | "b-to-a"
    end: Interface
    peer: Interface
    settings: Settings


def plan(link: Link, step: model.Degrade, profiles: Mapping[str, model.Profile]) -> tuple[Direction, ...]:
    """The directions a step impairs, each with its merged settings."""
    profile = profiles[step.profile] if step.profile is not None else None
    directions = []
    if step.direction in ("both", "a-to-b"):
        directions.append(Direction("a-to-b", link.a, link.b, settings_for(step, profile, reverse=False)))
    if step.direction in ("both", "b-to-a"):
        directions.append(Direction("b-to-a", link.b, link.a, settings_for(step, profile, reverse=True)))
    return tuple(directions)


def invalid(settings: Settings) -> list[str]:
    """What netem or tbf would refuse (pyroute2 raises a bare Exception for some): checked first."""
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
    if settings.rate_bps is not None and settings.rate_bps > MAX_RATE_BPS:
        found.append(f"rate {rate_text(settings.rate_bps)} is above tbf's {rate_text(MAX_RATE_BPS)} (32-bit bytes/s)")
    return found


def not_applied_yet(settings: Settings) -> list[str]:
    """What the kernel path cannot apply in this version, even on a kernel with netem."""
    found = []
    if settings.distribution not in (None, "uniform"):  # uniform is netem's own, without a table
        found.append(f"distribution {settings.distribution} (pyroute2 0.9.7 cannot send netem's distribution table)")
    if settings.loss_bursts is not None:
        found.append("loss_bursts (pyroute2 0.9.7 cannot send netem's Gilbert-Elliott loss model)")
    if settings.ramp is not None:
        found.append("ramp (a delay changing over time needs a driver the engine has not got yet)")
    if settings.handover is not None:
        found.append("handover (periodic delay spikes and loss bursts need a driver the engine has not got yet)")
    return found


# --------------------------------------------------------------------------- kernel integers


def microseconds(seconds: float) -> int:
    """netem's delay and jitter are integer microseconds (pyroute2 turns them into ticks)."""
    return round(seconds * 1e6)


def rate_bytes_per_s(rate_bps: int) -> int:
    """pyroute2 takes tc rates in bytes per second; scenarios state bits per second."""
    return max(1, round(rate_bps / 8))


@dataclass(frozen=True)
class TbfSpec:
    """A tbf qdisc, in the kernel's units."""

    rate_bytes_ps: int
    burst_bytes: int
    limit_bytes: int

    def options(self) -> dict[str, int]:
        return {"rate": self.rate_bytes_ps, "burst": self.burst_bytes, "limit": self.limit_bytes}


def tbf_spec(rate_bps: int, mtu: int | None) -> TbfSpec:
    rate = rate_bytes_per_s(rate_bps)
    frame = (mtu or DEFAULT_MTU) + ETHERNET_HEADER_BYTES
    burst = max(math.ceil(rate * TBF_BURST_S), 2 * frame)
    return TbfSpec(rate, burst, burst + math.ceil(rate * TBF_LATENCY_S))


def netem_limit_packets(settings: Settings) -> int:
    in_flight = (settings.delay_s + settings.jitter_s) * NETEM_SIZING_BPS / 8 / (DEFAULT_MTU + ETHERNET_HEADER_BYTES)
    return min(max(math.ceil(in_flight), NETEM_LIMIT_MIN_PACKETS), NETEM_LIMIT_MAX_PACKETS)


def netem_options(settings: Settings) -> dict[str, int | float]:
    """pyroute2's netem keywords: microseconds as integers, percentages as given."""
    options: dict[str, int | float] = {"limit": netem_limit_packets(settings)}
    if settings.delay_s:
        options["delay"] = microseconds(settings.delay_s)
    if settings.jitter_s:
        options["jitter"] = microseconds(settings.jitter_s)
    for keyword, pct in (
        ("delay_corr", settings.correlation_pct),
        ("loss", settings.loss_pct),
        ("duplicate", settings.duplicate_pct),
        ("prob_corrupt", settings.corrupt_pct),
        ("prob_reorder", settings.reorder_pct),
    ):
        if pct:
            options[keyword] = pct
    return options


# --------------------------------------------------------------------------- the fault


@dataclass(frozen=True)
class LinkDegrade:
    """Impairments on one or both directions of a link, as qdiscs on the egress of each end."""

    link: Link
    directions: tuple[Direction, ...]
    profile: str | None = None
    reversible: bool = True

    @classmethod
    def from_step(cls, topology: Topology, step: Any) -> LinkDegrade:
        """The registered builder. It is given no scenario, so a `profile` is looked up among the
        built-in profiles; `requirements` refuses a step naming one the scenario redefines."""
        from drills.scenario.loader import builtin_profiles  # pydantic and YAML: only when building

        return cls.build(topology, step, builtin_profiles())

    @classmethod
    def build(cls, topology: Topology, step: model.Degrade, profiles: Mapping[str, model.Profile]) -> LinkDegrade:
        link = find_link(topology, step.link)
        directions = plan(link, step, profiles)
        for direction in directions:
            wrong = invalid(direction.settings) + not_applied_yet(direction.settings)
            if direction.settings.empty:
                wrong.append(NOTHING)
            if wrong:
                raise BadInput(f"degrade {direction.name} on link {link.name}: {'; '.join(wrong)}")
        return cls(link, directions, step.profile)

    def describe(self, reverted: bool = False) -> str:
        if reverted:
            ends = ", ".join(d.end.endpoint for d in self.directions)
            return f"link {self.link.name}: degrade lifted ({ends} back to the default qdisc)"
        via = f" (profile {self.profile})" if self.profile else ""
        texts = {d.settings.text() for d in self.directions}
        if len(self.directions) == 2 and len(texts) == 1:
            return f"degrade link {self.link.name}{via}, both directions: {texts.pop()}"
        each = "; ".join(f"{d.name} {d.settings.text()}" for d in self.directions)
        return f"degrade link {self.link.name}{via}: {each}"

    def touches(self) -> list[str]:
        return [f"{d.end.endpoint} egress root qdisc ({_qdisc_text(d)})" for d in self.directions]

    def apply(self, ctx: FaultContext) -> None:
        for d in self.directions:
            _install(ctx.handles.of(d.end.node), ctx.handles.index(d.end.node, d.end.name), d)
        for d in self.directions:
            _confirm_installed(ctx.handles.of(d.end.node), ctx.handles.index(d.end.node, d.end.name), d)

    def revert(self, ctx: FaultContext) -> None:
        for d in self.directions:
            _remove(ctx.handles.of(d.end.node), ctx.handles.index(d.end.node, d.end.name), d.end, ctx.log)
        for d in self.directions:
            _confirm_removed(ctx.handles.of(d.end.node), ctx.handles.index(d.end.node, d.end.name), d.end)


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


@dataclass(frozen=True)
class Qdisc:
    """A qdisc as the kernel shows it."""

    kind: str
    handle: int
    parent: int
    rate_bytes_ps: int | None = None  # tbf only

    def text(self) -> str:
        return f"{self.kind} {handle_text(self.handle)}"


def read_qdiscs(ipr: Any, index: int) -> list[Qdisc]:
    with kernel.netlink_errors(f"read the qdiscs of interface {index}"):
        messages = ipr.get_qdiscs(index=index)
    found = []
    for msg in messages:
        if int(msg["index"]) != index:
            continue
        kind = str(msg.get_attr("TCA_KIND"))
        rate = None
        if kind == "tbf":
            options = msg.get_attr("TCA_OPTIONS")
            parms = options.get_attr("TCA_TBF_PARMS") if options is not None else None
            rate = int(parms["rate"]) if parms is not None else None
        found.append(Qdisc(kind, int(msg["handle"]), int(msg["parent"]), rate))
    return found


def _root(qdiscs: list[Qdisc]) -> Qdisc | None:
    return next((q for q in qdiscs if q.parent == TC_H_ROOT), None)


@contextmanager
def _tc_errors(what: str, kind: str) -> Iterator[None]:
    try:
        with kernel.netlink_errors(what):
            yield
    except BackendError as exc:
        if kind == "netem" and getattr(exc.__cause__, "code", None) == errno.ENOENT:
            raise BackendError(f"{what}: {NO_NETEM}") from exc.__cause__
        raise
    except DrillError:  # Aborted by a signal: not a refusal
        raise
    except Exception as exc:  # pyroute2 raises a bare Exception (or TypeError) for what it cannot encode
        raise BackendError(f"{what}: pyroute2 refused the parameters ({type(exc).__name__}: {exc})") from exc


def _replace(ipr: Any, kind: str, index: int, handle: int, parent: int, options: Mapping[str, Any], what: str) -> None:
    with _tc_errors(what, kind):
        ipr.tc("replace", kind, index, handle, parent=parent, **options)


def _delete_ours(ipr: Any, index: int, endpoint: str) -> None:
    with _tc_errors(f"{endpoint}: delete root qdisc {handle_text(HANDLE)}", "del"):
        ipr.tc("del", index=index, handle=HANDLE, parent=TC_H_ROOT)


def _install(ipr: Any, index: int, d: Direction) -> None:
    endpoint, s = d.end.endpoint, d.settings
    kind = "netem" if s.needs_netem else "tbf"
    root = _root(read_qdiscs(ipr, index))
    if root is not None and root.handle not in (0, HANDLE):
        # A `replace` under another handle would destroy it: never touch a qdisc we did not create.
        raise BackendError(
            f"{endpoint} has a root qdisc drills did not create ({root.text()}); degrade leaves it alone: remove it or impair another link"
        )
    if root is not None and root.handle == HANDLE and root.kind != kind:
        _delete_ours(ipr, index, endpoint)  # the kernel refuses to change a qdisc's kind in place
    what = f"{endpoint}: {kind} on the egress root ({_qdisc_text(d)})"
    if kind == "netem":
        _replace(ipr, "netem", index, HANDLE, TC_H_ROOT, netem_options(s), what)
        if s.rate_bps is not None:
            spec = tbf_spec(s.rate_bps, d.end.mtu)
            _replace(ipr, "tbf", index, CHILD_HANDLE, CHILD_PARENT, spec.options(), what)
    else:
        assert s.rate_bps is not None
        _replace(ipr, "tbf", index, HANDLE, TC_H_ROOT, tbf_spec(s.rate_bps, d.end.mtu).options(), what)


def _confirm_installed(ipr: Any, index: int, d: Direction) -> None:
    endpoint, s = d.end.endpoint, d.settings
    qdiscs = read_qdiscs(ipr, index)
    root = _root(qdiscs)
    kind = "netem" if s.needs_netem else "tbf"
    if root is None or root.handle != HANDLE or root.kind != kind:
        shown = root.text() if root is not None else "none"
        raise BackendError(f"{endpoint}: the kernel shows root qdisc {shown}, not {kind} {handle_text(HANDLE)}")
    if s.rate_bps is None:
        return
    tbf = root if kind == "tbf" else next((q for q in qdiscs if q.handle == CHILD_HANDLE), None)
    if tbf is None or tbf.kind != "tbf" or tbf.parent != (TC_H_ROOT if kind == "tbf" else CHILD_PARENT):
        raise BackendError(f"{endpoint}: the kernel shows no tbf {handle_text(CHILD_HANDLE)} under our netem")
    asked = rate_bytes_per_s(s.rate_bps)
    shown_rate = tbf.rate_bytes_ps
    if shown_rate is None or abs(shown_rate - asked) > max(1.0, asked * RATE_READBACK_TOLERANCE):
        raise BackendError(f"{endpoint}: tbf rate reads back as {shown_rate} bytes/s, asked {asked}")


def _remove(ipr: Any, index: int, end: Interface, log: Callable[[str], None]) -> None:
    root = _root(read_qdiscs(ipr, index))
    if root is not None and root.handle == HANDLE:
        _delete_ours(ipr, index, end.endpoint)  # our tbf child, if any, goes with it
    elif root is not None and root.handle != 0:
        log(f"{end.endpoint}: root qdisc {root.text()} is not ours; left alone")


def _confirm_removed(ipr: Any, index: int, end: Interface) -> None:
    left = [q for q in read_qdiscs(ipr, index) if q.handle in (HANDLE, CHILD_HANDLE)]
    if left:
        raise BackendError(f"{end.endpoint}: {', '.join(q.text() for q in left)} still there after reverting degrade")


# --------------------------------------------------------------------------- before deploying


def requirements(scenario: Scenario, capabilities: CapabilityLookup = doctor.capabilities) -> list[Problem]:
    """Every reason a `degrade` step of `scenario` cannot run here, located in the file.

    Checked: parameter combinations netem or tbf would refuse; what the kernel path does not apply
    yet (distribution tables, loss_bursts, ramp, handover); a profile the scenario redefines
    (the fault builder sees only the built-in ones); and, only when some step is a degrade, the
    host's capabilities (`capabilities` is called at most once): netem for anything but `rate`,
    tbf for `rate`. A host that could not be probed (no namespace: not root) is not a problem
    here: the run's preflight, as root, asks again. (The loader refuses overlapping degrades.)"""
    steps = [(i, s) for i, s in enumerate(scenario.source.timeline) if isinstance(s, model.Degrade)]
    if not steps:
        return []
    from drills.scenario.loader import builtin_profiles

    builtin = builtin_profiles()
    problems: list[Problem] = []
    caps: Mapping[str, bool] | None = None
    for i, step in steps:
        directions = plan(find_link(scenario.topology, step.link), step, scenario.profiles)
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
        later = _per_direction(directions, not_applied_yet)
        if later:
            problems.append(scenario.problem(("timeline", i), f"not applied by `drill run` yet: {'; '.join(later)}"))
        needs = _unique(name for d in directions for name in d.settings.netem_parameters())
        rate = any(d.settings.rate_bps is not None for d in directions)
        if not needs and not rate:
            continue
        caps = capabilities() if caps is None else caps
        if not caps.get(doctor.NAMESPACES, True):
            continue
        if needs and not caps.get(doctor.NETEM, False):
            via = f" (from profile '{step.profile}')" if step.profile else ""
            verb = "needs" if len(needs) == 1 else "need"
            problems.append(
                scenario.problem(("timeline", i), f"{_join(needs)}{via} {verb} the netem qdisc, and {NO_NETEM}")
            )
        if rate and not caps.get(doctor.TBF, False):
            problems.append(
                scenario.problem(
                    ("timeline", i),
                    "rate needs the tbf qdisc, and this kernel has none: use a kernel with CONFIG_NET_SCH_TBF",
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


def rate_text(rate_bps: int) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if rate_bps >= scale:
            return f"{rate_bps / scale:g} {unit}"
    return f"{rate_bps} bit/s"


def handle_text(handle: int) -> str:
    return f"{handle >> 16:x}:"


def _duration_text(seconds: float) -> str:
    return f"{seconds * 1e3:g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:g} µs"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

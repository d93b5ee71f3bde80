"""What an impairment is, in scenario units: one direction's settings, and how a step's
parameters layer over a link's profile. A leaf: the engine, the backends (kernel qdiscs, the
userspace relay) and the resolver all read these records; it leans on nothing but them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drills.scenario import model
    from drills.scenario.resolved import Interface, Link

RAMP_STEP_MIN_S = 0.1  # at most ten changes a second
RAMP_STEP_MIN_DELAY_S = 0.001  # and none smaller than 1 ms of delay

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

# netem's delay fields are 32-bit counts of 64 ns ticks: about 274 s at most. A limit of the
# kernel engine, checked before anything is deployed (the relay keeps to it too).
MAX_NETEM_DELAY_S = 200.0

NO_NETEM = (
    'this kernel has no sch_netem (tc says "Specified qdisc kind is unknown"): install a kernel with '
    "CONFIG_NET_SCH_NETEM (Debian: linux-image-amd64; RHEL: kernel-modules-extra), or set the link's "
    "`engine:` to `userspace` or `auto` (drills' userspace engine applies the same parameters). A `rate` limit alone works on this kernel (tbf)."
)

# The kernel engine's qdiscs carry fixed handles, "d511:" at the root and "d512:" for a tbf under
# netem ("d5" for drills; no tool we know picks these), so that a revert tells ours from anyone
# else's. Named here because `drill plan` shows them before any backend exists.
QDISC_HANDLE = 0xD511_0000
QDISC_CHILD_HANDLE = 0xD512_0000


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
            parts.append(f"delay {duration_text(self.delay_s)}")
        if self.jitter_s:
            shape = f" ({self.distribution})" if self.distribution else ""
            parts.append(f"jitter {duration_text(self.jitter_s)}{shape}")
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
            steps = ramp_steps(ramp)
            pace = f", {steps} steps every {duration_text(ramp.over / steps)}" if steps > 1 else ""
            parts.append(
                f"delay ramp {duration_text(ramp.delay_from)} to {duration_text(ramp.delay_to)} over {ramp.over:g} s{pace}"
            )
        if self.handover is not None:
            h = self.handover
            events = ([f"+{duration_text(h.delay_spike)} for {duration_text(h.spike_length)}"] if h.delay_spike else [])
            events += [f"all lost for {duration_text(h.loss_burst)}"] if h.loss_burst else []
            parts.append(f"handover every {h.every:g} s ({', '.join(events) or 'nothing'})")
        if self.rate_bps is not None:
            parts.append(f"rate {rate_text(self.rate_bps)}")
        return ", ".join(parts) or "nothing"


def settings_for(step: model.Degrade | None, profile: model.Profile | None, *, reverse: bool) -> Settings:
    """One direction's settings: the profile's values, then (b-to-a) its `reverse`, then the
    step's (None: the profile alone, as deploy installs it)."""
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
        ramp=step.ramp if step is not None else None,
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
    """The directions a step impairs, each with its merged settings. A step composes with the
    link's own profile (applied at deploy): its parameters override the profile's, and a step's
    `profile` replaces the link's."""
    profile = profiles[step.profile] if step.profile is not None else link.profile_spec
    directions = []
    if step.direction in ("both", "a-to-b"):
        directions.append(Direction("a-to-b", link.a, link.b, settings_for(step, profile, reverse=False)))
    if step.direction in ("both", "b-to-a"):
        directions.append(Direction("b-to-a", link.b, link.a, settings_for(step, profile, reverse=True)))
    return tuple(directions)


def profile_directions(link: Link) -> tuple[Direction, ...]:
    """The link's own profile as two directions, steady (a handover of the profile is played only
    while a degrade step on the link is applied): what deploy installs and revert goes back to.
    Empty when the link has no profile."""
    if link.profile_spec is None:
        return ()
    return tuple(
        Direction(name, end, peer, steady(settings_for(None, link.profile_spec, reverse=reverse)))
        for name, end, peer, reverse in (("a-to-b", link.a, link.b, False), ("b-to-a", link.b, link.a, True))
    )


def steady(settings: Settings) -> Settings:
    """The settings without their time-varying parts: what an engine can put in force at once."""
    return replace(settings, ramp=None, handover=None)


def at_start(settings: Settings) -> Settings:
    """What is in force when an impairment is applied: steady, at the ramp's `from` delay, no
    handover yet (a driver plays the rest on the drill clock)."""
    base = steady(settings)
    return base if settings.ramp is None else replace(base, delay_s=settings.ramp.delay_from)


def microseconds(seconds: float) -> int:
    """Delays are applied with microsecond resolution (the scenario format's finest unit)."""
    return round(seconds * 1e6)


def impairment_needs_netem(layer: Any) -> bool:
    """True when a profile, its `reverse`, or a degrade step sets a parameter only netem (or the
    relay) applies; `rate` alone is tbf's."""
    if layer is None:
        return False
    if any(getattr(layer, name, None) for name in NETEM_PARAMETERS[:9]):
        return True
    if getattr(layer, "ramp", None) is not None or getattr(layer, "handover", None) is not None:
        return True
    return impairment_needs_netem(getattr(layer, "reverse", None))


def ramp_steps(ramp: model.Ramp) -> int:
    """How many changes a ramp takes (0: none, it is flat or instant)."""
    span_s = abs(ramp.delay_to - ramp.delay_from)
    if span_s == 0:
        return 0
    if ramp.over <= 0:
        return 1
    # The epsilon keeps 10 ms / 1 ms at 10 steps (binary fractions make it 9.999...).
    by_time = math.floor(ramp.over / RAMP_STEP_MIN_S + 1e-9)
    by_delay = math.floor(span_s / RAMP_STEP_MIN_DELAY_S + 1e-9)
    return max(1, min(by_time, by_delay))


def degraded_with_netem(steps: Iterable[Any], profiles: Mapping[str, model.Profile], link_refs: set[str]) -> bool:
    """Whether a degrade step naming the link (by any of `link_refs`) needs netem parameters."""
    for step in steps:
        if getattr(step, "fault", None) != "degrade" or getattr(step, "link", None) not in link_refs:
            continue
        profile = profiles.get(step.profile) if getattr(step, "profile", None) else None
        if impairment_needs_netem(step) or impairment_needs_netem(profile):
            return True
    return False


def rate_text(rate_bps: int) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if rate_bps >= scale:
            return f"{rate_bps / scale:g} {unit}"
    return f"{rate_bps} bit/s"


def duration_text(seconds: float) -> str:
    return f"{seconds * 1e3:g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:g} µs"


def handle_text(handle: int) -> str:
    return f"{handle >> 16:x}:"


def qdisc_text(settings: Settings) -> str:
    """The kernel engine's qdiscs for one direction, as `drill plan` and messages show them."""
    s = settings
    if not s.needs_netem:
        assert s.rate_bps is not None
        return f"tbf {rate_text(s.rate_bps)}, handle {handle_text(QDISC_HANDLE)}"
    text = f"netem {replace(s, rate_bps=None).text()}, handle {handle_text(QDISC_HANDLE)}"
    if s.rate_bps is not None:
        text += f"; its child tbf {rate_text(s.rate_bps)}, handle {handle_text(QDISC_CHILD_HANDLE)}"
    return text

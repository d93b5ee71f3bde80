"""Which engine serves a link: `kernel` (a veth pair, qdiscs for impairments) or `userspace`
(two TAPs and a relay process).

A link asks for `engine: kernel | userspace | auto` (default `auto`). `auto` picks the kernel
when it has netem; on a kernel without netem it picks userspace only for the links that need
netem's parameters (their profile, or a degrade step on them): a link never impaired, or only
rate-limited (tbf works everywhere), stays a veth pair, the fastest path. The choice needs the
host's capabilities, so it is made where they are known: at preflight (`drill validate`, `drill
plan`, `drill run`) for checking and display, and at deploy for building.

This module reads the scenario model only: the loader uses it to mark the links a degrade step
impairs with netem parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drills.scenario import model
    from drills.scenario.resolved import Link

KERNEL = "kernel"
USERSPACE = "userspace"
AUTO = "auto"
ENGINES = (KERNEL, USERSPACE, AUTO)

# Parameters only netem (or the relay) applies; `rate` alone is tbf's.
_NETEM_FIELDS = ("delay", "jitter", "distribution", "correlation", "loss", "loss_bursts", "duplicate", "corrupt", "reorder")

CapabilityLookup = Callable[[], Mapping[str, bool]]


def impairment_needs_netem(layer: Any) -> bool:
    """True when a profile, its `reverse`, or a degrade step sets a netem-only parameter."""
    if layer is None:
        return False
    if any(getattr(layer, name, None) for name in _NETEM_FIELDS):
        return True
    if getattr(layer, "ramp", None) is not None or getattr(layer, "handover", None) is not None:
        return True
    return impairment_needs_netem(getattr(layer, "reverse", None))


def degraded_with_netem(steps: Iterable[Any], profiles: Mapping[str, model.Profile], link_refs: set[str]) -> bool:
    """Whether a degrade step naming the link (by any of `link_refs`) needs netem parameters."""
    for step in steps:
        if getattr(step, "fault", None) != "degrade" or getattr(step, "link", None) not in link_refs:
            continue
        profile = profiles.get(step.profile) if getattr(step, "profile", None) else None
        if impairment_needs_netem(step) or impairment_needs_netem(profile):
            return True
    return False


def needs_netem(link: Link) -> bool:
    return impairment_needs_netem(link.profile_spec) or link.degraded_netem


def choose(link: Link, has_netem: bool, has_tap: bool = True) -> str:
    """The engine that serves `link` on a host with (or without) netem and TUN/TAP. Without
    either, `auto` stays with the kernel, whose missing netem is then the problem reported."""
    if link.engine in (KERNEL, USERSPACE):
        return link.engine
    if has_netem or not has_tap or not needs_netem(link):
        return KERNEL
    return USERSPACE


def needs_probe(links: Iterable[Link]) -> bool:
    """Whether choosing needs to know if the kernel has netem (an `auto` link that wants it)."""
    return any(link.engine == AUTO and needs_netem(link) for link in links)


def engines(links: Iterable[Link], capabilities: CapabilityLookup) -> dict[str, str]:
    """Link name -> engine; asks `capabilities` (at most once) only when a choice depends on it."""
    chosen = list(links)
    has_netem, has_tap = False, True
    if needs_probe(chosen):
        from drills import doctor

        caps = capabilities()
        has_netem, has_tap = bool(caps.get(doctor.NETEM, False)), bool(caps.get(doctor.TUNTAP, False))
    return {link.name: choose(link, has_netem, has_tap) for link in chosen}


def reason(link: Link, engine: str) -> str:
    """Why `link` got `engine`, for `drill plan` and the report."""
    if link.engine != AUTO:
        return f"{engine} (asked for)"
    if engine == USERSPACE:
        return "userspace (auto: this kernel has no netem)"
    return "kernel (auto)"

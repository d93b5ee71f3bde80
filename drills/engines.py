"""Which engine serves a link: `kernel` (a veth pair, qdiscs for impairments) or `userspace`
(two TAPs and a relay process). A leaf: the engine's requirements, the backends' deploy and
`drill plan` all choose the same way from the same facts.

A link asks for `engine: kernel | userspace | auto` (default `auto`). `auto` picks the kernel
when it has netem; on a kernel without netem it picks userspace only for the links that need
netem's parameters (their profile, or a degrade step on them): a link never impaired, or only
rate-limited (tbf works everywhere), stays a veth pair, the fastest path. The choice needs the
host's capabilities, so it is made where they are known: at preflight (`drill validate`, `drill
plan`, `drill run`) for checking and display, and at deploy for building.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from drills.backend import NETEM, TUNTAP, CapabilityLookup
from drills.impairment import impairment_needs_netem

if TYPE_CHECKING:
    from drills.scenario.resolved import Link

KERNEL = "kernel"
USERSPACE = "userspace"
AUTO = "auto"
ENGINES = (KERNEL, USERSPACE, AUTO)


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
        caps = capabilities()
        has_netem, has_tap = bool(caps.get(NETEM, False)), bool(caps.get(TUNTAP, False))
    return {link.name: choose(link, has_netem, has_tap) for link in chosen}


def reason(link: Link, engine: str) -> str:
    """Why `link` got `engine`, for `drill plan` and the report."""
    if link.engine != AUTO:
        return f"{engine} (asked for)"
    if engine == USERSPACE:
        return "userspace (auto: this kernel has no netem)"
    return "kernel (auto)"

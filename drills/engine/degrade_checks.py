"""What a `degrade` step or a link's profile asks that cannot run: parameter combinations netem
or tbf would refuse (pure checks on the settings), and, against the capabilities a backend
declares, what this host lacks for the engine serving each link. Checked before anything is
deployed (`drill validate`, `drill plan`, `drill run`'s preflight) and, for the combinations,
again when a fault is built."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from drills.backend import NAMESPACES, NETEM, TBF, TUNTAP, Capabilities, CapabilityLookup
from drills.engine import timevarying
from drills.engines import AUTO, KERNEL, USERSPACE, engines
from drills.errors import Problem
from drills.impairment import MAX_NETEM_DELAY_S, NO_NETEM, Direction, Settings, impairment_needs_netem, microseconds
from drills.scenario.resolved import Scenario, is_segment_port
from drills.scenario.steps import DegradeStep

SEGMENT_NO_NETEM = (
    "this kernel has no sch_netem; a LAN segment's ports are served by the kernel only (no userspace engine): "
    "run on a kernel with CONFIG_NET_SCH_NETEM, degrade a point-to-point link instead, or limit only the `rate` (tbf)"
)

NOTHING = "nothing to impair: give a parameter or a profile"


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


# --------------------------------------------------------------------------- against the host


def requirements(scenario: Scenario, capabilities: CapabilityLookup) -> list[Problem]:
    """Every reason a `degrade` step or a link of `scenario` cannot run here, located in the file.

    Checked: parameter combinations netem or tbf would refuse (for ramps and handovers, at
    every extreme of their schedule); what the link's engine does not apply yet (nothing, now;
    `not_applied_yet` is where a future parameter goes); and, only when a choice depends on
    them, the capabilities the backend declares (`capabilities` is called at most once): netem
    for anything but `rate` on a kernel-served link, tbf for `rate`, TUN/TAP for a userspace
    link. Each link's engine is chosen as deploy chooses it (`drills.engines`). A host that could
    not be probed (no namespace: not root) is not a problem here: the run's preflight, as root,
    asks again. (The loader refuses overlapping degrades.) A step may name a profile the
    scenario defines: its resolved directions carry that profile's settings."""
    steps = [s for s in scenario.steps if isinstance(s, DegradeStep)]
    links = scenario.topology.links
    if not steps and not any(link.engine != AUTO or link.profile_spec is not None for link in links):
        return []
    cached: dict[str, Capabilities] = {}

    def caps() -> Capabilities:
        if "caps" not in cached:
            cached["caps"] = capabilities()
        return cached["caps"]

    chosen = engines(links, caps)
    probed = not cached or cached["caps"].get(NAMESPACES, True)
    problems = _link_requirements(scenario, chosen, caps) if probed else []
    for step in steps:
        link, at = step.link, ("timeline", step.index)
        userspace = chosen.get(link.name, KERNEL) == USERSPACE  # a segment member's port: the kernel's
        directions = step.directions
        messages = _per_direction(directions, lambda s: invalid(s) + ([NOTHING] if s.empty else []))
        if messages:
            problems.append(scenario.problem(at, "; ".join(messages)))
        later = _per_direction(directions, userspace_not_applied_yet if userspace else not_applied_yet)
        if later:
            problems.append(scenario.problem(at, f"not applied by `drill run` yet: {'; '.join(later)}"))
        if userspace:
            continue  # the relay applies every parameter; _link_requirements checked TUN/TAP
        needs = _unique(name for d in directions for name in d.settings.netem_parameters())
        rate = any(d.settings.rate_bps is not None for d in directions)
        if not needs and not rate:
            continue
        if not caps().get(NAMESPACES, True):
            continue
        if needs and not caps().get(NETEM, False):
            via = f" (from profile '{step.profile or link.profile}')" if step.profile or link.profile else ""
            verb = "needs" if len(needs) == 1 else "need"
            if is_segment_port(link):
                problems.append(scenario.problem(at, f"{_join(needs)} {verb} the netem qdisc, and {SEGMENT_NO_NETEM}"))
                continue
            asked = (
                f" (link {link.name} asks for `engine: kernel`; the userspace engine, `engine: userspace` or `auto`, runs it here)"
                if link.engine == KERNEL and caps().get(TUNTAP, False)
                else ""
            )
            problems.append(scenario.problem(at, f"{_join(needs)}{via} {verb} the netem qdisc, and {NO_NETEM}{asked}"))
        if rate and not caps().get(TBF, False):
            problems.append(
                scenario.problem(
                    at, "rate needs the tbf qdisc, and this kernel has none: use a kernel with CONFIG_NET_SCH_TBF"
                )
            )
    return problems


def userspace_not_applied_yet(settings: Settings) -> list[str]:
    """What the userspace engine cannot apply in this version: nothing (ramps and handovers are
    played by the timevarying driver through the relay's control channel)."""
    return []


def _link_requirements(scenario: Scenario, chosen: Mapping[str, str], caps: CapabilityLookup) -> list[Problem]:
    """A link asking for the kernel engine on a kernel without netem while its profile or a
    degrade step needs netem; a userspace link on a host without TUN/TAP."""
    problems = []
    for i, link in enumerate(scenario.topology.links):
        engine = chosen[link.name]
        if engine == USERSPACE and not caps().get(TUNTAP, False):
            problems.append(
                scenario.problem(
                    ("topology", "links", i, "engine"),
                    f"link {link.name} needs the userspace engine (TAP devices), and this host has no /dev/net/tun: "
                    "load the tun module or give the container --device /dev/net/tun",
                )
            )
        profile_netem = impairment_needs_netem(link.profile_spec)
        if link.engine == KERNEL and profile_netem and not caps().get(NETEM, False):
            own = f"profile '{link.profile}'" if link.profile else "`delay`"
            problems.append(
                scenario.problem(
                    ("topology", "links", i, "engine"),
                    f"link {link.name} asks for `engine: kernel`, and its {own} needs netem; {NO_NETEM}",
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


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

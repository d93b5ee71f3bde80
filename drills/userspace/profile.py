"""From scenario values to the relay's parameters: a link's profile, a degrade step's settings."""

from __future__ import annotations

from drills.impairment import Settings, settings_for
from drills.scenario import model
from drills.scenario.resolved import Link
from drills.userspace.impair import GilbertElliott, Impairments


def from_settings(settings: Settings) -> Impairments:
    """The relay's parameters for one direction's settings (ramps and handovers are driven from
    outside, by changing these over time)."""
    ge = settings.loss_bursts
    return Impairments(
        delay_s=float(settings.delay_s),
        jitter_s=float(settings.jitter_s),
        distribution=settings.distribution,
        correlation_pct=float(settings.correlation_pct),
        loss_pct=float(settings.loss_pct),
        loss_bursts=_gilbert_elliott(ge) if ge is not None else None,
        duplicate_pct=float(settings.duplicate_pct),
        corrupt_pct=float(settings.corrupt_pct),
        reorder_pct=float(settings.reorder_pct),
        rate_bps=int(settings.rate_bps) if settings.rate_bps is not None else None,
    )


def _gilbert_elliott(ge: model.GilbertElliott) -> GilbertElliott:
    # The model's `h` and `k` are netem's positional `1-h` and `1-k` (their defaults, 100 and 0,
    # are netem's): the loss in the bad state and in the good state.
    return GilbertElliott(p_pct=float(ge.p), r_pct=float(ge.r), bad_loss_pct=float(ge.h), good_loss_pct=float(ge.k))


def profile_impairments(link: Link) -> dict[str, Impairments]:
    """Direction -> the relay's starting parameters: the link's profile, for the whole drill,
    layered exactly as the kernel engine installs it (`drills.impairment.settings_for`)."""
    return {
        direction: from_settings(settings_for(None, link.profile_spec, reverse=reverse))
        for direction, reverse in (("a-to-b", False), ("b-to-a", True))
    }

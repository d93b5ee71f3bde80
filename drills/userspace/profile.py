"""From scenario values to the relay's parameters: a link's profile, a degrade step's settings.

Reads the scenario model and `degrade.Settings`-shaped objects only (duck-typed: importing the
fault engine here would be circular, since the backend imports this module).
"""

from __future__ import annotations

from typing import Any

from drills.scenario.resolved import Link
from drills.userspace.impair import GilbertElliott, Impairments

_FIELDS = (
    "delay", "jitter", "distribution", "correlation", "loss", "loss_bursts", "duplicate", "corrupt", "reorder", "rate",
)  # fmt: skip


def from_settings(settings: Any) -> Impairments:
    """The relay's parameters for one direction's `degrade.Settings` (ramps and handovers are
    driven from outside, by changing these over time)."""
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


def _gilbert_elliott(ge: Any) -> GilbertElliott:
    # The model's `h` and `k` are netem's positional `1-h` and `1-k` (their defaults, 100 and 0,
    # are netem's): the loss in the bad state and in the good state.
    return GilbertElliott(p_pct=float(ge.p), r_pct=float(ge.r), bad_loss_pct=float(ge.h), good_loss_pct=float(ge.k))


def profile_values(link: Link, *, reverse: bool) -> dict[str, Any]:
    """The link's profile values for one direction (`reverse`: b-to-a), as the scenario names them."""
    profile = link.profile_spec
    values: dict[str, Any] = {}
    layers = [profile, profile.reverse if profile is not None and reverse else None]
    for layer in layers:
        if layer is None:
            continue
        for name in _FIELDS:
            value = getattr(layer, name)
            if value is not None:
                values[name] = value
    return values


def profile_impairments(link: Link) -> dict[str, Impairments]:
    """Direction -> the relay's starting parameters: the link's profile, for the whole drill."""
    out = {}
    for direction, reverse in (("a-to-b", False), ("b-to-a", True)):
        v = profile_values(link, reverse=reverse)
        ge = v.get("loss_bursts")
        out[direction] = Impairments(
            delay_s=float(v.get("delay", 0.0)),
            jitter_s=float(v.get("jitter", 0.0)),
            distribution=v.get("distribution"),
            correlation_pct=float(v.get("correlation", 0.0)),
            loss_pct=float(v.get("loss", 0.0)),
            loss_bursts=_gilbert_elliott(ge) if ge is not None else None,
            duplicate_pct=float(v.get("duplicate", 0.0)),
            corrupt_pct=float(v.get("corrupt", 0.0)),
            reorder_pct=float(v.get("reorder", 0.0)),
            rate_bps=v.get("rate"),
        )
    return out

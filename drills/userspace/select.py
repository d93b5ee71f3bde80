"""Which engine serves a link: the choice itself lives in the leaf `drills.engines` (the engine's
requirements make it too); re-exported here for the userspace engine's readers.

This module reads the scenario model only: the loader uses it to mark the links a degrade step
impairs with netem parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from drills.engines import AUTO as AUTO
from drills.engines import ENGINES as ENGINES
from drills.engines import KERNEL as KERNEL
from drills.engines import USERSPACE as USERSPACE
from drills.engines import choose as choose
from drills.engines import engines as engines
from drills.engines import needs_netem as needs_netem
from drills.engines import needs_probe as needs_probe
from drills.engines import reason as reason
from drills.impairment import impairment_needs_netem as impairment_needs_netem

if TYPE_CHECKING:
    from drills.scenario import model


def degraded_with_netem(steps: Iterable[Any], profiles: Mapping[str, model.Profile], link_refs: set[str]) -> bool:
    """Whether a degrade step naming the link (by any of `link_refs`) needs netem parameters."""
    for step in steps:
        if getattr(step, "fault", None) != "degrade" or getattr(step, "link", None) not in link_refs:
            continue
        profile = profiles.get(step.profile) if getattr(step, "profile", None) else None
        if impairment_needs_netem(step) or impairment_needs_netem(profile):
            return True
    return False

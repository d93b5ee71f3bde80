"""Which engine serves a link: the choice itself lives in the leaf `drills.engines` (the engine's
requirements make it too); re-exported here for the userspace engine's readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drills.engines import AUTO as AUTO
from drills.engines import ENGINES as ENGINES
from drills.engines import KERNEL as KERNEL
from drills.engines import USERSPACE as USERSPACE
from drills.engines import choose as choose
from drills.engines import engines as engines
from drills.engines import needs_netem as needs_netem
from drills.engines import needs_probe as needs_probe
from drills.engines import reason as reason
from drills.impairment import degraded_with_netem as degraded_with_netem
from drills.impairment import impairment_needs_netem as impairment_needs_netem

if TYPE_CHECKING:
    pass

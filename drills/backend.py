"""The narrow interface every testbed backend implements.

The engine composes everything from these primitives; a backend declares what it can do so a
scenario can be checked against it before anything is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from drills.runs import Run
from drills.scenario.resolved import Topology


@dataclass
class TeardownReport:
    """What a teardown removed, what it could not (with how to remove it by hand), and what it
    refused to touch: journal entries that failed their check, objects that are not the run's
    (a reused pid, a container without the run's label, a name that existed before the run)."""

    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # never acted on; not a leftover of the run

    @property
    def clean(self) -> bool:
        return not self.left


class Backend(Protocol):
    """Deploy a topology for a run; tear down whatever that run's journal lists."""

    name: str

    def deploy(self, topology: Topology, run: Run) -> None:
        """Create every object, journaling each before it exists. On error, raise; the caller
        tears down from the journal."""

    def teardown(self, run: Run) -> TeardownReport:
        """Remove every object in `run`'s journal. Idempotent; never touches anything else."""

    def namespace_of(self, run: Run, node: str) -> str:
        """Name of the network namespace holding `node` (for exec and probes)."""

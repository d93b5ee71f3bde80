"""What `drill plan` shows of the one-way pair mesh `drill run` starts for the timeline's
partitions (drills.engine.pair_probes): every ordered pair across each partition's groups, the
cut it intends for each, and the mesh's rates. Plain data; no kernel object is touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drills.engine.filter_faults import Partition
from drills.engine.pair_probes import partition_pairs
from drills.engine.timeline import expand
from drills.scenario.limits import pair_rate_pps  # the mesh's rule, without the mesh (sockets, kernel)
from drills.scenario.resolved import Scenario
from drills.scenario.steps import PartitionStep

LIST_PAIRS_MAX = 12  # `drill plan` lists a partition's pairs up to this many, then counts the rest


@dataclass(frozen=True)
class PairPlan:
    """One ordered (source, target) node pair across a partition, probed one way."""

    source: str
    target: str
    expected: str  # "cut" or "open": what the partition intends for this direction
    probed: bool  # False: no address of one family on both nodes; reported unreachable


@dataclass(frozen=True)
class PartitionPairsPlan:
    """The pairs one partition step is judged on."""

    label: str
    at: str  # when the partition is applied, `T+mm:ss.mmm`
    pairs: list[PairPlan]

    @property
    def cut(self) -> int:
        return sum(1 for pair in self.pairs if pair.expected == "cut")

    def listed(self, limit: int = LIST_PAIRS_MAX) -> tuple[list[PairPlan], int]:
        """The pairs to list, and how many more there are: a large partition is counted, not listed."""
        return self.pairs[:limit], max(0, len(self.pairs) - limit)


@dataclass(frozen=True)
class PairMeshPlan:
    """The one-way probe mesh `drill run` starts for the timeline's partitions: it runs for the
    whole drill over every distinct pair, at `rate_pps` each (lowered when the mesh is large)."""

    pairs: int  # distinct ordered pairs probed, over every partition
    rate_pps: int
    total_pps: int
    steps: list[PartitionPairsPlan]


def pair_mesh_plan(scenario: Scenario, clock_text: Callable[[float], str]) -> PairMeshPlan | None:
    """The pairs `drill run` would probe, from `partition_pairs` itself, over each partition
    step's fault as `drill run` builds it (rules as data: no `nft` needed on this host)."""
    seed = scenario.seed
    partitions: dict[str, Partition] = {}
    at: dict[str, float] = {}
    for action in expand(scenario, seed if seed is not None else 0):
        step = action.step
        if isinstance(step, PartitionStep) and action.kind == "apply" and action.label not in partitions:
            partitions[action.label] = Partition.from_step(step)
            at[action.label] = action.at_s
    if not partitions:
        return None
    topology = scenario.topology

    def probed(source: str, target: str) -> bool:  # as start_mesh: an address of one family on both
        a, b = topology.node(source).primary_address, topology.node(target).primary_address
        return a is not None and b is not None and a.version == b.version

    steps, distinct = [], set()
    for label, pairs in partition_pairs(partitions).items():
        planned = [PairPlan(s, t, "cut" if cut else "open", probed(s, t)) for s, t, cut in pairs]
        distinct |= {(p.source, p.target) for p in planned if p.probed}
        steps.append(PartitionPairsPlan(label, clock_text(at[label]), planned))
    rate_pps = pair_rate_pps(len(distinct))
    return PairMeshPlan(len(distinct), rate_pps, rate_pps * len(distinct), steps)

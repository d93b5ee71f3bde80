"""What a drill observed and concluded: the records `run_drill` fills and `drills.results`
writes. Plain data, so analysis, reports and the fake-backend tests share them without
leaning on the runner."""

from __future__ import annotations

from dataclasses import dataclass, field

from drills.known import KnownVerdict
from drills.measure import Availability, Baseline, EventMetrics, PairResult, PhaseStats
from drills.objectives import Verdict
from drills.records import ProbeRecord, StreamRecord

SUSTAIN_S = 1.0  # sustained validation time (RFC 6413 §4): recorded in every result
WARMUP_S = 1.0  # probe traffic before this is not part of the baseline
LATE_AFTER_S = 2.0  # forwarding-delay threshold of the pair probes (RFC 2544's suggestion)


@dataclass(frozen=True)
class StepRecord:
    """When a timeline action was due and when the kernel confirmed it (drill seconds)."""

    label: str
    kind: str
    fault: str
    scheduled_s: float
    issued_s: float  # the first change was sent to the kernel: the event instant
    confirmed_s: float  # the kernel showed the change on every object it touches
    detail: str
    # The change was in force by then: confirmed_s, or earlier where any one change alone puts
    # a fault in force (an end of a cut link) and its host stamped the first one confirmed.
    # The event took effect within [issued_s, in_force_s]: that span is the event's uncertainty.
    in_force_s: float | None = None

    @property
    def effect_by_s(self) -> float:
        """When the change was certainly in force (in_force_s, else confirmed_s)."""
        return self.confirmed_s if self.in_force_s is None else self.in_force_s

    @property
    def skew_s(self) -> float:
        return self.confirmed_s - self.scheduled_s


@dataclass(frozen=True)
class ChangeStep:
    """One change a time-varying fault (a ramp, a handover) played while applied, in drill
    seconds like `StepRecord`; `error` is set when the change failed and the driver stopped."""

    label: str
    direction: str
    scheduled_s: float
    issued_s: float
    confirmed_s: float
    detail: str
    error: str | None = None


@dataclass
class DrillResult:
    scenario: str
    run_id: str
    seed: int
    steps: list[StepRecord] = field(default_factory=list)
    changes: list[ChangeStep] = field(default_factory=list)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    metrics: list[EventMetrics] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    known: list[KnownVerdict] = field(default_factory=list)  # `expect_known`, judged (drills.known)
    sustain_s: float = SUSTAIN_S
    # What the backend declared it can do on this host (drills.backend): the figures depend on it.
    capabilities: dict[str, bool] = field(default_factory=dict)
    # Several machines: each host's clock offset to the controller and its bound (± s), which
    # is part of the accuracy of every instant measured there.
    hosts: list[dict[str, object]] = field(default_factory=list)
    revert_failures: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    t0_s: float = 0.0  # the drill clock's zero on the monotonic clock (samples are relative to it)
    records: list[StreamRecord] = field(default_factory=list)  # raw samples of every stream
    app_records: list[ProbeRecord] = field(default_factory=list)  # every sample of application probes
    # The MSEL as played (drills.engine.player.Player.record): injects, holds, observations, stop.
    exercise: dict[str, object] = field(default_factory=dict)
    phases: dict[str, list[PhaseStats]] = field(default_factory=dict)  # probe -> baseline/fault/recovery
    availability: dict[str, Availability] = field(default_factory=dict)  # probe -> windows after warm-up
    late_after_s: dict[str, float] = field(default_factory=dict)
    tolerated_loss_pct: dict[str, float] = field(default_factory=dict)  # probe -> its `tolerated_loss` (> 0 only)
    engines: dict[str, str] = field(default_factory=dict)  # link -> engine that served it (kernel, userspace)
    # Every ordered node pair across each partition, intended against observed (one way).
    pairs: list[PairResult] = field(default_factory=list)
    pair_records: list[StreamRecord] = field(default_factory=list)  # the pair mesh's raw samples
    # CPU time this machine's host (hypervisor) took from it while the clock ran (drills.realtime.
    # steal_s): None where the kernel does not say.
    host_steal_s: float | None = None

    @property
    def inconclusive(self) -> bool:
        # A known answer that could not be judged (never recovered, not measured) leaves a drill
        # that otherwise passed inconclusive: it must never read as a pass.
        dirty = not self.baselines or any(not b.clean for b in self.baselines.values())
        return dirty or (self.passed and any(k.passed is None for k in self.known))

    @property
    def passed(self) -> bool:
        # A pair cut when it should not be, or the reverse, fails the drill like a missed
        # objective; a pair that could not be judged (unreachable before the partition) too.
        # A known answer fails it when it failed (an inconclusive one: see `inconclusive`).
        return (
            all(v.passed for v in self.verdicts)
            and all(p.matches for p in self.pairs)
            and all(k.passed is not False for k in self.known)
        )



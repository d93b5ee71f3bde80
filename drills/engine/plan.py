"""`drill plan`: what a drill would do, resolved, without doing any of it.

The plan is plain data built from a loaded scenario by the functions `drill run` itself uses
(`timeline.expand`, `faults.build`), and from what the backend would build (a `Layout`: namespace
names, sysctls, link engines, handed in by the caller from drills.backends, so the engine
imports no backend), so what it shows is what a run does. Building it touches no kernel object and no state directory, and needs
no root. The run id is chosen when a run starts, so namespaces are shown as `drill-RUN-<node>`.
Faults that `drill run` cannot apply yet are listed, marked `supported=False`, rather than refused.
A partition also shows the one-way pair mesh `drill run` starts for it (drills.engine.plan_pairs).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drills.engine.drill import preflight
from drills.engine.faults import build, supported_kinds
from drills.engine.plan_pairs import LIST_PAIRS_MAX as LIST_PAIRS_MAX
from drills.engine.plan_pairs import PairMeshPlan, pair_mesh_plan
from drills.engine.plan_steps import cue_text, summary
from drills.engine.timeline import Action, expand
from drills.errors import DrillError, ScenarioError
from drills.known import expected_text
from drills.scenario.expect import Objective
from drills.scenario.probes import Spec, UdpStreamSpec
from drills.scenario.resolved import Link, Node, Route, Scenario, Service, Topology
from drills.scenario.steps import Flap, LinkDownStep, SegmentDownStep

if TYPE_CHECKING:
    from drills.backends import Layout

RUN_PLACEHOLDER = "RUN"  # stands for the run id, which is chosen when the run starts
NOT_SUPPORTED = "not supported by drill run yet"
RANDOM_SEED = "random at run time"
ONE_SHOT = ("note", "exec")  # steps with nothing to revert
# What `touches()` starts with: `node:iface ...`, `node/service ...` or `node: ...`.
_LEADING_NODE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)[:/]")


@dataclass(frozen=True)
class InterfacePlan:
    """One end of a link, as deploy creates it inside its node."""

    name: str
    link: str
    peer: str  # the other end, `node:iface`
    ipv4: str | None
    ipv6: str | None
    mtu: int | None


@dataclass(frozen=True)
class ServicePlan:
    name: str
    command: str
    env: dict[str, str]
    ready: str | None  # the readiness check deploy waits for, in words


@dataclass(frozen=True)
class NodePlan:
    """A node: its namespace and everything deploy puts in it."""

    name: str
    namespace: str  # `drill-RUN-<node>`
    loopback: str | None
    interfaces: list[InterfacePlan]
    routes: list[str]  # in `ip route` syntax
    sysctls: list[str]  # `key=value`, the node's own, set after `Plan.node_sysctls`
    services: list[ServicePlan]


@dataclass(frozen=True)
class LinkPlan:
    name: str
    a: str
    b: str
    subnets: list[str]
    profile: str | None
    engine: str = ""  # which engine serves it, and why: "userspace (auto: this kernel has no netem)"
    delay: str = ""  # one-way delay deployed (profile or the link's own), "a-to-b / b-to-a" when they differ


@dataclass(frozen=True)
class SegmentPlan:
    """A LAN segment: a bridge in a namespace of its own, a port per member."""

    name: str
    namespace: str  # `drill-RUN-_seg.<segment>`
    members: list[str]  # `node:iface`, in the order they are addressed
    subnets: list[str]
    mtu: int | None


@dataclass(frozen=True)
class Touch:
    """One object an action changes: `what` as the fault's `touches()` says it, and the
    namespace it lives in (None when the fault does not name a node)."""

    namespace: str | None
    what: str


@dataclass(frozen=True)
class ActionPlan:
    """One apply or revert on the drill clock."""

    at_s: float  # seconds from the start of the drill
    at: str  # the same as `T+mm:ss.mmm`
    kind: str  # "apply" | "revert"
    label: str  # the step's id (or stepN), `#n` for repetitions and flap periods
    step_index: int  # position in the scenario's timeline
    fault: str
    describe: str
    touches: list[Touch]
    supported: bool  # False: `drill run` cannot apply this fault yet
    problem: str | None = None  # why the fault could not be built here (then `touches` is empty)
    # Up to this much later than `at_s`: link-flap jitter, drawn at run time when there is no seed.
    jitter_s: float | None = None
    at_teardown: bool = False  # never reverted on the timeline: undone when the drill ends
    # How its inject is delivered in play when not simply on time (drills.engine.player): a
    # manual fire, after another inject, a decision gate. None: at its time.
    cue: str | None = None


@dataclass(frozen=True)
class ProbePlan:
    name: str
    type: str
    source: str  # node
    source_address: str | None
    to: str | None  # as written
    target_address: str | None  # what it resolves to
    detail: str


@dataclass(frozen=True)
class ObjectivePlan:
    name: str | None
    probe: str | None  # None: every probe
    step: str | None  # None: every fault
    template: str | None
    bounds: list[str]


@dataclass(frozen=True)
class KnownPlan:
    """A known answer (`expect_known:`): the figure of one probe at one step's event, its window."""

    name: str
    probe: str
    step: str
    event: str
    figure: str
    expected: str  # `2000.0 ± 10.0 ms`, or `3610.0 ms in [3400.0, 3900.0] ms`
    source: str


@dataclass(frozen=True)
class Plan:
    """Everything `drill run FILE` would do, in order, with nothing done."""

    scenario: str
    file: str
    description: str
    seed: int | None
    seed_text: str  # the seed, or "random at run time"
    duration_s: float
    duration_given: bool  # False: the default, last step + 10 s
    namespace_pattern: str
    node_sysctls: list[str]  # `key=value`, set in every node's namespace first
    nodes: list[NodePlan]
    links: list[LinkPlan]
    actions: list[ActionPlan]
    probes: list[ProbePlan]
    objectives: list[ObjectivePlan]
    refused: list[str] = field(default_factory=list)  # what `drill run` would refuse, located
    pair_mesh: PairMeshPlan | None = None  # None: no partition in the timeline
    known: list[KnownPlan] = field(default_factory=list)  # `expect_known`, in file order
    segments: list[SegmentPlan] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (`drill plan --json`), stable for diffs."""
        return dataclasses.asdict(self)


def clock_text(seconds: float) -> str:
    """`T+mm:ss.mmm`, the exercise clock (minutes go past 59 rather than into hours)."""
    ms = round(seconds * 1000)
    minutes, rest = divmod(ms, 60_000)
    return f"T+{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def build_plan(scenario: Scenario, layout: Layout, kinds: Collection[str] | None = None) -> Plan:
    """The plan of a loaded scenario, as the backend would lay it out (`drills.backends.layout`
    of the scenario's topology for run id `RUN_PLACEHOLDER`). Pure: no kernel, no files, no
    root. `kinds` are the faults `drill run` can apply (default: the registry's)."""
    topology = scenario.topology
    seed = scenario.seed
    try:
        preflight(scenario, layout.capabilities)
        refused: list[str] = []
    except ScenarioError as exc:
        refused = [str(problem) for problem in exc.problems]
    return Plan(
        scenario=scenario.name,
        file=str(scenario.path),
        description=scenario.description,
        seed=seed,
        seed_text=str(seed) if seed is not None else RANDOM_SEED,
        duration_s=scenario.duration_s,
        duration_given=scenario.duration_given,
        namespace_pattern=layout.namespace_pattern,
        node_sysctls=[f"{key}={value}" for key, value in layout.node_sysctls],
        nodes=[_node(topology, node, layout.namespaces[node.name]) for node in topology.nodes],
        links=[
            LinkPlan(
                link.name,
                link.a.endpoint,
                link.b.endpoint,
                [str(a.network) for a in (link.a.ipv4, link.a.ipv6) if a is not None],
                link.profile,
                layout.engines[link.name],
                _delay_text(link),
            )
            for link in topology.links
        ],
        actions=_actions(scenario, layout.namespaces, set(supported_kinds() if kinds is None else kinds)),
        probes=[_probe(scenario, probe) for probe in scenario.probes],
        objectives=[_objective(o) for o in scenario.objectives],
        refused=refused,
        pair_mesh=pair_mesh_plan(scenario, clock_text),
        known=[
            KnownPlan(k.name, k.probe, k.step, k.event, k.figure, expected_text(k.value_s, k.low_s, k.high_s, k.tolerance_s), k.source)
            for k in scenario.known
        ],
        segments=[
            SegmentPlan(
                segment.name,
                layout.segment_namespaces.get(segment.name, ""),
                [member.endpoint for member in segment.members],
                [str(a.network) for a in (segment.members[0].ipv4, segment.members[0].ipv6) if a is not None],
                segment.mtu,
            )
            for segment in topology.segments
        ],
    )


# --------------------------------------------------------------------------- testbed


def _delay_text(link: Link) -> str:
    spec = link.profile_spec
    there = spec.delay if spec else None
    back = spec.reverse.delay if spec and spec.reverse and spec.reverse.delay is not None else there
    texts = dict.fromkeys(f"{(d or 0.0) * 1e3:.2f} ms" for d in (there, back))  # 0.01 ms: an import's rounding
    return " / ".join(texts) if there or back else ""


def _node(topology: Topology, node: Node, namespace: str) -> NodePlan:
    interfaces = []
    for iface in node.interfaces:
        link = topology.link(iface.endpoint) if iface.endpoint not in topology.segment_refs else None
        if link is not None:
            name, peer = link.name, (link.b if link.a == iface else link.a).endpoint
        else:  # a LAN segment's member: its peers are the other members, through the bridge
            name = topology.segment(iface.endpoint).name
            peer = f"segment {name}"
        interfaces.append(
            InterfacePlan(
                iface.name,
                name,
                peer,
                str(iface.ipv4) if iface.ipv4 else None,
                str(iface.ipv6) if iface.ipv6 else None,
                iface.mtu,
            )
        )
    return NodePlan(
        name=node.name,
        namespace=namespace,
        loopback=str(node.loopback) if node.loopback else None,
        interfaces=interfaces,
        routes=[_route_text(route) for route in node.routes],
        sysctls=[f"{key}={value}" for key, value in node.sysctls],
        services=[
            ServicePlan(service.name, service.command, dict(service.env), _service_ready_text(service))
            for service in node.services
        ],
    )


def _route_text(route: Route) -> str:
    text = str(route.destination)
    if route.gateway is not None:
        text += f" via {route.gateway}"
    if route.device is not None:
        text += f" dev {route.device}"
    if route.metric:
        text += f" metric {route.metric}"
    if route.source is not None:
        text += f" src {route.source}"
    return text


def _service_ready_text(service: Service) -> str | None:
    """Its readiness check, and the one deploy waits for once every node runs (a daemon's)."""
    ready = _ready_text(service.ready)
    settled = _ready_text(service.settled)
    if settled is None:
        return ready
    return f"{ready or 'started'}; once every node runs, {settled}"


def _ready_text(ready: Any) -> str | None:
    if ready is None:
        return None
    check = f"tcp port {ready.tcp_port} accepts" if ready.tcp_port is not None else f"`{ready.command}` exits 0"
    return f"{check} (timeout {ready.timeout_s:g} s)"


# --------------------------------------------------------------------------- timeline


def _actions(scenario: Scenario, namespaces: Mapping[str, str], kinds: set[str]) -> list[ActionPlan]:
    """`expand` with the run's seed; without one, flap instants are their earliest, with the
    jitter stated. Faults never reverted on the timeline are undone at teardown, newest first."""
    seed = scenario.seed
    built: dict[str, Any] = {}
    problems: dict[str, str] = {}
    plans: list[ActionPlan] = []
    for action in expand(scenario, seed if seed is not None else 0):
        step = action.step
        supported = step.kind in kinds
        if supported and action.label not in built and action.label not in problems:
            try:
                built[action.label] = build(step)
            except DrillError as exc:  # a host without `nft`, parameters netem refuses...
                problems[action.label] = str(exc)
        fault = built.get(action.label)
        problem = problems.get(action.label)
        reverted = action.kind == "revert"
        at_s, jitter_s = action.at_s, None
        flap = step.flap if isinstance(step, LinkDownStep | SegmentDownStep) else None
        if flap is not None and flap.jitter_s and seed is None:
            at_s, jitter_s = _earliest(action, step.timing.at_s, flap), flap.jitter_s
        if fault is not None:
            describe = fault.describe(reverted=reverted)
            touches = [Touch(_namespace_of(text, namespaces), text) for text in fault.touches()]
        else:
            why = NOT_SUPPORTED if problem is None else f"cannot be built here: {problem}"
            describe = f"{summary(step)}{' reverted' if reverted else ''} ({why})"
            touches = []
        plans.append(
            ActionPlan(
                at_s=at_s,
                at=clock_text(at_s),
                kind=action.kind,
                label=action.label,
                step_index=action.step_index,
                fault=step.kind,
                describe=describe,
                touches=touches,
                supported=supported,
                problem=problem,
                jitter_s=jitter_s,
                cue=cue_text(scenario, action) if action.kind == "apply" or action.inject != action.step_index else None,
            )
        )
    plans.sort(key=lambda a: (a.at_s, a.kind != "revert", a.step_index))
    # As the runner's undo stack: an apply stays until a revert of the same label.
    undo: list[ActionPlan] = []
    for plan in plans:
        if plan.kind == "apply" and plan.fault not in ONE_SHOT:
            undo.append(plan)
        elif plan.kind == "revert":
            undo = [u for u in undo if u.label != plan.label]
    end_s = scenario.duration_s
    for left in reversed(undo):
        fault = built.get(left.label)
        describe = fault.describe(reverted=True) if fault is not None else _reverted(left.describe)
        plans.append(
            dataclasses.replace(
                left,
                at_s=end_s,
                at=clock_text(end_s),
                kind="revert",
                describe=describe,
                jitter_s=None,
                at_teardown=True,
            )
        )
    return plans


def _earliest(action: Action, at_s: float, flap: Flap) -> float:
    start = at_s + action.occurrence * flap.period_s
    return start + (flap.period_s * flap.duty_pct / 100.0 if action.kind == "revert" else 0.0)


def _reverted(describe: str) -> str:
    """`degrade: link sat (why)` as reverted: `degrade: link sat reverted (why)`."""
    text, sep, why = describe.partition(" (")
    return f"{text} reverted{sep}{why}"


def _namespace_of(touch: str, namespaces: Mapping[str, str]) -> str | None:
    found = _LEADING_NODE.match(touch)
    return namespaces.get(found.group(1)) if found else None


# --------------------------------------------------------------------------- probes and objectives


def _address(scenario: Scenario, ref: str) -> str | None:
    """A probe end as an address: a node's primary address, an endpoint's, or the address itself."""
    topology = scenario.topology
    node_name, sep, iface_name = ref.partition(":")
    if not sep or ref.count(":") > 1:
        try:
            address = topology.node(ref).primary_address
        except KeyError:
            return ref  # an address, as the loader checked
        return str(address) if address is not None else None
    iface = topology.node(node_name).interface(iface_name)
    chosen = iface.ipv4 or iface.ipv6
    return str(chosen.ip) if chosen is not None else None


def _probe(scenario: Scenario, probe: Spec) -> ProbePlan:
    to = probe.to
    if isinstance(probe, UdpStreamSpec):
        detail = (
            f"{probe.rate_pps} packets/s of {probe.size_bytes} B, DSCP {probe.dscp}, "
            f"{'echoed back' if probe.echo else 'one-way'}, late after {probe.late_after_s:g} s"
        )
    else:
        keys = ("port", "path", "status", "body_contains", "query", "record", "command")
        extra = [f"{key} {getattr(probe, key)}" for key in keys if getattr(probe, key, None) is not None]
        detail = ", ".join([f"every {probe.interval_s:g} s", f"timeout {probe.timeout_s:g} s", *extra])
    return ProbePlan(
        probe.name,
        probe.kind,
        probe.source,
        _address(scenario, probe.source),
        to,
        _address(scenario, to) if to is not None else None,
        detail,
    )


def _seconds_text(value: float) -> str:
    return f"{value * 1e3:g} ms" if value < 1.0 else f"{value:g} s"


def _objective(objective: Objective) -> ObjectivePlan:
    bounds = []
    for key, value in (("max_outage", objective.max_outage_s), ("max_recovery", objective.max_recovery_s)):
        if value is not None:
            bounds.append(f"{key} {_seconds_text(value)}")
    if objective.max_loss_pct is not None:
        bounds.append(f"max_loss {objective.max_loss_pct:g} %")
    if objective.latency is not None:
        for key in ("p50", "p95", "p99"):
            value = getattr(objective.latency, f"{key}_s")
            if value is not None:
                bounds.append(f"latency {key} {_seconds_text(value)}")
    if objective.availability_pct is not None:
        bounds.append(f"availability {objective.availability_pct:g} %")
    return ObjectivePlan(objective.name, objective.probe, objective.step, objective.template, bounds)

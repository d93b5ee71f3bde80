"""A fake backend, its node operations and its probes: complete drills in memory, on a clock
that only moves when the drill waits (no kernel, no root, no sockets, milliseconds a drill).

`FakeBackend` deploys nothing: `FakeOps` keeps the testbed's state (interfaces' admin state,
impairments, packet-filter tables, processes and services per node) and, on every change, a
snapshot stamped with the drill clock. `FakeProbes` start like real probes and, when stopped,
synthesize their records from those snapshots: a packet every 1/rate s from the probe's start,
lost exactly while its flow had no working path. A flow's path is chosen by routing among
candidate paths (lists of links; by default the shortest), seeing carrier as it was
`convergence_s` earlier; the packet then crosses the links as they are: it is lost on a link
without carrier, at a dead node, by a rule of a table in force (interpreted from the `Table`
records as nftables would: a netdev ingress chain on the arriving interface, an inet prerouting
chain for every packet a node receives), or by an impairment of 100 % loss. Delay impairments
add to the latency. Everything is a function of the op log: the figures are exact.

`SimClock` is the drill clock for these drills: `sleep_until` on the test's own thread moves
time forward, but only once every other participating thread (named `drills-...`, e.g. a ramp's
driver) is itself waiting on the clock, and only to the earliest instant one of them waits for;
so a driver's changes interleave with the timeline at their exact instants, whatever the
threads' real timing.
"""

from __future__ import annotations

import bisect
import itertools
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_network
from typing import Any, TypeVar

from drills.backend import Capabilities, ExecResult, Impairment, LinkState, NodeOps, TeardownReport
from drills.clock import Clock
from drills.engine.drill import ProbeStarter
from drills.engine.faults import Fault
from drills.engine.pair_probes import partition_pairs
from drills.engine.progress import ProbeHealth
from drills.errors import BackendError
from drills.impairment import Settings
from drills.probes.app import ProbeRecord, Sample
from drills.probes.pair_mesh import pair_name
from drills.probes.udp_stream import StreamRecord
from drills.rules import Table
from drills.runs import Run
from drills.scenario import model
from drills.scenario.resolved import Interface, Link, Route, Scenario, Service, Topology

T = TypeVar("T")
Log = Callable[[str], None]

HOP_LATENCY_S = 0.0005  # one way, per link: a round trip over one link takes 1 ms
PAIR_RATE_PPS = 128  # the fake pair mesh's rate: 1/128 s is exact in binary, so are the figures
FIRST_PID = 1000
WAIT_LIMIT_S = 10.0  # real seconds a SimClock waits for a thread before calling it stuck


# --------------------------------------------------------------------------- the clock


class SimClock:
    """Virtual time for the owning thread and the `drills-` threads it starts (see module)."""

    def __init__(self, start_s: float = 1000.0, prefix: str = "drills-") -> None:
        self.t = start_s
        self._owner = threading.current_thread()
        self._prefix = prefix
        self._cond = threading.Condition()
        self._sleepers: dict[threading.Thread, float] = {}

    def now_s(self) -> float:
        return self.t

    def sleep_until(self, instant_s: float, stop: threading.Event | None = None, precise: bool = False) -> bool:
        if stop is not None and stop.is_set():
            return False
        if threading.current_thread() is self._owner:
            self._advance_to(instant_s)
            return True
        return self._wait_as_participant(instant_s, stop)

    def _participants(self) -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t is not self._owner and t.name.startswith(self._prefix)]

    def _advance_to(self, instant_s: float) -> None:
        limit = time.monotonic() + WAIT_LIMIT_S
        with self._cond:
            while True:
                # Every participant must be waiting on the clock (or gone) before time moves.
                while any(t not in self._sleepers for t in self._participants()):
                    if time.monotonic() > limit:
                        raise AssertionError("a drills- thread neither waits on the clock nor ends")
                    self._cond.wait(0.001)
                due = [(at, t.name) for t, at in self._sleepers.items() if at <= instant_s]
                if not due:
                    self.t = max(self.t, instant_s)
                    return
                earliest = min(due)[0]
                self.t = max(self.t, earliest)
                for thread in [t for t, at in self._sleepers.items() if at <= self.t]:
                    del self._sleepers[thread]  # woken: it runs until it waits again or ends
                self._cond.notify_all()

    def _wait_as_participant(self, instant_s: float, stop: threading.Event | None) -> bool:
        me = threading.current_thread()
        with self._cond:
            if instant_s <= self.t:
                return True
            self._sleepers[me] = instant_s
            self._cond.notify_all()
            while me in self._sleepers:
                if stop is not None and stop.is_set():
                    del self._sleepers[me]
                    self._cond.notify_all()
                    return False
                self._cond.wait(0.001)
            return True


# --------------------------------------------------------------------------- the testbed's state


@dataclass(frozen=True)
class Op:
    """One node operation as the fake received it, stamped on the drill clock."""

    at_s: float
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class State:
    """The testbed at one instant."""

    down: frozenset[tuple[str, str]] = frozenset()  # (node, ifname) administratively down
    dead: frozenset[str] = frozenset()  # nodes whose processes were all killed
    frozen: frozenset[str] = frozenset()  # nodes whose processes are all stopped
    tables: tuple[Table, ...] = ()
    impairments: tuple[tuple[tuple[str, str], Settings], ...] = ()  # ((link, direction), settings)

    def carrier(self, end: Interface, peer: Interface) -> bool:
        return (end.node, end.name) not in self.down and (peer.node, peer.name) not in self.down

    def impairment(self, link: str, direction: str) -> Settings | None:
        return dict(self.impairments).get((link, direction))


class World:
    """The fake testbed: its topology, its state over time, and every operation received."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.ops: list[Op] = []
        self.history: list[tuple[float, State]] = [(float("-inf"), State())]
        self.services: dict[str, dict[str, int]] = {n.name: {} for n in topology.nodes}  # node -> service -> pid
        self.lock = threading.Lock()
        self._pids = itertools.count(FIRST_PID)
        self.pids: dict[str, list[int]] = {n.name: [next(self._pids)] for n in topology.nodes}  # an init each

    def record(self, at_s: float, name: str, *args: Any) -> None:
        with self.lock:
            self.ops.append(Op(at_s, name, args))

    @property
    def state(self) -> State:
        return self.history[-1][1]

    def change(self, at_s: float, **fields: Any) -> None:
        with self.lock:
            self.history.append((at_s, replace(self.history[-1][1], **fields)))

    def at(self, t_s: float) -> State:
        """The state in force at `t_s` (a change stamped `t_s` is in force from `t_s` on)."""
        times = [at for at, _ in self.history]
        return self.history[bisect.bisect_right(times, t_s) - 1][1]

    def new_pid(self) -> int:
        return next(self._pids)

    def named(self, name: str) -> list[Op]:
        return [op for op in self.ops if op.name == name]


class FakeOps:
    """`NodeOps` on a `World`: every operation stamped with `clock.now_s()`, state read back at once."""

    def __init__(self, world: World, clock: Clock, containers: frozenset[str] = frozenset()) -> None:
        self.world = world
        self.clock = clock
        self.containers = containers  # nodes that come back in a new namespace when booted

    def _now(self, name: str, *args: Any) -> float:
        now = self.clock.now_s()
        self.world.record(now, name, *args)
        return now

    # links
    def set_link(self, node: str, ifname: str, *, up: bool) -> None:
        now = self._now("set_link", node, ifname, up)
        key = (node, ifname)
        down = self.world.state.down
        self.world.change(now, down=down - {key} if up else down | {key})

    def link_state(self, node: str, ifname: str) -> LinkState:
        self._now("link_state", node, ifname)
        state = self.world.state
        for link in self.world.topology.links:
            for end, peer in ((link.a, link.b), (link.b, link.a)):
                if (end.node, end.name) == (node, ifname):
                    return LinkState((node, ifname) not in state.down, state.carrier(end, peer))
        raise BackendError(f"{node}:{ifname}: no such interface")

    def replace_address(self, node: str, ifname: str, address: IPv4Interface | IPv6Interface) -> None:
        self._now("replace_address", node, ifname, address)

    def replace_routes(self, node: str, routes: Sequence[Route]) -> None:
        self._now("replace_routes", node, tuple(routes))

    # impairments
    def impair(self, changes: Sequence[Impairment]) -> None:
        now = self._now("impair", tuple(changes))
        current = dict(self.world.state.impairments)
        for c in changes:
            key = (c.link.name, c.direction)
            if c.settings is None:
                current.pop(key, None)
            else:
                current[key] = c.settings
        self.world.change(now, impairments=tuple(sorted(current.items(), key=lambda kv: kv[0])))

    def link_engine(self, link: str) -> str:
        return "kernel"

    # rules
    def arm_rules(self, tables: Sequence[Table]) -> None:
        self._now("arm_rules", tuple(tables))

    def apply_rules(self, tables: Sequence[Table], on_applied: Callable[[], None] | None = None) -> None:
        now = self._now("apply_rules", tuple(tables))
        present = {(t.node, t.family, t.name) for t in self.world.state.tables}
        for table in tables:
            if (table.node, table.family, table.name) in present:
                raise BackendError(f"node {table.node}: table {table.family} {table.name} exists already")
        self.world.change(now, tables=self.world.state.tables + tuple(tables))
        if on_applied is not None:
            on_applied()

    def remove_rules(self, tables: Sequence[Table]) -> None:
        now = self._now("remove_rules", tuple(tables))
        gone = {(t.node, t.family, t.name) for t in tables}
        kept = tuple(t for t in self.world.state.tables if (t.node, t.family, t.name) not in gone)
        self.world.change(now, tables=kept)

    # processes
    def processes(self, node: str) -> list[int]:
        self._now("processes", node)
        return [] if node in self.world.state.dead else list(self.world.pids[node])

    def signal(self, node: str, pids: Sequence[int], sig: signal.Signals) -> None:
        self._now("signal", node, tuple(pids), sig)

    def process_state(self, node: str, pid: int) -> str | None:
        self._now("process_state", node, pid)
        state = self.world.state
        if node in state.dead or pid not in self.world.pids[node]:
            return None
        return "T" if node in state.frozen else "S"

    def kill_all(self, node: str) -> int:
        now = self._now("kill_all", node)
        killed = len(self.world.pids[node])
        self.world.pids[node] = []
        self.world.services[node] = {}
        self.world.change(now, dead=self.world.state.dead | {node}, frozen=self.world.state.frozen - {node})
        return killed

    def stop_all(self, node: str, on_stopped: Callable[[float], None] | None = None) -> int:
        now = self._now("stop_all", node)
        self.world.change(now, frozen=self.world.state.frozen | {node})
        return len(self.world.pids[node])

    def continue_all(self, node: str, on_continued: Callable[[float], None] | None = None) -> None:
        now = self._now("continue_all", node)
        self.world.change(now, frozen=self.world.state.frozen - {node})

    def boot(self, node: str) -> bool:
        now = self._now("boot", node)
        if node in self.world.state.dead:
            self.world.pids[node] = [self.world.new_pid()]
            self.world.change(now, dead=self.world.state.dead - {node})
            return node in self.containers  # a container restarts in a new namespace
        return False

    # services
    def start_service(self, node: str, service: Service, on_started: Callable[[float], None] | None = None) -> int:
        self._now("start_service", node, service.name)
        pid = self.world.new_pid()
        self.world.services[node][service.name] = pid
        self.world.pids[node].append(pid)
        return pid

    def stop_service(self, node: str, service: str, on_stopped: Callable[[float], None] | None = None) -> None:
        self._now("stop_service", node, service)
        pid = self.world.services[node].pop(service, None)
        if pid is None:
            raise BackendError(f"node {node}: service {service} is not running")
        self.world.pids[node].remove(pid)

    def service_running(self, node: str, service: str) -> bool:
        self._now("service_running", node, service)
        return service in self.world.services[node]

    def exec(self, node: str, command: str, timeout_s: float, on_started: Callable[[float], None] | None = None) -> ExecResult:
        self._now("exec", node, command, timeout_s)
        return ExecResult(0, "", "")

    # sockets: the fake probes open none
    def open_socket(
        self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0
    ) -> socket.socket:
        raise AssertionError("fake drills synthesize their probes' records; nothing opens a socket")

    def run_in_node(self, node: str, fn: Callable[[], T]) -> T:
        return fn()

    def warm(self) -> None:
        self._now("warm")

    def close(self) -> None:
        self._now("close")


# --------------------------------------------------------------------------- the backend


def all_capabilities() -> dict[str, bool]:
    from drills import backend

    names = (backend.ROOT, backend.NAMESPACES, backend.VETH, backend.NETEM, backend.TBF, backend.TUNTAP, backend.NFTABLES)
    return dict.fromkeys(names, True)


class FakeBackend:
    """A `Backend` deploying into a `World`. `paths`: per probe name, its candidate paths (lists
    of link names from source to target, most preferred first); a flow not listed takes the
    shortest path. `convergence_s`: how long routing takes to see a change of carrier.
    `containers`: nodes that, like containers, come back from a loss in a new namespace."""

    name = "fake"

    def __init__(
        self,
        paths: Mapping[str, Sequence[Sequence[str]]] | None = None,
        convergence_s: float = 0.0,
        capabilities: Mapping[str, bool] | None = None,
        containers: Sequence[str] = (),
    ) -> None:
        self.containers = frozenset(containers)
        self.paths = {name: [tuple(p) for p in candidates] for name, candidates in (paths or {}).items()}
        self.convergence_s = convergence_s
        self._caps = dict(capabilities) if capabilities is not None else all_capabilities()
        self.engines: Mapping[str, str] = {}
        self.world: World | None = None
        self.probes: FakeProbes | None = None  # the last started
        self.torn_down = False

    def capabilities(self) -> Capabilities:
        return self._caps

    def deploy(self, topology: Topology, run: Run) -> None:
        self.world = World(topology)
        self.engines = {link.name: "kernel" for link in topology.links}

    def ops(self, run: Run, clock: Clock) -> NodeOps:
        assert self.world is not None, "deploy first"
        return FakeOps(self.world, clock, self.containers)

    def teardown(self, run: Run) -> TeardownReport:
        self.torn_down = True
        return TeardownReport(removed=[f"fake testbed of run {run.run_id}"])

    def namespace_of(self, run: Run, node: str) -> str:
        return f"fake-{run.run_id}-{node}"

    def probe_starter(self) -> ProbeStarter:
        """The `probes` argument of `run_drill` for this backend."""

        def start(
            scenario: Scenario, ops: NodeOps, faults: Mapping[str, Fault], clock: Clock, seed: int
        ) -> FakeProbes:
            assert self.world is not None, "deploy first"
            self.probes = FakeProbes(self, self.world, scenario, faults, clock)
            return self.probes

        return start


# --------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class Flow:
    """Where a probe's packets go: from `source` to `target` (a round trip unless `one_way`),
    carrying `source_ip` out and `target_ip` back."""

    source: str
    target: str
    source_ip: str
    target_ip: str
    candidates: tuple[tuple[str, ...], ...]
    one_way: bool = False


@dataclass
class FakeProbes:
    """`RunningProbes` whose records are synthesized from the world's history when stopped."""

    backend: FakeBackend
    world: World
    scenario: Scenario
    faults: Mapping[str, Fault]
    clock: Clock
    followed: list[str] = field(default_factory=list)
    aborted: bool = False

    def __post_init__(self) -> None:
        self.start_s = self.clock.now_s()

    @property
    def count(self) -> int:
        return len(self.scenario.source.probes)

    def health(self, now_s: float) -> list[ProbeHealth]:
        return []

    def follow(self, node: str, log: Log) -> None:
        self.followed.append(node)

    def abort(self) -> None:
        self.aborted = True

    def stop(self) -> tuple[list[StreamRecord | ProbeRecord], list[StreamRecord]]:
        end_s = self.clock.now_s()
        records: list[StreamRecord | ProbeRecord] = []
        for probe in self.scenario.source.probes:
            # A command probe runs in its own node: answered while that node lives.
            flow = self._flow(probe.name, probe.source, getattr(probe, "to", probe.source))
            if isinstance(probe, model.UdpStreamProbe):
                records.append(self._stream(probe.name, probe.rate_pps, probe.size_bytes, flow, end_s))
            else:
                records.append(self._samples(probe, flow, end_s))
        pairs = []
        wanted = {(s, t) for found in partition_pairs(self.faults).values() for s, t, _cut in found}
        for source, target in sorted(wanted):
            flow = replace(self._flow(pair_name(source, target), source, target), one_way=True)
            pairs.append(self._stream(pair_name(source, target), PAIR_RATE_PPS, 64, flow, end_s))
        return records, pairs

    def _flow(self, name: str, source: str, to: str) -> Flow:
        topology = self.world.topology
        target_ip, target = topology.probe_target(to)
        assert target is not None, f"{name}: the fake world routes only to nodes"
        candidates = self.backend.paths.get(name) or [shortest_path(topology, source, target)]
        source_ip = topology.node(source).primary_address
        return Flow(source, target, str(source_ip), str(target_ip), tuple(tuple(c) for c in candidates))

    def _stream(self, name: str, rate_pps: int, size_bytes: int, flow: Flow, end_s: float) -> StreamRecord:
        record = StreamRecord(name, rate_pps, size_bytes)
        for sequence in itertools.count():
            sent_s = self.start_s + sequence / rate_pps
            if sent_s >= end_s:
                break
            record.sent.append(sent_s)
            record.send_lateness_s.append(0.0)
            latency_s = self._latency(flow, sent_s)
            if latency_s is not None:
                record.received[sequence] = sent_s + latency_s
        return record

    def _samples(self, probe: Any, flow: Flow, end_s: float) -> ProbeRecord:
        record = ProbeRecord(probe.name, probe.type, probe.interval, probe.timeout, target=flow.target_ip)
        for k in itertools.count():
            sent_s = self.start_s + k * probe.interval
            if sent_s >= end_s:
                break
            latency_s = self._latency(flow, sent_s)
            ok = latency_s is not None and latency_s <= probe.timeout
            record.samples.append(Sample(sent_s, ok, latency_s if ok else None, "answered" if ok else "timed out"))
        return record

    def _latency(self, flow: Flow, sent_s: float) -> float | None:
        """The packet's latency (one way or round trip), or None when it is lost."""
        seen = self.world.at(sent_s - self.backend.convergence_s)
        now = self.world.at(sent_s)
        path = next((p for p in flow.candidates if self._carrier_all(seen, flow.source, p)), None)
        if path is None:
            return None
        out = self._cross(now, flow.source, path, flow.source_ip)
        if out is None or flow.one_way:
            return out
        back = self._cross(now, flow.target, tuple(reversed(path)), flow.target_ip)
        return None if back is None else out + back

    def _hops(self, start: str, path: Sequence[str]) -> list[tuple[Link, Interface, Interface, str]]:
        """(link, sending end, receiving end, direction) along `path` from node `start`."""
        hops, here = [], start
        for name in path:
            link = self.world.topology.link(name)
            end, peer, direction = (link.a, link.b, "a-to-b") if link.a.node == here else (link.b, link.a, "b-to-a")
            assert end.node == here, f"path {path} does not continue from {here} over {name}"
            hops.append((link, end, peer, direction))
            here = peer.node
        return hops

    def _carrier_all(self, state: State, start: str, path: Sequence[str]) -> bool:
        return all(state.carrier(end, peer) for _link, end, peer, _d in self._hops(start, path))

    def _cross(self, state: State, start: str, path: Sequence[str], source_ip: str) -> float | None:
        if start in state.dead:
            return None
        latency_s = 0.0
        for link, end, peer, direction in self._hops(start, path):
            if not state.carrier(end, peer) or peer.node in state.dead:
                return None
            settings = in_force(state.impairment(link.name, direction))
            if settings is not None and settings.loss_pct >= 100.0:
                return None
            if dropped(state.tables, peer, source_ip):
                return None
            latency_s += HOP_LATENCY_S + (settings.delay_s if settings is not None else 0.0)
        return latency_s


def in_force(settings: Settings | None) -> Settings | None:
    """What an impairment puts in force when asked: a ramp starts at its `from` delay (its
    driver changes it from there, in place); anything else as given."""
    if settings is None or settings.ramp is None:
        return settings
    return replace(settings, delay_s=settings.ramp.delay_from, ramp=None)


def dropped(tables: Sequence[Table], arriving: Interface, source_ip: str) -> bool:
    """Whether the tables in force drop a packet from `source_ip` arriving on `arriving`, read as
    nftables would: netdev ingress chains of that interface, inet/ip prerouting chains of its node;
    the first rule whose every match holds decides; a chain's policy is accept."""
    for table in tables:
        if table.node != arriving.node:
            continue
        for chain in table.chains:
            if chain.hook == "ingress" and chain.device != arriving.name:
                continue
            if chain.hook not in ("ingress", "prerouting"):
                continue
            for rule in chain.rules:
                if all(_holds(_field(m), m.values, arriving, source_ip) for m in rule.matches):
                    if rule.verdict == "drop":
                        return True
                    break
    return False


# A match's field as the rule records name it (the nft listing's keys, or drills.rules' FIELDS).
SOURCE_FIELDS = ("ip.saddr", "ip6.saddr", "ipv4 source", "ipv6 source")
INTERFACE_FIELDS = ("meta.iifname", "input interface")


def _field(match: Any) -> str:
    return str(getattr(match, "field", None) or match.key)


def _holds(field_name: str, values: Sequence[str], arriving: Interface, source_ip: str) -> bool:
    if field_name in SOURCE_FIELDS:
        address = ip_address(source_ip)
        networks = [ip_network(v, strict=False) for v in values]
        return any(address.version == net.version and address in net for net in networks)
    if field_name in INTERFACE_FIELDS:
        return arriving.name in values
    return False  # e.g. an ICMPv6 type: the probes' packets are UDP


def shortest_path(topology: Topology, source: str, target: str) -> tuple[str, ...]:
    """The links of a shortest path from `source` to `target` (breadth first, file order)."""
    previous: dict[str, tuple[str, str]] = {}  # node -> (node before it, link)
    queue, seen = deque([source]), {source}
    while queue:
        here = queue.popleft()
        if here == target:
            break
        for link in topology.links:
            for end, peer in ((link.a, link.b), (link.b, link.a)):
                if end.node == here and peer.node not in seen:
                    seen.add(peer.node)
                    previous[peer.node] = (here, link.name)
                    queue.append(peer.node)
    path: list[str] = []
    node = target
    while node != source:
        assert node in previous, f"no path from {source} to {target}"
        node, link_name = previous[node]
        path.append(link_name)
    return tuple(reversed(path))

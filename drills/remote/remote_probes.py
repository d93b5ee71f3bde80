"""The controller's side of probes on other hosts: a drill's probes started on the agents holding
their source nodes, read for the live view, stopped, and their records mapped onto the
controller's clock.

Each probe runs on the host of its source node, in that host's agent
(drills.remote.probe_service), on the agent's monotonic clock. A udp-stream whose target node is
on another host gets its echo from that host's agent: the echoes are opened first, and each
port is handed to its sender. At stop every instant of a record (send and arrival instants of a
stream, the start of each sample) is mapped with the offset of the host that stamped it:
`controller_instant = agent_instant - offset_s`. Durations (round trips, send lateness,
latencies) are on one clock and stay as they are; loss-derived outage is a count of packets
and the sender's own rate, so it needs no clock at all.

What the mapping costs in accuracy is stated per probe (`placements`): which hosts the probe
touched, the host whose clock its instants are on, and that host's offset bound. Every mapped
instant is true within +- `bound_s`; a figure that relates a probe instant to an instant on
another clock (a fault confirmed by the controller: detection, recovery, the instants in a
report) gets `bound_s` added to its accuracy. A figure within one record (outage, loss, round
trips) gets nothing added.

The partition pair mesh runs across hosts too: every host whose nodes are in a pair runs its
part of one mesh (the same pairs in the same order everywhere, so pair indices and rates agree),
sending from its own sources and receiving at its own destinations; at stop each pair's record
is put together from the sending host's send instants and the receiving host's arrivals, each
mapped with its own host's offset (a one-way delay across two hosts is then true within the sum
of both bounds: `pair_placements`). The live view shows no pair health across hosts.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from drills.errors import BackendError, BadInput, DrillError
from drills.probes import pair_mesh
from drills.probes.app import STOP_SLACK_S
from drills.probes.pair_mesh import PairEnd
from drills.records import ProbeHealth, ProbeRecord, StreamRecord
from drills.remote import probe_records
from drills.remote.probe_records import MAX_RECORD_UNITS, PART_UNITS, RecordParts
from drills.scenario.probes import Spec, UdpStreamSpec
from drills.scenario.resolved import Scenario

Log = Callable[[str], None]
Record = StreamRecord | ProbeRecord
DRAIN_S = 0.5  # as on one machine: echoes in flight when the senders stop
ECHO_SUFFIX = "@echo"  # an echo's probe id: its stream's name and this (names cannot hold "@")
MESH_ID = "@pair-mesh"  # the pair mesh's probe id on every host
MESH_DRAIN_S = 0.2  # as on one machine, when no stream drained already


class Site(Protocol):
    """One host's agent, as the probes see it. The agent client adapts in two lines:
    `call(method, *args)` is `client.call("probe", method, list(args), {})`, and the offset is
    the clock estimate of drills.remote.offset (`controller_instant = agent_instant - offset_s`,
    true within +- `bound_s`)."""

    @property
    def host(self) -> str: ...

    @property
    def offset_s(self) -> float: ...

    @property
    def bound_s(self) -> float: ...

    def call(self, method: str, *args: object) -> object: ...


@dataclass(frozen=True)
class ProbePlacement:
    """Where one probe ran and what that costs its instants. `clock_host` stamped every instant
    of its record (its source node's host); `hosts` are every host it touched (the source's,
    then the echo's when that is another); `offset_s` is what its instants were mapped by and
    `bound_s` how far a mapped instant may be from the truth (0 on the controller's own clock)."""

    probe: str
    clock_host: str
    hosts: tuple[str, ...]
    offset_s: float
    bound_s: float


@dataclass
class _Started:
    spec: Spec
    site: Site
    echo_site: Site | None  # a stream's echo on another host

    @property
    def probe_id(self) -> str:
        return self.spec.name


def start(scenario: Scenario, sites: Mapping[str, Site], seed: int) -> RemoteProbes:
    """Start every probe of `scenario` on the site holding its source node (`sites[node]`): the
    echoes of streams whose target is on another site first, then the streams and application
    probes in file order, each stream tagged `seed + index` as on one machine. Whatever started
    is stopped again if one cannot start (BackendError naming the host)."""
    probes: list[_Started] = []
    for spec in scenario.probes:
        site = _site(sites, spec.source, spec.name)
        echo_site = None
        if isinstance(spec, UdpStreamSpec) and spec.target_node is not None:
            target = _site(sites, spec.target_node, spec.name)
            echo_site = None if target.host == site.host else target
        probes.append(_Started(spec, site, echo_site))
    ends = pair_mesh.mesh_ends(scenario)
    mesh_sites = {pair_end.node: _site(sites, pair_end.node, "partition pair mesh") for pair in ends for pair_end in pair}
    running = RemoteProbes(probes, [], ends, mesh_sites)
    try:
        echo_at: dict[str, tuple[str, int]] = {}
        for p in probes:
            if p.echo_site is not None:
                spec = p.spec
                assert isinstance(spec, UdpStreamSpec) and spec.target_node is not None and spec.target_address is not None
                family = socket.AF_INET6 if spec.target_address.version == 6 else socket.AF_INET
                port = _call(p.echo_site, spec.name, "echo", p.probe_id + ECHO_SUFFIX, spec.target_node, str(spec.target_address), int(family))
                running.started.append((p.echo_site, p.probe_id + ECHO_SUFFIX))
                if not isinstance(port, int):
                    raise BackendError(f"{p.echo_site.host}: echo of probe {spec.name} answered no port: {port!r:.80}")
                echo_at[p.probe_id] = (str(spec.target_address), port)
        for index, p in enumerate(probes):
            if isinstance(p.spec, UdpStreamSpec):
                tag = (seed + index) & 0xFFFFFFFF
                _call(p.site, p.probe_id, "stream", p.probe_id, p.spec, tag, echo_at.get(p.probe_id))
            else:
                _call(p.site, p.probe_id, "app", p.probe_id, p.spec)
            running.started.append((p.site, p.probe_id))
        if ends:
            pairs = [(a.node, str(a.address), b.node, str(b.address)) for a, b in ends]
            for site in _distinct(mesh_sites.values()):
                mine = [node for node, where in mesh_sites.items() if where.host == site.host]
                send_from = sorted({a.node for a, _b in ends} & set(mine))
                receive_at = sorted({b.node for _a, b in ends} & set(mine))
                _call(site, "partition pair mesh", "mesh", MESH_ID, pairs, pair_mesh.mesh_tag(seed), send_from, receive_at)
                running.started.append((site, MESH_ID))
    except BaseException:
        running.abort()
        raise
    return running


class RemoteProbes:
    """The probes of one drill on the agents (drills.engine.drill's RunningProbes)."""

    def __init__(
        self,
        probes: list[_Started],
        started: list[tuple[Site, str]],
        mesh: list[tuple[PairEnd, PairEnd]] | None = None,
        mesh_sites: Mapping[str, Site] | None = None,
    ) -> None:
        self._probes = probes
        self._mesh = mesh or []
        self._mesh_sites = dict(mesh_sites or {})
        self.pair_placements: list[ProbePlacement] = []  # filled at stop
        self.started = started  # (site, probe id) of every endpoint started, echoes included
        self._placements: list[ProbePlacement] | None = None

    @property
    def count(self) -> int:
        return len(self._probes)

    @property
    def placements(self) -> list[ProbePlacement]:
        """Per probe, in file order: the host whose clock stamped it and the bound of its mapped
        instants (the offsets as they were when the records were mapped, once stopped)."""
        if self._placements is not None:
            return list(self._placements)
        return [_placement(p) for p in self._probes]

    def health(self, now_s: float) -> list[ProbeHealth]:
        """Every probe's state at `now_s` on the controller's clock (asked of each site at its
        own `now_s + offset_s`). A site that cannot answer shows its probes as unreachable:
        this runs on a live view's thread and never raises."""
        by_name: dict[str, ProbeHealth] = {}
        for site in _distinct(p.site for p in self._probes):
            try:
                answer = site.call("health", now_s + site.offset_s)
            except DrillError:
                continue
            if isinstance(answer, list):
                by_name.update((h.name, h) for h in answer if isinstance(h, ProbeHealth))
        return [
            by_name.get(p.spec.name) or ProbeHealth(p.spec.name, p.spec.kind, 0, 0, None, None, "unreachable")
            for p in self._probes
        ]

    def follow(self, node: str, log: Log) -> None:
        """`node`'s namespace was replaced on its host: the probes and echoes there reopen their
        sockets in it; a stream whose echo moved to a new port is pointed at it."""
        sites = _distinct(
            [p.site for p in self._probes] + [p.echo_site for p in self._probes if p.echo_site] + list(self._mesh_sites.values())
        )
        for site in sites:
            try:
                moved = site.call("follow", node)
            except DrillError as exc:
                log(f"  {node}: {site.host}: probes could not follow it into its new namespace: {exc}")
                continue
            for probe_id, lines in moved.items() if isinstance(moved, dict) else ():
                log(f"  {node}: probe {probe_id} on {site.host}: {', '.join(str(line) for line in lines)}")
                if probe_id.endswith(ECHO_SUFFIX):
                    self._retarget(site, probe_id.removesuffix(ECHO_SUFFIX), log)

    def _retarget(self, echo_site: Site, name: str, log: Log) -> None:
        for p in self._probes:
            if p.spec.name == name and isinstance(p.spec, UdpStreamSpec) and p.echo_site is not None and p.echo_site.host == echo_site.host:
                try:
                    port = echo_site.call("port", name + ECHO_SUFFIX)
                    p.site.call("retarget", name, (str(p.spec.target_address), port))
                except DrillError as exc:
                    log(f"  probe {name}: could not follow its echo to its new port: {exc}")

    def stop(self) -> tuple[list[StreamRecord | ProbeRecord], list[StreamRecord]]:
        """Stop every probe and bring its record back, mapped onto the controller's clock: all
        senders stop first, then one drain covers every stream (the first stream's stop waits
        it), then the echoes close. The pair mesh does not run across hosts: no pair records.
        BackendError naming the hosts if a record could not be brought back (every probe is
        stopped either way)."""
        streams = [p for p in self._probes if isinstance(p.spec, UdpStreamSpec)]
        mesh_hosts = _distinct(self._mesh_sites.values())
        failures: list[str] = []
        for site in _distinct([p.site for p in streams] + mesh_hosts):
            ids = [p.probe_id for p in streams if p.site.host == site.host]
            ids += [MESH_ID] if any(m.host == site.host for m in mesh_hosts) else []
            try:
                site.call("stop_sending", ids)
            except DrillError as exc:
                failures.append(f"{site.host}: stopping the senders: {exc}")
        records: list[Record] = []
        placements: list[ProbePlacement] = []
        drain_s = DRAIN_S
        for p in self._probes:
            try:
                record = self._collect(p.site, p.probe_id, drain_s if isinstance(p.spec, UdpStreamSpec) else 0.0)
            except DrillError as exc:
                failures.append(f"{p.site.host}: probe {p.probe_id}: {exc}")
                continue
            if isinstance(p.spec, UdpStreamSpec):
                drain_s = 0.0  # drained once, for every stream: they all stopped sending before
            placement = _placement(p)
            placements.append(placement)
            mapped = probe_records.to_controller(record, placement.offset_s)
            if isinstance(mapped, StreamRecord):
                # Its instants are the agent's, mapped: their distance to a fault instant (the
                # controller's) carries the offset's bound (drills.measure adds it).
                mapped.clock_bound_s = placement.bound_s
            records.append(mapped)
        # The streams' drain covered the mesh's packets in flight too (it stopped sending first).
        pair_records = self._stop_mesh(mesh_hosts, 0.0 if drain_s == 0.0 else MESH_DRAIN_S, failures)
        for p in self._probes:
            if p.echo_site is not None:
                try:
                    p.echo_site.call("stop", p.probe_id + ECHO_SUFFIX, 0.0)
                except DrillError as exc:
                    failures.append(f"{p.echo_site.host}: echo of probe {p.probe_id}: {exc}")
        self.started = []
        self._placements = placements
        if failures:
            raise BackendError("probe records could not be brought back: " + "; ".join(failures))
        return records, pair_records

    def _stop_mesh(self, hosts: list[Site], drain_s: float, failures: list[str]) -> list[StreamRecord]:
        """Stop the mesh on every host (the first drains, if no stream did) and put each pair's
        record together: sent on its source's host, received on its destination's."""
        parts: dict[str, list[Record]] = {}
        for site in hosts:
            try:
                answers = site.call("stop", MESH_ID, drain_s)
                if not isinstance(answers, list) or len(answers) != len(self._mesh):
                    raise BackendError(f"answered no record per pair: {answers!r:.80}")
                records = [self._fetch(site, a) for a in answers]
                if not all(isinstance(r, StreamRecord) for r in records):
                    raise BackendError("answered a record that is not a pair's")
                parts[site.host] = records
            except DrillError as exc:
                failures.append(f"{site.host}: partition pair mesh: {exc}")
            drain_s = 0.0
        if len(parts) < len(hosts):
            return []
        pairs: list[StreamRecord] = []
        self.pair_placements = []
        for index, (a, b) in enumerate(self._mesh):
            sender, receiver = self._mesh_sites[a.node], self._mesh_sites[b.node]
            sent, got = parts[sender.host][index], parts[receiver.host][index]
            assert isinstance(sent, StreamRecord) and isinstance(got, StreamRecord)
            out = probe_records.to_controller(sent, sender.offset_s)
            back = probe_records.to_controller(got, receiver.offset_s)
            assert isinstance(out, StreamRecord) and isinstance(back, StreamRecord)
            out.received, out.duplicates, out.reordered = back.received, back.duplicates, back.reordered
            out.duplicate_seqs, out.reordered_seqs = back.duplicate_seqs, back.reordered_seqs
            pairs.append(out)
            hosts_touched = (sender.host,) if sender.host == receiver.host else (sender.host, receiver.host)
            bound_s = sender.bound_s + (receiver.bound_s if receiver.host != sender.host else 0.0)
            self.pair_placements.append(ProbePlacement(out.name, sender.host, hosts_touched, sender.offset_s, bound_s))
        return pairs

    def _collect(self, site: Site, probe_id: str, drain_s: float) -> Record:
        return self._fetch(site, site.call("stop", probe_id, drain_s))

    def _fetch(self, site: Site, answer: object) -> Record:
        """The record an answer to `stop` stands for: itself, or fetched in its parts."""
        if isinstance(answer, RecordParts):
            probe_id = answer.probe_id
            try:
                if not 0 < answer.per_part <= PART_UNITS or answer.units > MAX_RECORD_UNITS:
                    raise BackendError(f"a record in parts of {answer.per_part}, {answer.units} in all: out of bounds")
                step = answer.per_part
                pieces = [site.call("part", probe_id, start, step) for start in range(0, answer.units, step)]
            finally:
                with contextlib.suppress(DrillError):
                    site.call("release", probe_id)
            records = [p for p in pieces if isinstance(p, StreamRecord | ProbeRecord)]
            if len(records) < len(pieces):
                raise BackendError(f"a part of {probe_id}'s record is not a record")
            answer = probe_records.merge(records)
        if not isinstance(answer, StreamRecord | ProbeRecord):
            raise BackendError(f"answered no record: {answer!r:.80}")
        return answer

    def abort(self) -> None:
        """Stop whatever still runs on every site at once, nothing drained, nothing brought back
        (the error path; idempotent; a site that cannot be reached is left to its dead-man
        switch)."""
        for site in _distinct(site for site, _id in self.started):
            with contextlib.suppress(DrillError):
                site.call("stop_all")
        self.started = []


def stop_wait_s(scenario: Scenario) -> float:
    """The longest one `stop` call may take on an agent: the streams' drain, or an application
    probe's sample in flight (its timeout) and the slack its stop allows. A Site's `call` must
    wait at least this long for an answer to `stop` (a client's default timeout may be shorter)."""
    longest_s = max((p.timeout_s for p in scenario.probes if not isinstance(p, UdpStreamSpec)), default=0.0)
    return max(DRAIN_S, MESH_DRAIN_S, longest_s + STOP_SLACK_S)


def _site(sites: Mapping[str, Site], node: str, probe: str) -> Site:
    site = sites.get(node)
    if site is None:
        raise BadInput(f"probe {probe}: node {node} is placed on no host")
    return site


def _call(site: Site, probe: str, method: str, *args: object) -> object:
    try:
        return site.call(method, *args)
    except DrillError as exc:
        raise BackendError(f"{site.host}: probe {probe}: {method}: {exc}") from exc


def _distinct(sites: Iterable[Site]) -> list[Site]:
    """Each host's site once, in first-seen order (one host, one agent)."""
    seen: dict[str, Site] = {}
    for site in sites:
        seen.setdefault(site.host, site)
    return list(seen.values())


def _placement(p: _Started) -> ProbePlacement:
    hosts = (p.site.host,) if p.echo_site is None else (p.site.host, p.echo_site.host)
    return ProbePlacement(p.spec.name, p.site.host, hosts, p.site.offset_s, p.site.bound_s)

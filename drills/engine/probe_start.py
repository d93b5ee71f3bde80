"""Probes of a drill: started from the scenario's resolved probe records, followed into a node's
new namespace, read for the live view, stopped for the analysis.

Every socket comes from the backend's SocketOps, addressed by node name: this module, like the
probes, never sees a namespace. Besides the scenario's own probes, a timeline with partitions
gets the one-way pair mesh across them (drills.probes.pair_mesh), judged by
drills.engine.pair_probes once the drill is over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drills.backend import SocketOps
from drills.clock import Clock
from drills.errors import DrillError
from drills.measure_samples import app_health, stream_health
from drills.probes.app import AppProbe, make_probe
from drills.probes.pair_mesh import PairMesh, mesh_ends, mesh_tag
from drills.probes.pair_mesh import partition_node_pairs as partition_node_pairs
from drills.probes.udp_stream import DRAIN_S as STREAM_DRAIN_S
from drills.probes.udp_stream import UdpStream
from drills.records import ProbeHealth, ProbeRecord, StreamRecord
from drills.scenario.probes import Spec, UdpStreamSpec
from drills.scenario.resolved import Scenario

RunningProbe = UdpStream | AppProbe | PairMesh
Log = Callable[[str], None]


@dataclass
class Collected:
    """What the probes observed, once stopped: the scenario's streams and application probes
    in file order, and the pair mesh's one-way records (empty without partitions)."""

    streams: list[StreamRecord]
    apps: list[ProbeRecord]
    pairs: list[StreamRecord]


def start_probes(scenario: Scenario, sockets: SocketOps, clock: Clock, seed: int) -> list[RunningProbe]:
    """Start every probe of `scenario` in its source node (an application probe samples at its
    interval), then the pair mesh when the timeline has partitions (last in the list). Sockets
    are opened and bound here, before the drill clock starts. Whatever started is stopped again
    if one probe cannot start."""
    started: list[RunningProbe] = []
    try:
        for index, spec in enumerate(scenario.probes):
            probe = _probe(spec, sockets, clock, tag=(seed + index) & 0xFFFFFFFF)
            probe.start()
            started.append(probe)
        mesh = start_mesh(scenario, sockets, clock, seed)
        if mesh is not None:
            started.append(mesh)
    except BaseException:
        stop_probes(started, drain=False)
        raise
    return started


def _probe(spec: Spec, sockets: SocketOps, clock: Clock, tag: int) -> UdpStream | AppProbe:
    if not isinstance(spec, UdpStreamSpec):
        return make_probe(spec, sockets, clock)
    # The loader refuses a stream whose source has no address or whose target no node holds.
    assert spec.source_address is not None and spec.target_node is not None and spec.target_address is not None
    return UdpStream(
        spec.name, sockets, spec.source, spec.source_address, spec.target_node, spec.target_address,
        spec.rate_pps, spec.size_bytes, clock, tag=tag, dscp=spec.dscp,
    )  # fmt: skip


def start_mesh(scenario: Scenario, sockets: SocketOps, clock: Clock, seed: int) -> PairMesh | None:
    """The one-way probe mesh across every partition of the timeline, started; None without
    partitions. A pair whose nodes have no address of one family is left out (and reported
    as unreachable)."""
    ends = mesh_ends(scenario)
    if not ends:
        return None
    mesh = PairMesh(ends, sockets, clock, tag=mesh_tag(seed))
    mesh.start()
    return mesh


def follow(node: str, probes: Sequence[RunningProbe], log: Log) -> None:
    """The namespace of `node` was replaced (a container restored): reopen every probe socket
    of `node` there, through the SocketOps each probe was started with. A probe that cannot is
    data, not an error: it keeps its old socket and measures an outage from here, said in the log."""
    for probe in probes:
        name = "partition pair mesh" if isinstance(probe, PairMesh) else f"probe {probe.record.name}"
        try:
            moved = probe.reopen(node)
        except (OSError, DrillError) as exc:
            log(f"  {node}: {name} could not follow it into its new namespace: {exc}")
            continue
        if moved:
            log(f"  {node}: {name} reopened in its new namespace ({', '.join(moved)})")


def snapshot(probes: Sequence[RunningProbe], clock: Clock, pairs_max: int) -> Callable[[], list[ProbeHealth]]:
    """What a live view calls, from its own thread, for every probe's health: reads counters
    only (drills.measure_samples). The pair mesh's pairs are shown up to `pairs_max` of them."""
    singles = [p for p in probes if not isinstance(p, PairMesh)]
    meshes = [p for p in probes if isinstance(p, PairMesh)]
    pairs = [r for mesh in meshes for r in mesh.records]
    pairs = pairs if len(pairs) <= pairs_max else []

    def read() -> list[ProbeHealth]:
        now_s = clock.now_s()
        return [
            stream_health(p.record, now_s) if isinstance(p, UdpStream) else app_health(p.record, now_s) for p in singles
        ] + [stream_health(record, now_s, kind="pair") for record in pairs]

    return read


def stop_probes(probes: Sequence[RunningProbe], drain: bool = True) -> Collected:
    """Stop every probe, in order, and collect its records. `drain` waits for the echoes in
    flight (the end of a drill); without it the sockets close at once (an error, an abort)."""
    collected = Collected([], [], [])
    streams = [probe for probe in probes if isinstance(probe, UdpStream)]
    for stream in streams:  # every stream ends at once: one drain then covers all their echoes
        stream.stop_sending()
    drain_s = STREAM_DRAIN_S if drain else 0.0
    for probe in probes:
        if isinstance(probe, UdpStream):
            # Waited by the first stream only: waited in turn, 100 streams took 50 s to stop.
            collected.streams.append(probe.stop(drain_s=drain_s))
            drain_s = 0.0
        elif isinstance(probe, AppProbe):
            collected.apps.append(probe.stop())
        else:
            collected.pairs += probe.stop() if drain else probe.stop(drain_s=0.0)
    return collected

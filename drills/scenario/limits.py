"""Every bound a scenario is checked against, in one place (and stated in the README).

`drill validate` refuses a value outside these before anything is built, rather than letting it
fail after deploy, at apply, or by exhausting the host. Each bound says why it is where it is.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- time

MAX_DRILL_DURATION_S = 7 * 24 * 3600.0
"""The longest drill: every instant (`at`, plus `for`, repeats and flaps) ends within it, and so
does every single duration written in a scenario. A week covers any exercise; beyond it a typo
(`400h`, `1e9`) is far likelier than intent."""

MAX_NUMBER_DIGITS = 12
"""Digits in one number of a duration or rate (`0.000001s`, `999999999999ms`): more is never
needed, and a 400-digit hour count is refused before any arithmetic is done with it."""

MIN_APP_PROBE_INTERVAL_S = 0.010
"""Application probes (icmp, tcp-connect, http, dns, command) sample at most every 10 ms: each
sample is a socket, or a process, opened by a Python thread."""

MIN_FAULT_PERIOD_S = 0.010
"""The shortest period of a repeated step (`repeat.every`), a link flap or a handover: the engine
applies and confirms each change in the kernel, which takes a millisecond or more."""

MAX_PROBE_INTERVAL_S = 3600.0
"""A probe sampling less often than hourly measures no outage."""

MAX_TIMEOUT_S = 3600.0
"""Probe timeouts, `late_after`, and readiness timeouts: above 0 and at most an hour (a timeout
is also how long stopping a probe, or a deploy, may wait)."""

# --------------------------------------------------------------------------- traffic

MAX_STREAM_RATE_PPS = 10_000
"""One udp-stream sends at most 10,000 packets/s (one every 100 µs): the sender is one Python
thread; bench/probes.py sustains about 4,000 packets/s a stream over ten streams."""

MAX_PROBE_PPS_PER_HOST = 200_000
"""Total offered probe traffic of a drill (every probe runs on this host): udp-streams count
twice when echoed (the echo is a packet too), an application probe one packet per interval,
and the partition pair mesh its whole rate."""

MIN_RATE_BPS = 8
"""The smallest rate limit: tc counts bytes per second, so 1 byte/s."""

MAX_RATE_BPS = 400_000_000_000
"""The largest rate limit, 400 Gbit/s: tbf keeps its queue limit in a 32-bit count of bytes,
which 50 ms of traffic (drills.engine.degrade) overflows above about 680 Gbit/s."""

# --------------------------------------------------------------------------- sizes

MAX_NODES = 5_000
"""Nodes a host runs (issue 17 aims at 3,000): each is a namespace or a container."""

MAX_LINKS = 20_000
"""Links (veth pairs, two interfaces each) of one testbed."""

MAX_TOPOLOGY_INCLUDES = 16
"""Topology files one scenario joins (`topology: {include: [...]}`); includes do not nest."""

MAX_SEGMENTS = 1_000
"""LAN segments of one testbed (each is a namespace holding a bridge)."""

MAX_SEGMENT_MEMBERS = 64
"""Members of one LAN segment (each a veth pair, one end a port of the segment's bridge): a
switch's ports; a larger broadcast domain is a routing design to split, not a drill to run."""

MAX_PROBES = 1_000
"""Probes of one drill (each is a thread or two of this process)."""

MAX_STEPS = 10_000
"""Timeline steps of one drill, as written."""

MAX_TIMELINE_EVENTS = 200_000
"""Fault events a timeline expands to (each repetition of a step, each down period of a flap):
the engine schedules and journals every one."""

MAX_TEXT_BYTES = 65_536
"""The longest command, note or other text value: a shell command line, not a file."""

MAX_NAME_BYTES = 40
"""Names (nodes, links, probes, steps, services; ASCII, so bytes are characters). Node names
become namespace names (`drill-RUN-NODE` under /run/netns, 53 bytes at most), container names
and container host names (the kernel allows 64 bytes)."""

MAX_KNOWN_ANSWERS = 200
"""Known answers (`expect_known:`) of one drill: each is a row of the validation table, judged
against every event of its step."""

MAX_SOURCE_BYTES = 500
"""The longest `source:` of a known answer: a citation or a one-line derivation."""

MAX_PAIR_MESH_PPS = 2_000
"""The partition pair mesh's whole rate (drills.probes.pair_mesh): it must not compete with the
drill's own probes."""

MIN_PAIR_RATE_PPS = 5
"""The slowest a pair of the mesh is probed (a 200 ms resolution of its outage)."""

MAX_MESH_PAIRS = MAX_PAIR_MESH_PPS // MIN_PAIR_RATE_PPS
"""Ordered node pairs the timeline's partitions may ask the mesh to probe (400)."""

PAIR_RATE_PPS = 100
"""The rate of each pair of the mesh while it is small: a 10 ms resolution of its outage."""


def pair_rate_pps(pairs: int) -> int:
    """Rate of each pair of a mesh of `pairs`: `PAIR_RATE_PPS`, lowered so that the mesh stays
    under `MAX_PAIR_MESH_PPS`, never below `MIN_PAIR_RATE_PPS`. The mesh runs at it, and the
    loader bounds the timeline's partitions by it (so it lives here, with the bounds)."""
    if pairs <= 0:
        return PAIR_RATE_PPS
    return max(MIN_PAIR_RATE_PPS, min(PAIR_RATE_PPS, MAX_PAIR_MESH_PPS // pairs))

"""results.json and samples.json.gz: what a drill observed, in a versioned, documented form.

`results.json` follows `drills/data/results.schema.json` (format 1): the scenario, environment
and capabilities, seed, method (offered rates, sustained validation, delay threshold), the
timeline with scheduled, issued and confirmed instants, baselines, every metric with its
accuracy bound, per-phase statistics, verdicts, and the known answers (`expect_known:`) judged.
Raw samples go to a compact side file, `samples.json.gz`: per probe, send instants (ms from the
drill clock's zero) and round-trip times (µs, -1 for a lost packet). Every report (`drill
report`) is rendered from these two files.

When the timeline has a partition, samples.json.gz also holds the pair mesh's raw samples, in one
section under the key `_pairs` (a name no probe can have: probe names start with a letter or a
digit), keyed by `source->target`, one entry per ordered pair probed, in the same encoding as
the probes': `sent_ms` (send instants, ms from the drill clock's zero, 3 decimals) and
`one_way_us` (arrival at the target - send instant, µs, -1 for a packet that never arrived; the
mesh measures one way, so this is a one-way delay, not a round trip; the drill counts an arrival
later than `method.pair_mesh.forwarding_delay_threshold_s` as lost), plus `rate_pps`,
`duplicates` and `reordered`. Every other top-level key is a probe: `read` returns the probes'
samples without the section (reports plot probes), `read_pair_samples` returns the section.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from drills import __version__, outdir
from drills.drill_result import LATE_AFTER_S, DrillResult
from drills.measure import lost_flags
from drills.records import ProbeRecord, StreamRecord

RESULTS_FORMAT = 1
RESULTS_FILE = "results.json"
# How a probe's `tolerated_loss` (random loss by design) enters the figures: stated in `method`.
TOLERATED_RULE = (
    "a stream's baseline, and the sustained stretch that marks its recovery, may lose up to this share of packets; "
    "an application probe's baseline likewise, and up to this share of an event's samples may fail in isolation "
    "(each between two successes): counted as lost, they start no outage and break no sustained run"
)
MAX_RESULTS_BYTES = 64 << 20  # read back (reports, compare, baselines): a hostile file is refused, not loaded
SAMPLES_FILE = "samples.json.gz"
PAIRS_SECTION = "_pairs"  # samples.json.gz: the pair mesh's samples (no probe name starts with `_`)


def results_schema() -> dict[str, Any]:
    """The JSON Schema results.json follows (format 1)."""
    text = resources.files("drills").joinpath("data/results.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def outcome(result: DrillResult) -> str:
    if result.inconclusive:
        return "inconclusive"
    return "passed" if result.passed else "failed"


def environment(capabilities: Mapping[str, bool]) -> dict[str, Any]:
    """Where the drill ran: the figures depend on it (kernel, Python, what the backend declared)."""
    return {
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "capabilities": dict(capabilities),
    }


def to_json(
    result: DrillResult, scenario_path: Path | None = None, env: dict[str, Any] | None = None
) -> dict[str, Any]:
    rates = {r.name: r.rate_pps for r in result.records}
    return {
        "format": RESULTS_FORMAT,
        "drills_version": __version__,
        "scenario": {"name": result.scenario, "path": str(scenario_path) if scenario_path else None},
        "run_id": result.run_id,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seed": result.seed,
        "outcome": outcome(result),
        "environment": env if env is not None else environment(result.capabilities),
        "method": {
            "outage": "lost packets / offered rate (RFC 6412 loss-derived)",
            "accuracy": "one packet gap + the sender's lateness at the loss's edges (an event with no loss: the widest interval between two sends in its window) + the event's window (issued -> in force: confirmed by the kernel) + the stream's clock bound",
            "offered_rate_pps": rates,
            "sender_scheduling": {r.name: r.sender_scheduling for r in result.records if r.sender_scheduling},
            "sender_lanes": {r.name: {"cpus": r.lane_cpus, "sent": r.lane_sent} for r in result.records if r.lane_sent},
            "sample_interval_s": {r.name: r.interval_s for r in result.app_records},
            "packet_size_bytes": {r.name: r.size_bytes for r in result.records},
            "sustained_validation_s": result.sustain_s,
            "application_outage": "from the first failed sample to the first success starting a sustained run (RFC 6413)",
            **({"tolerated_loss_pct": dict(result.tolerated_loss_pct), "tolerated_loss": TOLERATED_RULE} if result.tolerated_loss_pct else {}),
            "forwarding_delay_threshold_s": result.late_after_s,
            # A host that took CPU time from this machine during the clock may have held a sender
            # back; the accuracy states what that did, this says why (drills.realtime.steal_s).
            "host_steal_s": result.host_steal_s,
            **({"pair_mesh": pair_mesh_method(result.pair_records)} if result.pair_records else {}),
        },
        "duration_s": result.duration_s,
        "timeline": [asdict(step) | {"skew_s": step.skew_s} for step in result.steps],
        "timeline_changes": [asdict(change) for change in result.changes],
        "baselines": {name: asdict(b) | {"clean": b.clean} for name, b in result.baselines.items()},
        "metrics": [asdict(m) | {"impaired": m.impaired} for m in result.metrics],
        "phases": {name: [asdict(p) for p in phases] for name, phases in result.phases.items()},
        "availability": {name: asdict(a) | {"pct": a.pct} for name, a in result.availability.items()},
        "verdicts": [asdict(v) for v in result.verdicts],
        # `expect_known`, judged: each known answer's window against the measured figure ± accuracy.
        "known_answers": [asdict(k) | {"passed": k.passed} for k in result.known],
        "partition_pairs": [
            asdict(p)
            | {
                "reachable_in_baseline": p.reachable_in_baseline,
                "expected": p.expected,
                "observed": p.observed,
                "matches": p.matches,
            }
            for p in result.pairs
        ],
        "revert_failures": list(result.revert_failures),
        # The MSEL as played: each inject's planned and delivered time, holds, observations, the
        # stop word (drills.engine.player; read by `drill aar`).
        **({"exercise": result.exercise} if result.exercise else {}),
        # Which engine realised each link: `userspace` results come through a relay process
        # emulating netem (drills.userspace), not through the kernel's qdiscs.
        "link_engines": dict(getattr(result, "engines", {})),
        # Several machines: each host's clock against the controller's (offset and its bound,
        # which every instant measured on that host carries in its accuracy).
        **({"hosts": list(result.hosts)} if result.hosts else {}),
        "samples_file": SAMPLES_FILE,
    }


def samples_json(records: list[StreamRecord], t0_s: float, late_after_s: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for record in records:
        flags = lost_flags(record, late_after_s.get(record.name, 2.0))
        out[record.name] = {
            "rate_pps": record.rate_pps,
            "sent_ms": [round((t - t0_s) * 1e3, 3) for t in record.sent],
            "rtt_us": [
                -1 if lost else round((record.received[i] - sent) * 1e6)
                for i, (sent, lost) in enumerate(zip(record.sent, flags, strict=True))
            ],
            "duplicates": record.duplicates,
            "reordered": record.reordered,
        }
    return out


def pair_mesh_method(records: list[StreamRecord]) -> dict[str, Any]:
    """How the pair mesh probed (results.json `method.pair_mesh`): its samples' section too."""
    return {
        "pairs": len(records),
        "rate_pps": records[0].rate_pps if records else None,
        "forwarding_delay_threshold_s": LATE_AFTER_S,
        "samples_section": PAIRS_SECTION,
    }


def pair_samples_json(records: list[StreamRecord], t0_s: float) -> dict[str, Any]:
    """The pair mesh's samples, keyed `source->target`: the probes' encoding, one way. The
    arrival is kept as measured (no threshold applied) so a reader sees every packet that got
    through; the drill's own judgement counts one later than the threshold as lost."""
    return {
        record.name: {
            "rate_pps": record.rate_pps,
            "sent_ms": [round((t - t0_s) * 1e3, 3) for t in record.sent],
            "one_way_us": [
                round((record.received[i] - sent) * 1e6) if i in record.received else -1
                for i, sent in enumerate(record.sent)
            ],
            "duplicates": record.duplicates,
            "reordered": record.reordered,
        }
        for record in records
    }


def app_samples_json(records: list[ProbeRecord], t0_s: float) -> dict[str, Any]:
    """Application probes' samples in the same shape as streams' (rtt -1: failed), plus why."""
    return {
        record.name: {
            "interval_s": record.interval_s,
            "sent_ms": [round((sample.sent_s - t0_s) * 1e3, 3) for sample in record.samples],
            "rtt_us": [
                round(sample.latency_s * 1e6) if sample.ok and sample.latency_s is not None else -1
                for sample in record.samples
            ],
            "detail": [sample.detail for sample in record.samples],
        }
        for record in records
    }


def write(result: DrillResult, out_dir: Path, scenario_path: Path | None = None) -> Path:
    """Write results.json and samples.json.gz into `out_dir`; returns the results path."""
    outdir.make_dir(out_dir)  # never through a planted symlink: drills runs as root
    path = out_dir / RESULTS_FILE
    outdir.write_file(path, json.dumps(to_json(result, scenario_path), indent=2).encode())
    samples = samples_json(result.records, result.t0_s, result.late_after_s)
    samples.update(app_samples_json(result.app_records, result.t0_s))
    if result.pair_records:
        samples[PAIRS_SECTION] = pair_samples_json(result.pair_records, result.t0_s)
    outdir.write_file(out_dir / SAMPLES_FILE, gzip.compress(json.dumps(samples, separators=(",", ":")).encode()))
    return path


def read(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """results.json and the probes' samples (empty when the side file is missing) of a results
    directory; the pair mesh's are left out (`read_pair_samples`), so every key is a probe."""
    results, samples = _read_all(run_dir)
    samples.pop(PAIRS_SECTION, None)
    return results, samples


def read_pair_samples(run_dir: Path) -> dict[str, Any]:
    """The pair mesh's samples of a results directory, keyed `source->target` (empty: none)."""
    pairs: dict[str, Any] = _read_all(run_dir)[1].get(PAIRS_SECTION, {})
    return pairs


def _read_all(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from drills.errors import BadInput

    path = run_dir / RESULTS_FILE
    try:
        if path.stat().st_size > MAX_RESULTS_BYTES:
            raise BadInput(f"{path} is over {MAX_RESULTS_BYTES >> 20} MiB; a results.json drills wrote is far smaller")
        results: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{path} not found; give the directory a `drill run --out` wrote") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} is not readable JSON: {exc}") from None
    if results.get("format") != RESULTS_FORMAT:
        raise BadInput(f"{path} has format {results.get('format')!r}; this drills reads format {RESULTS_FORMAT}")
    samples: dict[str, Any] = {}
    try:
        with gzip.open(run_dir / results.get("samples_file", SAMPLES_FILE), "rt", encoding="utf-8") as handle:
            samples = json.load(handle)
    except (OSError, json.JSONDecodeError):
        pass
    return results, samples

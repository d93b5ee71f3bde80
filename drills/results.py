"""results.json: what a drill observed, in a versioned, machine-readable form."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drills import __version__
from drills.engine.drill import DrillResult

RESULTS_FORMAT = 1


def to_json(result: DrillResult) -> dict[str, Any]:
    return {
        "format": RESULTS_FORMAT,
        "drills_version": __version__,
        "scenario": result.scenario,
        "run_id": result.run_id,
        "seed": result.seed,
        "outcome": outcome(result),
        "method": {
            "outage": "lost packets / offered rate (RFC 6412 loss-derived), ± one packet gap + sender timestamp jitter p99",
            "sustained_validation_s": result.sustain_s,
            "forwarding_delay_threshold_s": result.late_after_s,
        },
        "timeline": [asdict(step) | {"skew_s": step.skew_s} for step in result.steps],
        "baselines": {name: asdict(b) | {"clean": b.clean} for name, b in result.baselines.items()},
        "metrics": [asdict(m) for m in result.metrics],
        "verdicts": [asdict(v) for v in result.verdicts],
    }


def outcome(result: DrillResult) -> str:
    if result.inconclusive:
        return "inconclusive"
    return "passed" if result.passed else "failed"


def write(result: DrillResult, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    path.write_text(json.dumps(to_json(result), indent=2))
    return path

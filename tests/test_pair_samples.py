"""The partition pair mesh beyond one run's results: its raw samples in samples.json.gz, its
spreads over `drill run --trials N`, and its pairs in `drill plan` (unit, then real namespaces)."""

from __future__ import annotations

import copy
import gzip
import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.console import Console

from drills.backends import layout
from drills.engine.drill import DrillResult
from drills.engine.plan import RUN_PLACEHOLDER, Plan, build_plan
from drills.engine.plan_pairs import LIST_PAIRS_MAX
from drills.probes.pair_mesh import MAX_AGGREGATE_PPS, PAIR_RATE_PPS, pair_rate_pps
from drills.records import StreamRecord
from drills.render import Renderer
from drills.reports import write_all
from drills.results import (
    PAIRS_SECTION,
    SAMPLES_FILE,
    pair_samples_json,
    read,
    read_pair_samples,
    results_schema,
    to_json,
    write,
)
from drills.scenario import Scenario
from drills.scenario.loader import load_scenario
from drills.trials import aggregate_pairs, pair_spreads_json

ENV = {"kernel": "k", "python": "3", "capabilities": {}}
ROOT = Path(__file__).resolve().parent.parent


def _renderer() -> tuple[Renderer, io.StringIO]:
    ui = Renderer()
    buffer = io.StringIO()
    ui.out = Console(file=buffer, width=220, highlight=False, soft_wrap=True)
    return ui, buffer


def _pair_record(t0: float) -> StreamRecord:
    """a->b at 100 packets/s: sequence 0 arrives after 300 µs, 1 never, 2 after 2.5 s (late)."""
    record = StreamRecord("a->b", 100, 64)
    record.sent = [t0 + 0.0, t0 + 0.01, t0 + 0.02]
    record.received = {0: t0 + 0.0003, 2: t0 + 0.02 + 2.5}
    record.duplicates = 1
    return record


# --------------------------------------------------------------------------- samples.json.gz


def test_pair_samples_use_the_probes_encoding_one_way() -> None:
    t0 = 1000.0
    samples = pair_samples_json([_pair_record(t0)], t0)
    assert samples == {
        "a->b": {
            "rate_pps": 100,
            "sent_ms": [0.0, 10.0, 20.0],
            "one_way_us": [300, -1, 2_500_000],  # as measured: the late arrival is kept
            "duplicates": 1,
            "reordered": 0,
        }
    }


def test_samples_file_holds_the_pairs_and_reports_still_render(tmp_path: Path) -> None:
    result = DrillResult("s", "r", 1)
    result.t0_s = 50.0
    result.duration_s = 1.0
    result.pair_records = [_pair_record(50.0), StreamRecord("b->a", 100, 64, sent=[50.0], received={0: 50.001})]
    write(result, tmp_path)
    with gzip.open(tmp_path / SAMPLES_FILE, "rt", encoding="utf-8") as handle:
        raw = json.load(handle)
    assert set(raw[PAIRS_SECTION]) == {"a->b", "b->a"}
    assert raw[PAIRS_SECTION]["b->a"]["one_way_us"] == [1000]
    results, samples = read(tmp_path)
    assert PAIRS_SECTION not in samples  # every key `read` returns is a probe
    assert read_pair_samples(tmp_path) == raw[PAIRS_SECTION]
    assert results["method"]["pair_mesh"] == {
        "pairs": 2,
        "rate_pps": 100,
        "forwarding_delay_threshold_s": 2.0,
        "samples_section": PAIRS_SECTION,
    }
    jsonschema.Draft202012Validator(results_schema()).validate(results)
    assert {p.name for p in write_all(results, samples, tmp_path)} >= {"report.html"}


def test_no_partition_no_pair_section(tmp_path: Path) -> None:
    result = DrillResult("s", "r", 1)
    data = to_json(result, env=ENV)
    assert "pair_mesh" not in data["method"]
    jsonschema.Draft202012Validator(results_schema()).validate(data)
    write(result, tmp_path)
    assert read_pair_samples(tmp_path) == {}


# --------------------------------------------------------------------------- --trials


def _pair(step: str, source: str, target: str, expected: str, observed: str, **figures: Any) -> dict[str, Any]:
    matches = None if observed in ("unreachable", "unknown") else observed == expected
    return {
        "step": step, "source": source, "target": target, "expected": expected, "observed": observed,
        "matches": matches, "time_to_detect_s": figures.get("detect"), "detect_accuracy_s": figures.get("detect_acc", 0.02),
        "time_to_recover_s": figures.get("recover"), "recover_accuracy_s": figures.get("recover_acc", 0.01),
    }  # fmt: skip


def _runs() -> list[dict[str, Any]]:
    """Three trials: a->b cut every time; b->a cut, then left open (a regression), then cut;
    a->c (meant to stay open) only in the first two trials."""
    trials = [
        [_pair("split", "a", "b", "cut", "cut", detect=0.010, recover=0.020),
         _pair("split", "b", "a", "cut", "cut", detect=0.012, recover=0.030),
         _pair("split", "a", "c", "open", "open", recover=0.0)],
        [_pair("split", "a", "b", "cut", "cut", detect=0.030, recover=None, recover_acc=0.05),
         _pair("split", "b", "a", "cut", "open", recover=0.0),
         _pair("split", "a", "c", "open", "unreachable")],
        [_pair("split", "a", "b", "cut", "cut", detect=0.020, recover=0.040),
         _pair("split", "b", "a", "cut", "cut", detect=0.011, recover=0.025)],
    ]  # fmt: skip
    return [{"metrics": [], "partition_pairs": pairs} for pairs in trials]


def test_pair_spreads_over_trials() -> None:
    spreads = {(s.source, s.target): s for s in aggregate_pairs(_runs())}
    assert list(spreads) == [("a", "b"), ("b", "a"), ("a", "c")]
    ab = spreads["a", "b"]
    assert (ab.trials, ab.matched, ab.mismatched, ab.consistent) == (3, 3, 0, True)
    assert ab.observed == ["cut", "cut", "cut"]
    detect = ab.time_to_detect_s
    assert (detect.min_s, detect.median_s, detect.max_s, detect.missing) == (0.010, 0.020, 0.030, 0)
    recover = ab.time_to_recover_s
    assert (recover.min_s, recover.median_s, recover.max_s, recover.missing, recover.accuracy_s) == (0.020, 0.030, 0.040, 1, 0.05)
    # Cut in two trials, open in one: neither a pass nor a plain failure, and visible as such.
    ba = spreads["b", "a"]
    assert (ba.observed, ba.matched, ba.mismatched, ba.consistent) == (["cut", "open", "cut"], 2, 1, False)
    assert ba.time_to_detect_s.missing == 1
    ac = spreads["a", "c"]
    assert (ac.trials, ac.observed, ac.matched, ac.unjudged, ac.consistent) == (2, ["open", "unreachable", None], 1, 1, False)
    assert ac.time_to_detect_s.min_s is None and ac.time_to_detect_s.missing == 2
    data = json.loads(json.dumps(pair_spreads_json(list(spreads.values()))))
    assert [d["consistent"] for d in data] == [True, False, False]
    assert data[1]["time_to_recover_s"]["min_s"] == 0.0


def test_runs_without_partitions_have_no_pair_spreads() -> None:
    runs = copy.deepcopy(_runs())
    for run in runs:
        del run["partition_pairs"]  # results.json from before partitions had pairs
    assert aggregate_pairs(runs) == []


def test_trials_summary_shows_each_pair(tmp_path: Path) -> None:
    ui, buffer = _renderer()
    ui.spreads([], tmp_path / "trials.json", "failed", aggregate_pairs(_runs()))
    out = buffer.getvalue()
    assert "partition pairs over the trials" in out and "0 trials" not in out  # no stream: no empty table
    rows = {pair: line for line in out.splitlines() for pair in ("a->b", "b->a", "a->c") if f" {pair} " in line}
    assert "PASS" in rows["a->b"] and "cut ×3" in rows["a->b"] and "3/3" in rows["a->b"]
    assert "10.0 / 20.0 / 30.0 ± 20.0" in rows["a->b"] and "(never: 1)" in rows["a->b"]
    assert "MIXED" in rows["b->a"] and "cut ×2, open ×1" in rows["b->a"] and "2/3" in rows["b->a"]
    assert "open ×1, unreachable ×1, absent ×1" in rows["a->c"] and "1/2" in rows["a->c"]
    assert "none lost" in rows["a->c"]


# --------------------------------------------------------------------------- drill plan


def _plan(scenario: Scenario) -> Plan:
    return build_plan(scenario, layout(scenario.topology, RUN_PLACEHOLDER))


def test_plan_shows_the_pairs_of_the_example_partition() -> None:
    plan = _plan(load_scenario(ROOT / "scenarios" / "agencies-partition.yaml"))
    mesh = plan.pair_mesh
    assert mesh is not None
    assert (mesh.pairs, mesh.rate_pps, mesh.total_pps) == (8, PAIR_RATE_PPS, 8 * PAIR_RATE_PPS)
    (step,) = mesh.steps
    assert step.label == "exchange-filter" and step.at == "T+00:10.000"
    assert all(p.expected == "cut" and p.probed for p in step.pairs)
    assert json.loads(json.dumps(plan.to_json()))["pair_mesh"]["steps"][0]["pairs"][0] == {
        "source": "pd-hq", "target": "fd-hq", "expected": "cut", "probed": True,
    }  # fmt: skip
    ui, buffer = _renderer()
    ui.plan(plan)
    out = buffer.getvalue()
    assert "pair mesh (one way, for the whole drill): 8 ordered pairs at 100 packets/s each, 800 packets/s in all" in out
    assert "partition exchange-filter at T+00:10.000: 8 ordered pairs, 8 to be cut" in out
    assert "pd-hq->fd-site" in out and "... and" not in out


def _big(tmp_path: Path) -> Path:
    """Eight nodes against eight, one way, then both ways: 64 pairs each step, 128 in the mesh."""
    names = [f"n{i}" for i in range(16)]
    nodes = "\n".join(f"    {name}: {{}}" for name in names)
    path = tmp_path / "big.yaml"
    path.write_text(
        f"""version: 1
name: big
topology:
  addressing: {{loopbacks: 198.19.45.0/24}}
  nodes:
{nodes}
timeline:
  - {{id: oneway, at: 1s, fault: partition, groups: [{names[:8]}, {names[8:]}], one_way: true, for: 1s}}
  - {{id: both, at: 3s, fault: partition, groups: [{names[:8]}, {names[8:]}], for: 1s}}
duration: 5s
""".replace("'", "")
    )
    return path


def test_plan_counts_a_large_mesh_and_lists_a_few(tmp_path: Path) -> None:
    plan = _plan(load_scenario(_big(tmp_path)))
    mesh = plan.pair_mesh
    assert mesh is not None
    # Both steps probe the same 128 ordered pairs: the mesh runs them once, at a lowered rate.
    assert mesh.pairs == 128 and mesh.rate_pps == pair_rate_pps(128) < PAIR_RATE_PPS
    assert mesh.total_pps == mesh.rate_pps * 128 <= MAX_AGGREGATE_PPS
    oneway, both = mesh.steps
    assert (len(oneway.pairs), oneway.cut, len(both.pairs), both.cut) == (128, 64, 128, 128)
    # One way: the first group's packets never reach the second; the second still reaches the first.
    assert {p.expected for p in oneway.pairs if p.source == "n0"} == {"cut"}
    assert {p.expected for p in oneway.pairs if p.source == "n8"} == {"open"}
    ui, buffer = _renderer()
    ui.plan(plan)
    out = buffer.getvalue()
    assert f"128 ordered pairs at {mesh.rate_pps} packets/s each, {mesh.total_pps} packets/s in all" in out
    assert "partition oneway at T+00:01.000: 128 ordered pairs, 64 to be cut" in out
    assert out.count(f"... and {128 - LIST_PAIRS_MAX} more") == 2
    assert len(re.findall(r"│ n\d+->n\d+ ", out)) == 2 * LIST_PAIRS_MAX


def test_plan_without_partition_has_no_mesh(tmp_path: Path) -> None:
    path = tmp_path / "none.yaml"
    path.write_text(BED.replace("fault: partition, groups: [[a], [b]]", "fault: link-down, link: a:x"))
    scenario = load_scenario(path)
    assert all(step.fault != "partition" for step in scenario.source.timeline)
    assert _plan(scenario).pair_mesh is None


# --------------------------------------------------------------------------- real namespaces

# a on one side of hub x, b on the other; a short symmetric partition.
BED = """
version: 1
name: pairtrials
seed: 5
topology:
  addressing: {ipv4: 198.18.46.0/24, loopbacks: 198.19.46.0/24}
  nodes:
    x: {routes: [{to: a, via: a:x}, {to: b, via: b:x}]}
    a: {routes: [{to: default, via: x:a}]}
    b: {routes: [{to: default, via: x:b}]}
  links:
    - {endpoints: [a:x, x:a]}
    - {endpoints: [b:x, x:b]}
probes:
  - {name: hub, type: udp-stream, from: a, to: x, rate_pps: 100}
timeline:
  - {id: split, at: 1500ms, fault: partition, groups: [[a], [b]], for: 1s}
duration: 3500ms
"""


@pytest.mark.netns
def test_trials_of_a_partition_keep_pair_samples_and_spreads(
    tmp_path: Path, drill: Any, state_dir: Path, host_snapshot: object
) -> None:
    path = tmp_path / "pairtrials.yaml"
    path.write_text(BED)
    out = tmp_path / "trials"
    proc = drill("-q", "run", str(path), "--no-live", "--out", str(out), "--trials", "2", timeout_s=180.0)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for k in (1, 2):
        run_dir = out / f"trial-{k}"
        pairs = read_pair_samples(run_dir)
        assert set(pairs) == {"a->b", "b->a"}
        for name, data in pairs.items():
            assert len(data["sent_ms"]) == len(data["one_way_us"]) > 0, name
            # Delivered before the partition, dropped while it held (1.5 .. 2.5 s on the drill clock).
            before = [d for s, d in zip(data["sent_ms"], data["one_way_us"], strict=True) if s < 1400]
            held = [d for s, d in zip(data["sent_ms"], data["one_way_us"], strict=True) if 1700 < s < 2400]
            assert before and all(d >= 0 for d in before), name
            assert held and all(d == -1 for d in held), name
        results, samples = read(run_dir)
        assert set(samples) == {"hub"}
        assert results["method"]["pair_mesh"]["pairs"] == 2
    summary = json.loads((out / "trials.json").read_text())
    spreads = {(p["source"], p["target"]): p for p in summary["pair_spreads"]}
    assert set(spreads) == {("a", "b"), ("b", "a")}
    for spread in spreads.values():
        assert spread["trials"] == 2 and spread["observed"] == ["cut", "cut"] and spread["consistent"]
        assert spread["time_to_detect_s"]["missing"] == 0 and spread["time_to_recover_s"]["missing"] == 0
    assert "partition pairs over the trials" in proc.stdout
    assert not any(state_dir.glob("runs/*"))

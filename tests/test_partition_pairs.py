"""Per-pair results of a partition: every ordered (source, destination) node pair across the cut,
probed one way, judged against what the partition intended (unit, then real namespaces)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from drills.engine.drill import DrillResult
from drills.lifecycle import run as run_drill
from drills.measure import PairResult, Window, lost_flags, pair_result
from drills.probes.pair_mesh import MAX_AGGREGATE_PPS, MIN_PAIR_RATE_PPS, PAIR_RATE_PPS, pair_rate_pps
from drills.records import StreamRecord
from drills.reports.compare import compare
from drills.reports.junit import render_junit
from drills.reports.markdown import render_markdown
from drills.results import results_schema, to_json

# --------------------------------------------------------------------------- unit: exact answers

RATE = 100
GAP = 1.0 / RATE


def stream(seconds: float, delivered: object) -> StreamRecord:
    """A one-way record at 100 packets/s from t=0; `delivered(t)` says if the packet sent at t arrived."""
    record = StreamRecord("a->b", RATE, 64)
    for seq in range(round(seconds * RATE)):
        sent = seq * GAP
        record.sent.append(sent)
        record.send_lateness_s.append(0.0)
        if delivered(sent):  # type: ignore[operator]
            record.received[seq] = sent + 0.0001
    return record


def judge(record: StreamRecord, expected_cut: bool, lifted: bool = True) -> PairResult:
    """Partition issued at 2.000 s, confirmed at 2.020 s, lift issued at 4.000 s, confirmed 4.010 s."""
    return pair_result(
        record, lost_flags(record, 2.0), step="split", source="a", target="b", expected_cut=expected_cut,
        baseline_span=(1.0, 1.98),
        applied=Window("split", "apply", 2.0, 4.0 if lifted else 7.0),
        apply_confirmed_s=2.02,
        lifted=Window("split", "revert", 4.0, 7.0) if lifted else None,
        lift_confirmed_s=4.01 if lifted else None,
        sustain_s=1.0,
    )  # fmt: skip


def test_a_cut_pair_matches_and_has_detection_and_recovery() -> None:
    # Dropped from 2.015 s (between issue and confirmation) to 4.005 s (the lift took 5 ms).
    pair = judge(stream(7.0, lambda t: not (2.015 <= t < 4.005)), expected_cut=True)
    assert (pair.observed, pair.expected, pair.matches) == ("cut", "cut", True)
    assert (pair.baseline_sent, pair.baseline_lost, pair.reachable_in_baseline) == (96, 0, True)  # less the guard
    # Judged on 2.02 .. 3.98 s: confirmed .. the lift, less twice the one-way delay (at least 2 gaps).
    assert (pair.fault_sent, pair.fault_delivered) == (196, 0)
    assert pair.time_to_detect_s == pytest.approx(0.02)  # first lost: sent at 2.02
    assert pair.detect_accuracy_s == pytest.approx(GAP + 0.02)  # a gap + the confirmation time
    assert pair.time_to_recover_s == pytest.approx(0.01)  # first good after the lift: 4.01
    assert pair.recover_accuracy_s == pytest.approx(GAP + 0.01)
    assert pair.first_delivery_after_lift_s == pytest.approx(0.01)


def test_a_pair_that_should_stay_open_matches_when_nothing_is_lost() -> None:
    pair = judge(stream(7.0, lambda t: True), expected_cut=False)
    assert (pair.observed, pair.matches) == ("open", True)
    assert pair.time_to_detect_s is None and pair.time_to_recover_s == 0.0


def test_a_pair_meant_to_be_cut_that_was_not_fails() -> None:
    pair = judge(stream(7.0, lambda t: True), expected_cut=True)
    assert (pair.observed, pair.expected, pair.matches) == ("open", "cut", False)


def test_a_pair_cut_when_it_should_not_be_fails() -> None:
    pair = judge(stream(7.0, lambda t: not (2.01 <= t < 4.0)), expected_cut=False)
    assert (pair.observed, pair.matches) == ("cut", False)


def test_a_leaking_pair_is_partial() -> None:
    # Every tenth packet gets through the cut.
    pair = judge(stream(7.0, lambda t: not (2.01 <= t < 4.0) or round(t * RATE) % 10 == 0), expected_cut=True)
    assert pair.observed == "partial" and pair.matches is False
    assert pair.fault_delivered == 19  # sequences 210, 220 ... 390


def test_a_pair_unreachable_before_the_partition_cannot_be_judged() -> None:
    pair = judge(stream(7.0, lambda t: t >= 1.5 and not (2.01 <= t < 4.0)), expected_cut=True)
    assert not pair.reachable_in_baseline
    assert (pair.observed, pair.matches) == ("unreachable", None)
    # A pair with no address (nothing sent at all) is the same: an error, never a pass.
    empty = judge(StreamRecord("a->b", RATE, 0), expected_cut=True)
    assert (empty.observed, empty.matches) == ("unreachable", None)


def test_a_lossy_link_still_judges_open_and_cut() -> None:
    # A link profile losing one packet in fifty: reachable before, open (no worse) or cut after.
    lossy = stream(7.0, lambda t: round(t * RATE) % 50 != 7)
    pair = judge(lossy, expected_cut=False)
    assert pair.baseline_lost == 2 and pair.reachable_in_baseline
    assert (pair.observed, pair.matches) == ("open", True)
    cut = judge(stream(7.0, lambda t: round(t * RATE) % 50 != 7 and not (2.01 <= t < 4.0)), expected_cut=True)
    assert (cut.observed, cut.matches) == ("cut", True)
    # Much worse than before while it held (a fifth lost), but not cut: partial.
    worse = judge(stream(7.0, lambda t: round(t * RATE) % 50 != 7 and not (2.0 <= t < 4.0 and round(t * RATE) % 5 == 0)), expected_cut=False)
    assert (worse.observed, worse.matches) == ("partial", False)


def test_a_packet_still_in_flight_at_the_lift_is_not_a_leak() -> None:
    # A 30 ms link: the packet sent 10 ms before the lift arrives after it; it does not count.
    record = StreamRecord("a->b", RATE, 64)
    for seq in range(700):
        sent = seq * GAP
        record.sent.append(sent)
        record.send_lateness_s.append(0.0)
        if not (2.0 <= sent + 0.03 < 4.0):
            record.received[seq] = sent + 0.03
    pair = judge(record, expected_cut=True)
    assert (pair.observed, pair.matches) == ("cut", True)


def test_a_partition_never_lifted_has_no_recovery() -> None:
    pair = judge(stream(7.0, lambda t: t < 2.01), expected_cut=True, lifted=False)
    assert (pair.observed, pair.matches, pair.time_to_recover_s) == ("cut", True, None)
    assert pair.fault_sent == 496  # 2.02 .. 6.98


def test_a_mismatched_pair_fails_the_drill() -> None:
    result = DrillResult("s", "r", 1)
    result.pairs = [judge(stream(7.0, lambda t: True), expected_cut=False)]
    assert result.passed
    result.pairs.append(judge(stream(7.0, lambda t: True), expected_cut=True))
    assert not result.passed


def test_the_mesh_rate_is_bounded() -> None:
    assert pair_rate_pps(8) == PAIR_RATE_PPS
    assert pair_rate_pps(100) * 100 <= MAX_AGGREGATE_PPS
    assert pair_rate_pps(10_000) == MIN_PAIR_RATE_PPS


def test_reports_show_one_case_and_one_row_per_pair() -> None:
    result = DrillResult("s", "r", 1)
    result.pairs = [
        judge(stream(7.0, lambda t: not (2.015 <= t < 4.005)), expected_cut=True),
        judge(stream(7.0, lambda t: True), expected_cut=True),  # not cut: a failure
    ]
    result.baselines = {}
    data = to_json(result, env={"kernel": "k", "python": "3", "capabilities": {}})
    jsonschema.Draft202012Validator(results_schema()).validate(data)
    assert [p["matches"] for p in data["partition_pairs"]] == [True, False]
    suite = ET.fromstring(render_junit(data)).find("testsuite")
    assert suite is not None
    cases = [c for c in suite.iter("testcase") if c.get("classname", "").endswith(".partition")]
    assert [c.get("name") for c in cases] == ["split: a -> b (cut)", "split: a -> b (cut)"]
    markdown = render_markdown(data)
    assert "## Partition: per pair" in markdown
    assert "| PASS | split | a → b | cut | cut | 0 of 196 |" in markdown
    assert "| FAIL | split | a → b | cut | open | 196 of 196 |" in markdown


def test_compare_flags_a_pair_no_longer_as_intended() -> None:
    env = {"kernel": "k", "python": "3", "capabilities": {}}
    good = DrillResult("s", "r", 1)
    good.pairs = [judge(stream(7.0, lambda t: not (2.015 <= t < 4.005)), expected_cut=True)]
    bad = DrillResult("s", "r", 1)
    bad.pairs = [judge(stream(7.0, lambda t: True), expected_cut=True)]
    assert not compare(to_json(good, env=env), to_json(good, env=env)).regressed
    comparison = compare(to_json(good, env=env), to_json(bad, env=env))
    assert comparison.regressed
    assert comparison.pair_regressions == ["split: a->b: cut in A, open in B (intended cut)"]
    (recovery,) = [d for d in comparison.differences if d.probe == "a->b"]
    assert recovery.event == "split (partition pair, after the lift)" and not recovery.regressed


# --------------------------------------------------------------------------- real namespaces

# a1 and a2 on one side of hub x, b1 on the other; a symmetric partition, then a one-way one.
BED = """
version: 1
name: pairs
topology:
  addressing: {ipv4: 198.18.44.0/24, loopbacks: 198.19.44.0/24}
  nodes:
    x: {routes: [{to: a1, via: a1:x}, {to: a2, via: a2:x}, {to: b1, via: b1:x}]}
    a1: {routes: [{to: default, via: x:a1}]}
    a2: {routes: [{to: default, via: x:a2}]}
    b1: {routes: [{to: default, via: x:b1}]}
  links:
    - {endpoints: [a1:x, x:a1]}
    - {endpoints: [a2:x, x:a2]}
    - {endpoints: [b1:x, x:b1]}
probes:
  - {name: hub, type: udp-stream, from: a1, to: x, rate_pps: 200}
timeline:
  - {id: both, at: 2s, fault: partition, groups: [[a1, a2], [b1]], for: 1500ms}
  - {id: oneway, at: 5s, fault: partition, groups: [[a1, a2], [b1]], one_way: true, for: 1500ms}
duration: 8s
"""


@pytest.mark.netns
def test_a_partition_yields_per_pair_results(tmp_path: Path, state_dir: Path, host_snapshot: object) -> None:
    path = tmp_path / "pairs.yaml"
    path.write_text(BED)
    result = run_drill(path, state_dir, log=lambda _m: None)
    check_pairs_as_intended(result)
    data = to_json(result, path)
    jsonschema.Draft202012Validator(results_schema()).validate(data)
    suite = ET.fromstring(render_junit(json.loads(json.dumps(data)))).find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert sum(1 for c in suite.iter("testcase") if c.get("classname") == "pairs.partition") == 8
    assert not any(state_dir.glob("runs/*"))


def check_pairs_as_intended(result: DrillResult) -> None:
    """BED's drill: every pair across both partitions judged as intended, within its bounds
    (also through probes on other hosts: tests/test_remote_probes.py)."""
    assert not result.inconclusive and not result.revert_failures
    found = {(p.step, p.source, p.target): p for p in result.pairs}
    across = [("a1", "b1"), ("a2", "b1"), ("b1", "a1"), ("b1", "a2")]
    assert set(found) == {(step, s, t) for step in ("both", "oneway") for s, t in across}
    for (step, source, _target), pair in found.items():
        # One way: the first group never reaches the second; the second still reaches the first.
        assert pair.expected_cut == (step == "both" or source != "b1")
        assert pair.reachable_in_baseline and pair.fault_sent > 0
        assert pair.matches, f"{step} {source}->{_target}: intended {pair.expected}, observed {pair.observed}"
        if pair.expected_cut:
            # Cut somewhere between the issue and the confirmation, released somewhere between
            # the lift's issue and its confirmation: both figures lie within their bound.
            gap_s = 1.0 / pair.rate_pps
            assert pair.time_to_detect_s is not None and pair.time_to_detect_s <= pair.detect_accuracy_s + gap_s
            assert pair.time_to_recover_s is not None and pair.time_to_recover_s <= pair.recover_accuracy_s + gap_s
        else:
            assert pair.time_to_detect_s is None and pair.fault_delivered == pair.fault_sent
    assert result.passed

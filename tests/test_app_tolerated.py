"""An application probe on a path with random loss by design (`tolerated_loss`): a lone failed
sample is no outage, a failover's run of failures still is (drills.measure_samples)."""

from __future__ import annotations

from test_app_probes import figures, record

from drills.measure import Window
from drills.measure_samples import analyse_samples, baseline_samples

CUT = Window("cut", "apply", 5.0, 25.0)  # 20 one-second samples


def test_a_lone_failure_is_tolerated_and_still_counted_as_lost() -> None:
    # The cut's failover lost nothing; one request failed 12 s later (rain on the GEO link).
    pattern = "." * 17 + "x" + "." * 12
    assert figures(analyse_samples(record(pattern), CUT, sustain_s=2.0, tolerated_pct=10)) == (20, 1, 0.0, 0.0, None, 0.0)
    # Without a tolerated share it is an outage, as before.
    untolerated = analyse_samples(record(pattern), CUT, sustain_s=2.0)
    assert untolerated.outage_s == 1.0 and untolerated.time_to_detect_s == 12.0


def test_a_failover_breaking_two_samples_in_a_row_is_an_outage_even_so() -> None:
    pattern = "....." + "xx" + "." * 23
    assert figures(analyse_samples(record(pattern), CUT, sustain_s=2.0, tolerated_pct=10)) == (20, 2, 2.0, 2.0, 0.0, 2.0)


def test_beyond_the_tolerated_share_no_failure_is_tolerated() -> None:
    # Three lone failures in 20 samples: 15 %, over a 10 % share: each counts again.
    pattern = "......x....x....x" + "." * 13
    m = analyse_samples(record(pattern), CUT, sustain_s=2.0, tolerated_pct=10)
    assert (m.lost, m.time_to_detect_s) == (3, 1.0)
    # Within 20 %, none starts an outage, and none breaks the sustained run after it.
    assert figures(analyse_samples(record(pattern), CUT, sustain_s=2.0, tolerated_pct=20)) == (20, 3, 0.0, 0.0, None, 0.0)


def test_a_baseline_with_the_tolerated_share_of_failures_is_clean() -> None:
    rec = record("." * 9 + "x" + "." * 10)
    assert not baseline_samples(rec, 0.0, 20.0).clean
    assert baseline_samples(rec, 0.0, 20.0, tolerated_pct=10).clean

"""Human units in scenario files: durations, rates, percentages, and the short duration form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drills.scenario.units import (
    DURATION_HINT,
    PERCENT_HINT,
    RATE_HINT,
    UnitError,
    format_duration_s,
    parse_duration_s,
    parse_percent,
    parse_rate_bps,
)

# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1m30s", 90.0),
        ("1m 30s", 90.0),
        (" 2s ", 2.0),
        ("1.5s", 1.5),
        ("250us", 250e-6),
        ("250µs", 250e-6),
        ("3min", 180.0),
        ("1h", 3600.0),
        ("1h2m3s", 3723.0),
        ("0s", 0.0),
        (1.5, 1.5),
        (2, 2.0),
        (0, 0.0),
        ("T+01:30", 90.0),
        ("01:30", 90.0),
        ("00:01:30", 90.0),
        ("T+00:01:30", 90.0),
        ("T+1:00:00", 3600.0),
        ("T+00:00.5", 0.5),
    ],
)
def test_duration(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


def test_duration_is_a_float() -> None:
    assert isinstance(parse_duration_s(2), float)
    assert isinstance(parse_duration_s("T+00:10"), float)


@pytest.mark.parametrize(
    "bad",
    [
        "5 seconds",
        "5sec",
        "",
        "   ",
        "s",
        "ms5",
        "2x",
        "2s3",
        "-1s",
        "1.s",
        "T+",
        "T+1:2",
        "1:5",
        "T-00:10",
        "two seconds",
        -1,
        -0.5,
        True,
        False,
        None,
        [1],
        {"s": 1},
        math.nan,
        math.inf,
        10**400,
        "9" * 400 + "s",
    ],
)
def test_bad_duration(bad: object) -> None:
    with pytest.raises(UnitError) as caught:
        parse_duration_s(bad)
    assert DURATION_HINT in str(caught.value)


def test_bad_duration_names_the_value() -> None:
    with pytest.raises(UnitError, match=r"^'5 seconds' is not a duration; write a duration such as"):
        parse_duration_s("5 seconds")
    with pytest.raises(UnitError, match=r"^-1 is negative"):
        parse_duration_s(-1)


def test_unit_error_is_a_value_error() -> None:
    """pydantic turns ValueError raised in a validator into a located validation error."""
    assert issubclass(UnitError, ValueError)


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=59))
def test_minutes_and_seconds_agree_with_clock_time(minutes: int, seconds: int) -> None:
    expected = minutes * 60 + seconds
    assert parse_duration_s(f"{minutes}m{seconds}s") == expected
    hours, rest = divmod(minutes, 60)
    assert parse_duration_s(f"T+{hours}:{rest:02d}:{seconds:02d}") == expected


# --------------------------------------------------------------------------- rates


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("10mbit", 10_000_000),
        ("512kbit", 512_000),
        ("1gbit", 1_000_000_000),
        ("100bit", 100),
        ("100bps", 100),
        ("1.5mbit", 1_500_000),
        ("5mbps", 40_000_000),  # bytes per second, as tc writes it
        ("1kbps", 8_000),
        ("2gbps", 16_000_000_000),
        (" 10MBit ", 10_000_000),
        ("10 mbit", 10_000_000),
        (1000, 1000),
        (2.5, 2),
    ],
)
def test_rate(text: object, bps: int) -> None:
    assert parse_rate_bps(text) == bps


@pytest.mark.parametrize(
    "bad",
    [
        "8 megabit",
        "10mb",
        "10",
        "mbit",
        "",
        "0mbit",
        "-5mbit",
        "fast",
        0,
        -5,
        True,
        None,
        math.nan,
        math.inf,
        10**400,
        "9" * 400 + "mbit",
    ],
)
def test_bad_rate(bad: object) -> None:
    with pytest.raises(UnitError) as caught:
        parse_rate_bps(bad)
    assert RATE_HINT in str(caught.value)


# --------------------------------------------------------------------------- percentages


@pytest.mark.parametrize(
    ("text", "percent"),
    [
        ("0.5%", 0.5),
        (" 1 % ", 1.0),
        ("100%", 100.0),
        ("0%", 0.0),
        (0.5, 0.5),
        (0, 0.0),
        (100, 100.0),
    ],
)
def test_percent(text: object, percent: float) -> None:
    assert parse_percent(text) == percent


@pytest.mark.parametrize(
    "bad",
    ["150%", "100.1%", "-1%", 101, -0.1, "x%", "%", "5", "half", True, None, math.nan, math.inf, 10**400],
)
def test_bad_percent(bad: object) -> None:
    with pytest.raises(UnitError) as caught:
        parse_percent(bad)
    assert PERCENT_HINT in str(caught.value)


def test_percent_out_of_range_says_so() -> None:
    with pytest.raises(UnitError, match=r"^150% is outside 0–100 %"):
        parse_percent("150%")


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0 µs"),
        (0.0000004, "0 µs"),
        (0.0008, "800 µs"),
        (0.001, "1.0 ms"),
        (0.25, "250.0 ms"),
        (1.0, "1.000 s"),
        (2.0, "2.000 s"),
        (59.9994, "59.999 s"),
        (59.9996, "1 m 0 s"),  # rounds up into minutes, not to "60.000 s"
        (60.0, "1 m 0 s"),
        (90.0, "1 m 30 s"),
        (119.6, "2 m 0 s"),  # not "1 m 60 s"
        (3600.0, "60 m 0 s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration_s(seconds) == text


@given(st.floats(min_value=60.0, max_value=1e7))
def test_format_minutes_never_shows_60_seconds(seconds: float) -> None:
    minutes, rest = format_duration_s(seconds).removesuffix(" s").split(" m ")
    assert 0 <= int(rest) < 60
    assert int(minutes) * 60 + int(rest) == round(seconds)


@given(st.floats(min_value=0.0, max_value=1e6))
def test_format_is_close_to_the_value(seconds: float) -> None:
    text = format_duration_s(seconds)
    if text.endswith(" µs"):
        value = float(text.removesuffix(" µs")) * 1e-6
    elif text.endswith(" ms"):
        value = float(text.removesuffix(" ms")) * 1e-3
    elif " m " in text:
        minutes, rest = text.removesuffix(" s").split(" m ")
        value = int(minutes) * 60 + int(rest)
    else:
        value = float(text.removesuffix(" s"))
    assert value == pytest.approx(seconds, abs=0.5 + 1e-9)

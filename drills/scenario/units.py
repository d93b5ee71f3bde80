"""Human units in scenario files (durations, rates, percentages) to plain numbers.

Scenario authors write `250ms`, `1m30s`, `T+05:00`, `50mbit`, `0.5%`; the rest of drills works
in seconds, bits per second and percent, with the unit in the variable name.
"""

from __future__ import annotations

import math
import re

from drills.scenario.limits import MAX_NUMBER_DIGITS
from drills.scenario.values import number as number_text
from drills.scenario.values import shown

_DURATION_UNITS_S = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(us|µs|ms|min|s|m|h)")
_CLOCK = re.compile(r"^(?:T\+)?(?:(\d+):)?(\d{1,2}):(\d{2}(?:\.\d+)?)$")

_RATE_UNITS_BPS = {
    "bit": 1,
    "bps": 1,
    "kbit": 1_000,
    "mbit": 1_000_000,
    "gbit": 1_000_000_000,
    "kbps": 8_000,
    "mbps": 8_000_000,
    "gbps": 8_000_000_000,
}
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]+)$")


class UnitError(ValueError):
    """A value that does not parse; the message says what is accepted."""


_DIGITS = re.compile(r"\d+")
_MAX_TEXT = 64  # characters of one duration or rate: `1h 59m 59.999s` is 14


def _q(value: object) -> str:
    """A value as a message quotes it: text escaped and cut (drills.scenario.values.shown)."""
    return shown(value) if isinstance(value, str) else f"'{number_text(value)}'"


def _short(value: str, hint: str) -> str:
    """`value` stripped, refused when it is long or has a number of absurd size: checked before
    any arithmetic, so that a 400-digit hour count is an error, not an overflow or a huge float."""
    text = value.strip()
    longest = max((len(m) for m in _DIGITS.findall(text)), default=0)
    if longest > MAX_NUMBER_DIGITS:
        raise UnitError(f"{shown(text, 20)} has a number of {longest} digits (at most {MAX_NUMBER_DIGITS}); {hint}")
    if len(text) > _MAX_TEXT:
        raise UnitError(f"{shown(text, 20)} is {len(text)} characters long; {hint}")
    return text


def _finite(value: int | float) -> float | None:
    """`value` as a float, or None for NaN, infinities and integers too large for a float."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


DURATION_HINT = "write a duration such as 500ms, 2s, 1m30s, or a clock time T+01:30"


def parse_duration_s(value: object) -> float:
    """Seconds from `2s`, `250ms`, `1m30s`, `1.5`, `01:30` or `T+00:01:30`."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a duration; {DURATION_HINT}")
    if isinstance(value, int | float):
        number = _finite(value)
        if number is None:
            raise UnitError(f"{number_text(value)} is not a finite duration; {DURATION_HINT}")
        if number < 0:
            raise UnitError(f"{number_text(value)} is negative; {DURATION_HINT}")
        return number
    if not isinstance(value, str):
        raise UnitError(f"{value!r} is not a duration; {DURATION_HINT}")
    text = _short(value, DURATION_HINT)
    clock = _CLOCK.match(text)
    if clock:
        hours, minutes, seconds = clock.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    pos = 0
    total = 0.0
    compact = text.replace(" ", "")
    for match in _DURATION_PART.finditer(compact):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(compact) or not math.isfinite(total):
        raise UnitError(f"{_q(value)} is not a duration; {DURATION_HINT}")
    return total


RATE_HINT = "write a rate such as 512kbit, 10mbit, 1gbit (bits) or 5mbps (bytes)"


def parse_rate_bps(value: object) -> int:
    """Bits per second from `10mbit`, `512kbit`, `5mbps` (bytes, as tc writes it) or a number."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a rate; {RATE_HINT}")
    if isinstance(value, int | float):
        number = _finite(value)
        if number is None or number <= 0:
            raise UnitError(f"{number_text(value)} is not a positive rate; {RATE_HINT}")
        return int(number)
    if isinstance(value, str):
        match = _RATE.match(_short(value, RATE_HINT).lower())
        if match and match.group(2) in _RATE_UNITS_BPS:
            rate = float(match.group(1)) * _RATE_UNITS_BPS[match.group(2)]
            if rate > 0 and math.isfinite(rate):
                return int(rate)
    raise UnitError(f"{_q(value)} is not a rate; {RATE_HINT}")


PERCENT_HINT = "write a percentage such as 0.5% or 0.5 (meaning 0.5 %), between 0 and 100"


def parse_percent(value: object) -> float:
    """Percent from `0.5%` or `0.5`, checked to lie in [0, 100]."""
    number: float
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a percentage; {PERCENT_HINT}")
    if isinstance(value, int | float):
        finite = _finite(value)
        number = math.nan if finite is None else finite  # NaN fails the range check below
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1])
        except ValueError:
            raise UnitError(f"{_q(value)} is not a percentage; {PERCENT_HINT}") from None
    else:
        raise UnitError(f"{_q(value)} is not a percentage; {PERCENT_HINT}")
    if not 0.0 <= number <= 100.0:
        raise UnitError(f"{number_text(value)} is outside 0–100 %; {PERCENT_HINT}")
    return number


def format_duration_s(seconds: float) -> str:
    """Short human form of a duration: 0.8 ms, 250 ms, 2.000 s, 1 m 30 s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    if round(seconds, 3) < 60.0:
        return f"{seconds:.3f} s"
    # Round before splitting, or 119.6 s would print as "1 m 60 s".
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} m {rest} s"

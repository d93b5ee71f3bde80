"""The value types of the scenario format: durations, rates, percentages, addresses, names,
command text, each parsed and bounded once here, and `Strict`, the base of every model.

Part of the parsed model (drills.scenario.model re-exports all of it). Each type checks shape,
unit and bound; every message names what was given and what would do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from drills.scenario import limits, units, values
from drills.scenario.values import validator

_T = TypeVar("_T")


def _parsed(parse: Callable[[object], _T], value: object) -> _T:
    try:
        return parse(value)
    except units.UnitError as exc:
        raise ValueError(str(exc)) from None


def _duration(value: object) -> float:
    seconds = _parsed(units.parse_duration_s, value)
    if seconds > limits.MAX_DRILL_DURATION_S:
        raise ValueError(f"{_shown(value)} is longer than the longest drill (7 days); write a shorter duration")
    return seconds


def _rate(value: object) -> int:
    rate_bps = _parsed(units.parse_rate_bps, value)
    if rate_bps < limits.MIN_RATE_BPS:
        raise ValueError(f"{_shown(value)} is below the smallest rate tc can set, 8bit (1 byte per second)")
    if rate_bps > limits.MAX_RATE_BPS:
        raise ValueError(
            f"{_shown(value)} is above the largest rate limit, 400gbit (tbf's queue of 50 ms would not fit its "
            "32-bit byte count); leave `rate` out for an unlimited link"
        )
    return rate_bps


def _percent(value: object) -> float:
    return _parsed(units.parse_percent, value)


def _shown(value: object) -> str:
    return values.shown(value) if isinstance(value, str) else values.number(value)


def seconds_within(what: str, low_s: float, high_s: float, *, low_included: bool = True) -> AfterValidator:
    """A bound on a parsed duration, worded for `what` (such as "a probe's interval")."""

    def check(seconds: float) -> float:
        too_low = seconds < low_s if low_included else seconds <= low_s
        if too_low:
            floor = units.format_duration_s(low_s) if low_s else "0"
            least = "at least" if low_included else "more than"
            given = units.format_duration_s(seconds) if seconds else "0"
            raise ValueError(f"{what} is {given}; it must be {least} {floor}")
        if seconds > high_s:
            raise ValueError(
                f"{what} is {units.format_duration_s(seconds)}; it must be at most {units.format_duration_s(high_s)}"
            )
        return seconds

    return AfterValidator(check)


def _interface_checker(version: int, example: str, prefix: int) -> Callable[[str], str]:
    """A validator of `address/prefix` text for one IP version (the prefix is required)."""
    parse = ipaddress.IPv4Interface if version == 4 else ipaddress.IPv6Interface

    def check(value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(
                f"'{value}' is not an IPv{version} address with prefix length, such as {example}"
            ) from None
        if "/" not in value:
            raise ValueError(f"'{value}' needs a prefix length, such as {value}/{prefix}")
        return validator(values.interface_address)(value)

    return check


_interface4 = _interface_checker(4, "198.18.0.1/30", 30)
_interface6 = _interface_checker(6, "fd00:d::1/64", 64)


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_interface(value).network
        except ValueError:
            example = "fd00:d811::/48" if ":" in value else "198.18.0.0/15"
            raise ValueError(f"'{value}' is not a network prefix ({exc}); write it as {example}") from None
        raise ValueError(f"'{value}' has host bits set; did you mean {fixed}?") from None
    return validator(values.address_pool)(value)


# What editors see (`drill schema`): the YAML forms people write, not the parsed numbers.
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(T\+)?[0-9.:]+\s*$|^\s*([0-9.]+\s*(us|µs|ms|s|min|m|h)\s*)+$"},
    ],
    "description": "A duration: 500ms, 2s, 1m30s, seconds as a number, or a clock time T+01:30.",
}
_RATE_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": r"(?i)^\s*[0-9.]+\s*[a-z]+\s*$"},
    ],
    "description": "A rate: 512kbit, 10mbit, 1gbit (bits per second) or 5mbps (bytes per second, as tc writes it).",
}
_PERCENT_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0, "maximum": 100}, {"type": "string", "pattern": r"^\s*[0-9.]+\s*%\s*$"}],
    "description": "A percentage: 0.5% or 0.5.",
}

Seconds = Annotated[float, BeforeValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]
"""A duration: `500ms`, `2s`, `1m30s`, a number of seconds, or a clock time `T+01:30`."""
RateBps = Annotated[int, BeforeValidator(_rate), WithJsonSchema(_RATE_SCHEMA)]
"""A rate: `512kbit`, `10mbit`, `1gbit`, or `5mbps` (bytes per second, as tc writes it)."""
Period = Annotated[Seconds, seconds_within("this period", limits.MIN_FAULT_PERIOD_S, limits.MAX_DRILL_DURATION_S)]
"""The period of something repeated in the kernel (repeats, flaps, handovers): at least 10 ms."""
Timeout = Annotated[Seconds, seconds_within("this timeout", 0.0, limits.MAX_TIMEOUT_S, low_included=False)]
"""A timeout: above 0 and at most `limits.MAX_TIMEOUT_S`."""
Command = Annotated[str, AfterValidator(validator(values.command_text))]
"""Text handed to a process (a shell command, an argument): no NUL or control characters."""
Environment = Annotated[dict[str, str], AfterValidator(validator(values.environment))]
"""Environment variables: names without '=' or NUL, values without NUL."""
Percent = Annotated[float, BeforeValidator(_percent), WithJsonSchema(_PERCENT_SCHEMA)]
"""A percentage, `0.5%` or `0.5`."""
IPv4Iface = Annotated[str, AfterValidator(_interface4)]
IPv6Iface = Annotated[str, AfterValidator(_interface6)]
Prefix = Annotated[str, AfterValidator(_network)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=limits.MAX_NAME_BYTES)]
"""A name: letters, digits, `_`, `.`, `-`; starts with a letter or digit."""
HostName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=253)]
"""An inventory host name (drills.hosts.inventory_parse.HOST_NAME): letters, digits, `_`, `.`, `-`."""
Endpoint = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*:[^\s:/]+$")]
"""A link endpoint `node:interface`, such as `core:eth1`."""


class Strict(BaseModel):
    """Base: unknown keys are errors, values are immutable after parsing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

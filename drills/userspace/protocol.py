"""The relay's control protocol, as pure functions: one request line in, one reply line out.

Kept apart from the relay's I/O so that every byte string a client could send is tested here,
in-process (hypothesis), and the relay only moves bytes. Whatever arrives, the answer is a
well-formed reply, `{"ok": true, ...}` or `{"ok": false, "error": "..."}`, never an exception:
the relay is the link's wire and must outlive any client.

Requests (one JSON object a line, at most `MAX_MESSAGE_BYTES` with its newline):
`{"op": "set", "direction": "a-to-b", "params": {...}}`, `{"op": "get"}`, `{"op": "stats"}`.
Parameters are checked before anything changes: known keys only, numbers finite and in range
(booleans are not numbers), percentages 0..100, delays 0..`MAX_DELAY_S`, rates 1..`MAX_RATE_BPS`.
"""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

from drills.userspace.impair import DISTRIBUTIONS, GilbertElliott, Impairments

MAX_MESSAGE_BYTES = 65_536  # one request line, newline included
# A week: the longest drill the scenario reader accepts; a longer delay could never show.
MAX_DELAY_S = 7 * 24 * 3600.0
MAX_RATE_BPS = 8 * (2**64 - 1)  # the kernel's 64-bit bytes/s (TCA_TBF_RATE64), the kernel path's bound
DIRECTIONS = ("a-to-b", "b-to-a")
_SHOWN_CHARS = 60  # of a bad value quoted in an error: enough to recognise it, never a flood
_PCT_FIELDS = ("correlation_pct", "loss_pct", "loss_correlation_pct", "duplicate_pct", "corrupt_pct", "reorder_pct")
_SECOND_FIELDS = ("delay_s", "jitter_s")
_BURST_FIELDS = {"p_pct": True, "r_pct": True, "bad_loss_pct": False, "good_loss_pct": False}  # name -> required
_REQUEST_KEYS = {"set": {"op", "direction", "params"}, "get": {"op"}, "stats": {"op"}}


class ProtocolError(ValueError):
    """A request the relay cannot act on; its text is the reply's `error`."""


class Controlled(Protocol):
    """What the protocol acts on: the relay (or a stand-in in tests)."""

    def set_params(self, direction: str, params: Impairments) -> dict[str, Any]:
        """Put `params` in force for `direction`; the parameters now in force, on the wire."""

    def state(self) -> dict[str, Any]:
        """The answer to `get` (without `ok`)."""

    def stats(self) -> dict[str, Any]:
        """The answer to `stats` (without `ok`)."""


def answer(line: bytes, relay: Controlled) -> bytes:
    """The reply line (newline included) to one request line (newline excluded)."""
    try:
        request = parse_request(line)
        op = request["op"]
        if op == "set":
            reply = {"params": relay.set_params(request["direction"], request["params"])}
        elif op == "get":
            reply = relay.state()
        else:
            reply = relay.stats()
        return encode({"ok": True, **reply})
    except ProtocolError as exc:
        return error(str(exc))


def error(message: str) -> bytes:
    """An error reply line."""
    return encode({"ok": False, "error": message})


def encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def parse_request(line: bytes) -> dict[str, Any]:
    """A checked request: `op`, and for `set` a `direction` and `params` (Impairments)."""
    if len(line) >= MAX_MESSAGE_BYTES:
        raise ProtocolError(f"request over {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(line, parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError("request nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise ProtocolError(f"not JSON: {_short(str(exc))}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"a request is a JSON object, not {type(data).__name__}")
    op = data.get("op")
    if not isinstance(op, str) or op not in _REQUEST_KEYS:
        raise ProtocolError(f"unknown op {_short(repr(op))} (ops: {', '.join(_REQUEST_KEYS)})")
    _known_keys(data, _REQUEST_KEYS[op], f"{op} request")
    if op != "set":
        return {"op": op}
    _known_keys(data, _REQUEST_KEYS[op], f"{op} request", required=True)
    direction = data["direction"]
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise ProtocolError(f"unknown direction {_short(repr(direction))} (directions: {', '.join(DIRECTIONS)})")
    return {"op": op, "direction": direction, "params": parse_impairments(data["params"])}


def parse_impairments(data: object) -> Impairments:
    """Checked parameters of one direction; absent keys keep their defaults (untouched)."""
    if not isinstance(data, dict):
        raise ProtocolError("params must be a JSON object")
    _known_keys(data, set(Impairments.__dataclass_fields__), "params")
    values: dict[str, Any] = {}
    for name in _SECOND_FIELDS:
        if name in data:
            values[name] = _number(data[name], name, 0.0, MAX_DELAY_S)
    for name in _PCT_FIELDS:
        if name in data:
            values[name] = _number(data[name], name, 0.0, 100.0)
    distribution = data.get("distribution")
    if distribution is not None and (not isinstance(distribution, str) or distribution not in DISTRIBUTIONS):
        raise ProtocolError(f"distribution {_short(repr(distribution))} is not one of {', '.join(DISTRIBUTIONS)}")
    values["distribution"] = distribution
    rate = data.get("rate_bps")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= MAX_RATE_BPS):
        raise ProtocolError(f"rate_bps must be an integer from 1 to {MAX_RATE_BPS}, not {_short(repr(rate))}")
    values["rate_bps"] = rate
    bursts = data.get("loss_bursts")
    if bursts is not None:
        if not isinstance(bursts, dict):
            raise ProtocolError("loss_bursts must be a JSON object or null")
        _known_keys(bursts, set(_BURST_FIELDS), "loss_bursts")
        missing = [name for name, required in _BURST_FIELDS.items() if required and name not in bursts]
        if missing:
            raise ProtocolError(f"loss_bursts lacks {', '.join(missing)}")
        values["loss_bursts"] = GilbertElliott(
            **{name: _number(value, f"loss_bursts.{name}", 0.0, 100.0) for name, value in bursts.items()}
        )
    return Impairments(**values)


def _known_keys(data: dict[str, Any], known: set[str], what: str, *, required: bool = False) -> None:
    unknown = sorted(_short(repr(k)) for k in set(data) - known)
    if unknown:
        raise ProtocolError(f"unknown keys in the {what}: {', '.join(unknown[:5])} (known: {', '.join(sorted(known))})")
    if required and set(data) != known:
        raise ProtocolError(f"the {what} lacks {', '.join(sorted(known - set(data)))}")


def _number(value: object, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value) if abs(value) < 1e308 else math.inf  # an int past float's range is out of range
    if not math.isfinite(number) or not low <= number <= high:
        raise ProtocolError(f"{name} must be from {low:g} to {high:g}, not {_short(repr(value))}")
    return number


def _no_constant(name: str) -> None:
    raise ProtocolError(f"{name} is not a number the relay accepts")


def _short(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."

"""Turn pydantic's validation errors into located, actionable problems.

pydantic reports a `loc` tuple that also contains union tags ("inline", "link-down"); we walk the
parsed data to keep only real keys and indices, look the position up, and rephrase the message
the way a scenario author needs it, with a "did you mean" where a near miss is likely.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from drills.errors import Problem
from drills.scenario.model import FAULT_KINDS, PROBE_TYPES
from drills.scenario.values import number, printable, shown
from drills.scenario.yamlpos import KeyPath, Located, path_text


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    """`; did you mean 'core'?` for a near miss, else the empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def problem_at(located: Located, path: KeyPath, message: str, *, key: bool = False) -> Problem:
    """A problem positioned at `path` (its key when `key`), falling back to the nearest parent.
    The message quotes what the author wrote: its control characters are escaped here, once."""
    message = printable(message)
    mark = located.mark(path, key=key)
    if mark is None:
        return Problem("?", 0, 0, printable(path_text(path)), message)
    return Problem(mark.file, mark.line, mark.column, printable(path_text(path)), message)


def _real_path(data: Any, loc: tuple[int | str, ...]) -> tuple[KeyPath, list[int | str]]:
    """Split pydantic's loc into the path present in `data` and the union tags along the way."""
    path: list[str | int] = []
    tags: list[int | str] = []
    node: Any = data
    for part in loc:
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            path.append(part)
            node = node[part]
        else:
            tags.append(part)
    return tuple(path), tags


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _tag_of(tp: Any) -> str | None:
    if typing.get_origin(tp) is typing.Annotated:
        for meta in typing.get_args(tp)[1:]:
            if isinstance(meta, Tag):
                return meta.tag
    inner = _unwrap(tp)
    return getattr(inner, "__name__", None)


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last element of `loc` (for listing its allowed keys)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if origin in (typing.Union, __import__("types").UnionType):
            members = typing.get_args(tp)
            chosen = next((m for m in members if _tag_of(m) == part), None)
            if chosen is None:
                non_none = [m for m in members if m is not type(None)]
                if len(non_none) != 1:
                    return None
                tp = _unwrap(non_none[0])
            else:
                tp = _unwrap(chosen)
                continue
            origin = typing.get_origin(tp)
        if origin is list:
            tp = typing.get_args(tp)[0]
            continue
        if origin is dict:
            tp = typing.get_args(tp)[1]
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for name, f in tp.model_fields.items() if part in (name, f.alias)), None)
            if field is None:
                return tp
            tp = field.annotation
            continue
        return None
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        # An optional section (`hosts: HostsSection | None`): its keys are the model's.
        non_none = [m for m in typing.get_args(tp) if m is not type(None)]
        tp = _unwrap(non_none[0]) if len(non_none) == 1 else None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def describe(value: Any) -> str:
    """How a value the user wrote is named in a message: `a list`, `'5 seconds'`, `3`."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return shown(value, 80) if isinstance(value, str) else number(value)


_describe = describe

_BOUND_WORDS = {
    "ge": "at least",
    "gt": "more than",
    "le": "at most",
    "lt": "less than",
}


def _message(error: ErrorDetails, root: type[BaseModel], tags: list[int | str]) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {}) or {}
    loc = error["loc"]
    given = error.get("input")
    if kind == "extra_forbidden":
        owner = _model_at(root, loc[:-1])
        key = str(loc[-1])
        choices = allowed_keys(owner) if owner else []
        hint = suggest(key, choices)
        listing = f" (allowed here: {', '.join(sorted(choices))})" if choices and not hint else ""
        return f"unknown key '{key}'{hint}{listing}"
    if kind == "missing":
        if loc == ("version",):
            return "missing required key 'version'; start the file with `version: 1`"
        return f"missing required key '{loc[-1]}'; add it"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # pydantic gives no expected tags when the tag is missing: take them from the model.
        field = "type" if "'type'" in str(ctx.get("discriminator", "")) else "fault"
        expected = list(PROBE_TYPES if field == "type" else FAULT_KINDS)
        if kind == "union_tag_not_found":
            if field == "fault":
                return "a timeline step needs `fault:` (one of " + ", ".join(expected) + ") or `restore:`"
            return f"missing `{field}:`; one of: {', '.join(expected)}"
        tag = str(ctx.get("tag"))
        hint = suggest(tag, expected)
        return f"unknown {field} '{tag}'{hint or '; use one of: ' + ', '.join(expected)}"
    if kind == "literal_error":
        expected_text = str(ctx.get("expected", ""))
        expected = [t.strip(" '") for t in expected_text.replace(" or ", ",").split(",") if t.strip()]
        if loc == ("version",):
            if isinstance(given, str) and given.strip() == "1":
                return "the version is a number: write `version: 1` without quotes"
            return f"unsupported format version {_describe(given)}; this drills reads `version: 1`"
        return (
            f"{_describe(given)} is not allowed here{suggest(str(given), expected)} (use one of: {', '.join(expected)})"
        )
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        if ":" in pattern and pattern.endswith("]+$"):
            return f"{_describe(given)} is not an endpoint; write node:interface, such as core:eth1"
        return (
            f"{_describe(given)} is not a valid name; use letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    if kind == "string_too_long":
        return f"{_describe(given)} is too long (at most {ctx.get('max_length')} characters)"
    if kind in ("too_short", "too_long") and "endpoints" in [str(p) for p in loc]:
        count = len(given) if isinstance(given, list) else "?"
        return (
            f"a link has exactly two endpoints, got {count}; a link is a point-to-point pair "
            "node:interface, so join more nodes with one link per pair"
        )
    if kind == "too_long":
        count = len(given) if isinstance(given, list | dict) else "?"
        return (
            f"{count} items, more than the {ctx.get('max_length')} accepted here (a bound of drills.scenario.limits, "
            "stated in the README): split the drill"
        )
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (key: value lines), got {_describe(given)}"
    if kind == "list_type":
        return f"expected a list (lines starting with '- '), got {_describe(given)}"
    if kind == "string_type":
        return f"expected text, got {_describe(given)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {_describe(given)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_describe(given)}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        size = "too small" if kind.startswith("greater") else "too large"
        bounds = ", ".join(f"{_BOUND_WORDS.get(k, k)} {v}" for k, v in ctx.items())
        return f"{_describe(given)} is {size}; write {bounds}"
    return f"{error['msg']} (got {_describe(given)})"


def problems_from(exc: ValidationError, located: Located, root: type[BaseModel], prefix: KeyPath = ()) -> list[Problem]:
    """Every error of a pydantic validation of `located.data` (at `prefix`), located."""
    problems: list[Problem] = []
    data = located.data
    for part in prefix:
        data = data[part]
    seen: set[tuple[KeyPath, str]] = set()
    for error in exc.errors():
        path, tags = _real_path(data, error["loc"])
        message = _message(error, root, tags)
        full = prefix + path
        if error["type"] in ("union_tag_invalid",):
            tag_key = "type" if "'type'" in str((error.get("ctx") or {}).get("discriminator", "")) else "fault"
            full = (*full, tag_key)
        if (full, message) in seen:
            continue
        seen.add((full, message))
        on_key = error["type"] == "extra_forbidden"
        if on_key:
            full = (*full, str(error["loc"][-1])) if full[-1:] != (error["loc"][-1],) else full
        problems.append(problem_at(located, full, message, key=on_key))
    return problems

"""The project's records to JSON-able values and back, for the agent's frames.

What JSON has (None, bools, numbers, strings, lists, string-keyed objects) goes as itself;
everything else as a one-key object whose key starts with "$" naming the type:

    {"$t": [...]}                     tuple
    {"$s": [...]} / {"$fs": [...]}    set / frozenset
    {"$m": [[key, value], ...]}       dict with a key that is not a string, or starts with "$"
    {"$dc": "module:Class", "f": {}}  dataclass (init fields; tuples stay tuples)
    {"$nt": "module:Class", "v": []}  named tuple
    {"$pd": "module:Class", "v": {}}  pydantic model (model_dump in JSON mode / model_validate)
    {"$e": "module:Class", "v": x}    enum member (signal.Signals, socket constants too)
    {"$ip": "IPv4Interface", "v": x}  ipaddress object (an integer, or [integer, prefix length])
    {"$p": "/a/path"}                 Path
    {"$b": "base64"}                  bytes

Decoding imports nothing chosen by the peer beyond a module in `ALLOWED_MODULES` and then
looks the class up by name there; a class defined elsewhere (re-exported, or a name that is not
a class of the expected kind) is refused with `BadFrame`. The peer is our own agent or
controller over an authenticated channel; the allowlist keeps a bug (or a compromised host)
from turning a frame into an arbitrary import or constructor call on the controller.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import importlib
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel, ValidationError

from drills.remote.frames import BadFrame

ALLOWED_MODULES = re.compile(
    r"drills\.(backend|scenario\.(resolved|probes|steps|model|model_\w+)|impairment|rules|records|hosts\.records"
    r"|remote\.\w+)"
)
# Standard-library enums that node operations and probes take (signal names, socket constants).
ALLOWED_ENUM_MODULES = frozenset({"signal", "socket"})
IP_TYPES: dict[str, Callable[[Any], Any]] = {
    cls.__name__: cls
    for cls in (
        ipaddress.IPv4Address,
        ipaddress.IPv6Address,
        ipaddress.IPv4Interface,
        ipaddress.IPv6Interface,
        ipaddress.IPv4Network,
        ipaddress.IPv6Network,
    )
}
MAX_DEPTH = 64  # records nest a handful of levels; deeper is a hostile or broken frame

_classes: dict[str, type] = {}  # decoding: name -> class, once looked up and checked
_init_fields: dict[type, tuple[str, tuple[str, ...]]] = {}  # encoding: class -> (name, init fields)


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def encode(value: Any) -> Any:
    """`value` as a JSON-able structure (TypeError for a type the codec does not carry)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):  # before int: an IntEnum is an int
        return {"$e": _name(type(value)), "v": encode(value.value)}
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, tuple):
        if hasattr(value, "_fields"):
            return {"$nt": _name(type(value)), "v": [encode(item) for item in value]}
        return {"$t": [encode(item) for item in value]}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: encode(item) for key, item in value.items()}
        return {"$m": [[encode(key), encode(item)] for key, item in value.items()]}
    if isinstance(value, BaseModel):
        return {"$pd": _name(type(value)), "v": value.model_dump(mode="json")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        names = _init_fields.get(cls)
        if names is None:
            names = _init_fields[cls] = (_name(cls), tuple(f.name for f in dataclasses.fields(cls) if f.init))
        return {"$dc": names[0], "f": {name: encode(getattr(value, name)) for name in names[1]}}
    if isinstance(value, (frozenset, set)):
        return {"$fs" if isinstance(value, frozenset) else "$s": [encode(item) for item in value]}
    if type(value).__name__ in IP_TYPES and type(value).__module__ == "ipaddress":
        return {"$ip": type(value).__name__, "v": _ip_value(value)}
    if isinstance(value, PurePath):
        return {"$p": str(value)}
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"the agent's codec does not carry {type(value).__module__}.{type(value).__qualname__}")


_KINDS: dict[str, Callable[[type], bool]] = {
    "$dc": dataclasses.is_dataclass,
    "$nt": lambda c: issubclass(c, tuple) and hasattr(c, "_fields"),
    "$pd": lambda c: issubclass(c, BaseModel),
    "$e": lambda c: issubclass(c, enum.Enum),
}


def _ip_value(value: Any) -> int | list[int]:
    """An address as its integer; an interface or network as [integer, prefix length]. Integers,
    not text: parsing "10.0.0.1/30" again costs ten times more, and a 300-node topology holds
    thousands (the codec's main cost on deploy)."""
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):  # before: they are addresses too
        return [int(value.ip), value.network.prefixlen]
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return int(value)
    return [int(value.network_address), value.prefixlen]


def _lookup(name: object, kind: str) -> type:
    """The class `name` ("module:Qualname") from an allowed module, checked to be of `kind`."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise BadFrame(f"a frame names a type as {name!r}")
    found = _classes.get(name)
    if found is not None:
        return found
    module_name, qualname = name.split(":")
    allowed = ALLOWED_MODULES.fullmatch(module_name) or (kind == "$e" and module_name in ALLOWED_ENUM_MODULES)
    if not allowed:
        raise BadFrame(f"a frame names {name!r}, outside the modules the codec decodes")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        raise BadFrame(f"a frame names {name!r}, which does not exist here (different drills versions?)") from None
    if not isinstance(target, type) or target.__module__ != module_name:
        raise BadFrame(f"a frame names {name!r}, which is not a class defined there")
    if not _KINDS[kind](target):
        raise BadFrame(f"a frame names {name!r} as {kind}, which it is not")
    _classes[name] = target
    return target


def decode(value: Any, depth: int = 0) -> Any:
    """The value `encode` made (BadFrame for anything it could not have made)."""
    if depth > MAX_DEPTH:
        raise BadFrame(f"a frame nests values over {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        raise BadFrame(f"a frame holds a {type(value).__name__}")
    tag = next(iter(value), None)
    if not (isinstance(tag, str) and tag.startswith("$")):
        return {key: decode(item, depth + 1) for key, item in value.items()}
    try:
        return _decode_tagged(tag, value, depth + 1)
    except BadFrame:
        raise
    except (TypeError, ValueError, KeyError, ValidationError) as exc:
        raise BadFrame(f"a frame's {tag} value cannot be rebuilt: {exc}") from None


def _items(value: Any, depth: int) -> list[Any]:
    if not isinstance(value, list):
        raise BadFrame(f"a frame holds a {type(value).__name__} where a list belongs")
    return [decode(item, depth) for item in value]


def _decode_tagged(tag: str, value: dict[str, Any], depth: int) -> Any:
    if tag == "$t":
        return tuple(_items(value["$t"], depth))
    if tag == "$s":
        return set(_items(value["$s"], depth))
    if tag == "$fs":
        return frozenset(_items(value["$fs"], depth))
    if tag == "$m":
        return {key: item for key, item in (_pair(p) for p in _items(value["$m"], depth))}
    if tag == "$p":
        return Path(value["$p"])
    if tag == "$b":
        return base64.b64decode(value["$b"], validate=True)
    if tag == "$ip":
        cls = IP_TYPES.get(value["$ip"])
        if cls is None:
            raise BadFrame(f"a frame names {value['$ip']!r} as an ipaddress type")
        raw = value["v"]
        if isinstance(raw, list) and len(raw) == 2 and all(type(v) is int for v in raw):
            return cls(tuple(raw))
        if type(raw) is not int:
            raise BadFrame(f"a frame's {value['$ip']} is not an integer (and prefix length)")
        return cls(raw)
    cls = _lookup(value[tag], tag)
    if tag == "$e":
        return cls(decode(value["v"], depth))
    if tag == "$nt":
        return cls(*_items(value["v"], depth))
    if tag == "$pd":
        return cls.model_validate(value["v"])  # type: ignore[attr-defined]
    if tag == "$dc":
        fields = value["f"]
        if not isinstance(fields, dict):
            raise BadFrame("a frame's dataclass fields are not an object")
        return cls(**{key: decode(item, depth) for key, item in fields.items()})
    raise BadFrame(f"a frame holds an unknown tag {tag!r}")


def _pair(item: Any) -> tuple[Any, Any]:
    if not isinstance(item, list) or len(item) != 2:
        raise BadFrame("a frame's mapping entry is not a [key, value] pair")
    key, value = item
    try:
        hash(key)
    except TypeError:
        raise BadFrame(f"a frame's mapping key is a {type(key).__name__}") from None
    return key, value

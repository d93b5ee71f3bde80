"""YAML text that the scenario loader reads back as it was meant: steps of an imported timeline,
and one-line machine actions.

PyYAML's emitter quotes a string only where YAML 1.1 would read it as something else; the
scenario loader reads YAML 1.2 (`0o17` is an integer there, not in 1.1). The dumper here quotes
what either would misread.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that also quotes what YAML 1.2's core schema would not read as a string."""


_Dumper.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)


def _text(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    # Text over several lines (a description, a script) as a block: `|`; the emitter falls
    # back to a quoted scalar when a block cannot hold it (trailing spaces, tabs).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)

_WIDE = 1 << 30  # never fold a line


def flow(mapping: dict[str, Any]) -> str:
    """`{fault: link-down, link: cable-a, for: 120s}` on one line."""
    text = yaml.dump(
        mapping, Dumper=_FlowDumper, default_flow_style=True, sort_keys=False, allow_unicode=True, width=_WIDE
    )
    return text.strip().removesuffix("...").strip()


class _FlowDumper(_Dumper):
    """One line: text with newlines double-quoted with `\\n`, never as a block."""


_FlowDumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style='"' if "\n" in v else None))


def block(value: Any, indent: int = 0) -> str:
    """`value` as block YAML, each line indented by `indent` spaces."""
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True, width=100)
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def step(value: dict[str, Any]) -> str:
    """One timeline step as an item of a block list indented by two spaces: each key on a line
    of its own, lists and mappings of the action in flow style (as scenario authors write
    them), the inject as a block mapping, text over several lines as a `|` block."""
    parts = []
    for key, item in value.items():
        if key == "inject" or isinstance(item, str):
            parts.append(block({key: item}))
        else:
            parts.append(flow({key: item})[1:-1].strip() + "\n")
    lines = "".join(parts).splitlines(keepends=True)
    return "".join(("  - " if index == 0 else "    ") + line if line.strip() else line for index, line in enumerate(lines))

"""Junk in, ScenarioError out: the loader never crashes on a bad file, whatever the file holds.

Three kinds of junk: arbitrary text, arbitrary YAML-shaped data, and small mutations of the
example scenarios (the most realistic junk: a valid file with one thing wrong).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from drills.errors import ScenarioError
from drills.scenario import load_scenario, model, validate_file

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "scenarios").glob("*.yaml"))

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_counter = itertools.count()


def _load(text: str | bytes, directory: Path) -> None:
    """Write `text` to a fresh file in `directory` and load it: a Scenario or a ScenarioError,
    nothing else (any other exception fails the test)."""
    path = directory / f"fuzz-{next(_counter)}.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    try:
        try:
            load_scenario(path)
        except ScenarioError as exc:
            assert exc.problems, "a ScenarioError lists at least one problem"
            for problem in exc.problems:
                assert problem.message
                str(problem)  # renders
        # validate_file agrees with load_scenario and never raises.
        assert isinstance(validate_file(path), list)
    finally:
        path.unlink()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------- (a) arbitrary text


@FUZZ
@given(text=st.text(max_size=400))
def test_arbitrary_text(text: str, workdir: Path) -> None:
    _load(text, workdir)


# Pieces of YAML syntax, glued together at random by the test below.
# fmt: off
_YAMLISH = st.sampled_from(
    [
        "version: 1\n", "name: x\n", "topology:\n", "  nodes:\n", "    a: {}\n", "  links:\n",
        "    - {endpoints: [a:e, b:e]}\n", "- ", ": ", "{", "}", "[", "]", ",", "\"", "'", "&a ",
        "*a", "<<: ", "!!binary ", "!!python/object:os.system ", "---\n", "...\n", "\t", "  ",
        "\n", "#", "% ", "@", "`", "? ", "|\n", ">\n", "T+01:30", "1m30s", ".nan", ".inf", "~",
    ]
)
# fmt: on


@FUZZ
@given(pieces=st.lists(st.one_of(_YAMLISH, st.text(max_size=8)), max_size=40))
def test_yaml_like_text(pieces: list[str], workdir: Path) -> None:
    """Text built from YAML tokens reaches much deeper into the parser than random characters."""
    _load("".join(pieces), workdir)


# Bytes the bounded reader must refuse or pass on: byte-order marks, NUL, invalid UTF-8, control
# characters, and the YAML that makes aliases and nesting grow.
# fmt: off
_HOSTILE_BYTES = st.sampled_from(
    [
        b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\x00", b"\xff", b"\xc0\xaf",
        b"\xed\xa0\x80", b"\xe2\x82", b"\x1b[31m", b"\x7f", b"\xc2\x90", b"\r\n", b"\r", b"\t", b"\x0c",
        b"&a [", b"*a, ", b"]", b"&b {k: ", b"*b", b"}", b"<<: *a\n", b"[" * 70, b"]" * 70, b"version: 1\n",
        b"topology: /dev/zero\n", b"topology: .\n", b"topology: fuzz-0.yaml\n", b"\xef\xbf\xbe",
    ]
)
# fmt: on


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes, workdir: Path) -> None:
    """Any bytes at all: the reader refuses what is not UTF-8 YAML text, with a position."""
    _load(data, workdir)


@FUZZ
@given(pieces=st.lists(st.one_of(_HOSTILE_BYTES, st.binary(max_size=6), _YAMLISH.map(str.encode)), max_size=40))
def test_hostile_bytes(pieces: list[bytes], workdir: Path) -> None:
    _load(b"".join(pieces), workdir)


@FUZZ
@given(
    widths=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=12),
    mapping=st.booleans(),
)
def test_alias_growth_is_bounded(widths: list[int], mapping: bool, workdir: Path) -> None:
    """Aliases of aliases of any shape: within the bound the file loads (to a ScenarioError: it is
    no scenario), past it the bound says so; never a hang or a memory error."""
    lines = ["version: 1", "name: aliases", "l0: &l0 x"]
    for level, width in enumerate(widths, start=1):
        refs = [f"*l{level - 1}"] * width
        body = (
            "{" + ", ".join(f"k{i}: {ref}" for i, ref in enumerate(refs)) + "}" if mapping else f"[{', '.join(refs)}]"
        )
        lines.append(f"l{level}: &l{level} {body}")
    _load("\n".join(lines) + "\n", workdir)


# --------------------------------------------------------------------------- (b) YAML-shaped data


def _model_keys() -> list[str]:
    """Every key the scenario format knows (so that junk often looks like the real thing)."""
    keys: set[str] = set()
    for obj in vars(model).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            keys.update(field.alias or name for name, field in obj.model_fields.items())
    return sorted(keys)


_KEYS = st.one_of(st.sampled_from(_model_keys()), st.text(max_size=10))

# Values a scenario really holds, next to the random ones.
# fmt: off
_REALISTIC = [
    "1", "2s", "500ms", "T+00:10", "10mbit", "150%", "0.5%", "core", "core:eth1", "a:b", "default",
    "198.18.0.1/30", "198.18.0.0/16", "fd00::/48", "fd00::1/64", "10.0.0.1", "link-down",
    "partition", "udp-stream", "icmp", "fibre", "lo", "net.ipv4.ip_forward",
]
# fmt: on

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(_REALISTIC),
)

_DATA = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_KEYS, children, max_size=5),
    ),
    max_leaves=25,
)


@FUZZ
@given(data=_DATA)
def test_arbitrary_yaml_data(data: Any, workdir: Path) -> None:
    _load(yaml.safe_dump(data, allow_unicode=True), workdir)


@FUZZ
@given(body=st.dictionaries(_KEYS, _DATA, max_size=8))
def test_arbitrary_versioned_mapping(body: dict[str, Any], workdir: Path) -> None:
    """A mapping that starts like a scenario: gets past the first checks into resolution."""
    _load(yaml.safe_dump({"version": 1, **body}, allow_unicode=True), workdir)


# --------------------------------------------------------------------------- (c) mutated examples


def _example_data() -> list[Any]:
    """The examples as data; a `topology: FILE` include made absolute so that the mutated copy
    can live in a temporary directory."""
    out = []
    for path in EXAMPLES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data.get("topology"), str):
            data["topology"] = str((path.parent / data["topology"]).resolve())
        out.append(data)
    return out


EXAMPLE_DATA = _example_data()


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path inside `data` (not the root)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def _mutate(data: Any, kind: str, choice: int, scalar: Any, new_key: str) -> Any:
    data = copy.deepcopy(data)
    paths = list(_paths(data))
    if not paths:
        return data
    path = paths[choice % len(paths)]
    parent, last = _parent(data, path), path[-1]
    if kind == "drop":
        del parent[last]
    elif kind == "replace":
        parent[last] = scalar
    elif kind == "rename" and isinstance(parent, dict):
        # Keep the position of the key: rebuild the mapping in order.
        items = [(new_key if k == last else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)
    return data


@FUZZ
@given(
    example=st.integers(min_value=0),
    kinds=st.lists(st.sampled_from(["drop", "replace", "rename"]), min_size=1, max_size=3),
    choices=st.lists(st.integers(min_value=0), min_size=3, max_size=3),
    scalar=_SCALARS,
    new_key=_KEYS,
)
def test_mutated_examples(
    example: int, kinds: list[str], choices: list[int], scalar: Any, new_key: str, workdir: Path
) -> None:
    data = EXAMPLE_DATA[example % len(EXAMPLE_DATA)]
    for kind, choice in zip(kinds, choices, strict=False):
        data = _mutate(data, kind, choice, scalar, new_key)
    _load(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), workdir)


def test_examples_are_fuzzed() -> None:
    assert EXAMPLES, "no example scenarios found to mutate"

"""The bounded reader (drills/scenario/userfile.py) and composer (yamlcompose.py), piece by piece.

The hostile corpus (test_hostile_corpus.py) runs whole files through `drill validate`; these pin
the edges: exactly at a bound is accepted, one past it refused; what a message may quote.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from drills.containerlab import import_lab, topology_data_containers
from drills.docker.images import load_definition
from drills.errors import BadInput
from drills.scenario import userfile, yamlcompose
from drills.scenario.yamlpos import YamlError, load_located, load_plain

SECRET = "S3CR3T"


# --------------------------------------------------------------------------- userfile


def test_reads_a_regular_file_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "ten.yaml"
    path.write_bytes(b"0123456789")
    assert userfile.read_bytes(path, limit_bytes=10) == b"0123456789"
    # The size is refused before reading, at the caller's limit (the Zoo importer reads up to 32 MiB).
    with pytest.raises(userfile.FileRefused, match="file is 10 bytes; the limit is 9 bytes"):
        userfile.read_bytes(path, limit_bytes=9)


def test_follows_a_symlink_to_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text("a: 1\n")
    (tmp_path / "link.yaml").symlink_to("real.yaml")
    assert userfile.read_text(tmp_path / "link.yaml") == "a: 1\n"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """No writer ever opens the FIFO: a plain open() would block here forever."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(userfile.FileRefused, match=r"not a regular file \(a FIFO\)"):
        userfile.read_text(fifo)


@pytest.mark.parametrize(
    ("data", "message", "line", "column"),
    [
        (b"\xff\xfea\x00", "UTF-16", 1, 1),
        (b"a: 1\nb: \x00\n", "a NUL byte", 2, 4),
        (b"a: 1\nb: caf\xe9\n", "not UTF-8 text (byte 0xe9)", 2, 7),
        (b"a: 1\n\x1b[2J\n", "control character U+001B", 2, 1),
        (b"a: \xc2\x85 \xc2\xa0\n", "", 0, 0),  # NEL and NBSP are YAML-printable
        (b"\xef\xbb\xbfa: 1\r\n\tb\n", "", 0, 0),  # UTF-8 BOM, CR and tab: fine
    ],
)
def test_decode(data: bytes, message: str, line: int, column: int) -> None:
    if not message:
        assert userfile.decode(data)
        return
    with pytest.raises(userfile.FileRefused) as caught:
        userfile.decode(data)
    assert message in caught.value.reason
    assert (caught.value.line, caught.value.column) == (line, column)


# --------------------------------------------------------------------------- yamlcompose


def _compose(text: str) -> yaml.Node | None:
    return yamlcompose.compose(text, yaml.SafeLoader)


def test_values_bound_counts_aliases_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """`[x, x]` under an alias: the root mapping, 2 keys, the list, 2 items, then 3 more by the
    alias: 9 in all."""
    text = "a: &a [x, x]\nb: *a\n"
    monkeypatch.setattr(yamlcompose, "MAX_VALUES", 9)
    assert _compose(text) is not None
    monkeypatch.setattr(yamlcompose, "MAX_VALUES", 8)
    with pytest.raises(yamlcompose.ComposeError) as caught:
        _compose(text)
    assert (caught.value.line, caught.value.column) == (2, 4)  # at the alias that overflows


def test_depth_bound_counts_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlcompose, "MAX_DEPTH", 3)
    assert _compose("a: [[x]]\n") is not None  # mapping, list, list: 3 levels
    with pytest.raises(yamlcompose.ComposeError, match="nested more than 3 levels"):
        _compose("a: [[[x]]]\n")
    with pytest.raises(yamlcompose.ComposeError, match="aliases expanded"):
        _compose("a: &a [[x]]\nb: [*a]\n")


def test_an_anchor_may_be_redefined_and_an_alias_names_the_latest() -> None:
    located = load_located("a: &x 1\nb: &x 2\nc: *x\nd: &y [&y 3, *y]\n", "f.yaml")
    assert located.data == {"a": 1, "b": 2, "c": 2, "d": [3, 3]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &a [*a]\n", "recursive alias"),
        ("a: &a {b: [*a]}\n", "recursive alias"),
        ("a: *missing\n", "names no anchor"),
    ],
)
def test_alias_errors(text: str, expected: str) -> None:
    with pytest.raises(yamlcompose.ComposeError, match=expected):
        _compose(text)


def test_a_foreign_file_is_never_quoted() -> None:
    for text in (f"a: *{SECRET}\n", f"{SECRET}: 1\n{SECRET}: 2\n", f"a: !{SECRET} x\n", f"a: !!int {SECRET}\n"):
        with pytest.raises(YamlError) as caught:
            load_located(text, "f.yaml", foreign=True)
        assert SECRET not in str(caught.value), text


def test_a_token_is_short_and_escaped() -> None:
    assert yamlcompose.token("\x1b[31m") == "'\\x1b[31m'"
    assert len(yamlcompose.token("x" * 1000)) < 50
    assert yamlcompose.redact("found character '\\t' in 'S3CR3T', expected '<block end>' or ','") == (
        "found character '…' in '…', expected '<block end>' or ','"
    )


def test_plain_data_keeps_pyyaml_semantics_within_bounds() -> None:
    assert load_plain("base: &b {a: 1}\nx: {<<: *b, c: yes}\n", "lab.yml") == {
        "base": {"a": 1},
        "x": {"a": 1, "c": True},
    }
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with pytest.raises(YamlError, match="more than 400,000"):
        load_plain(laughs, "lab.yml")


# --------------------------------------------------------------------------- other readers


def test_containerlab_lab_that_is_a_fifo(tmp_path: Path) -> None:
    lab = tmp_path / "lab.clab.yml"
    os.mkfifo(lab)
    with pytest.raises(BadInput, match="a FIFO"):
        import_lab(lab, tmp_path / "out.yaml")


def test_containerlab_topology_data_too_deep(tmp_path: Path) -> None:
    data = tmp_path / "topology-data.json"
    data.write_text("[" * 100_000)
    with pytest.raises(BadInput, match=r"not a containerlab topology-data\.json"):
        topology_data_containers(data)


def test_image_definition_bomb(tmp_path: Path) -> None:
    definition = tmp_path / "bomb.yaml"
    definition.write_text("name: x\npackages: &p [" + ", ".join(["a"] * 1000) + "]\nsetup: [" + "*p, " * 500 + "]\n")
    with pytest.raises(BadInput, match="more than 400,000"):
        load_definition(definition)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &a [*a]\n", "recursive alias"),
        ("a: " + "[" * 2000 + "\n", "nested more than 64 levels"),
        (f"a: [{SECRET}\n", "YAML syntax"),
        (f"a: @{SECRET}\n", "YAML syntax"),
    ],
)
def test_without_libyaml_the_same_bounds(text: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML without its C extension: the pure Python parser feeds the same composer (its
    messages differ in wording, and quote the file: those quotes are redacted)."""
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    with pytest.raises(YamlError) as caught:
        load_located(text, "f.yaml", foreign=True)
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)

"""Hostile cases that cannot be plain text files in the repository: special files, big files,
bytes that are not UTF-8 text, aliases at sizes. `cases(tmpdir)` writes them and returns
`(path, expected substring of the output)`; tests/test_hostile_corpus.py runs them.

`SECRET` marks content no output may ever show (the runner checks every case's output for it):
files drills is pointed at may be anyone's (it runs as root).
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

SECRET = "S3CR3T"
LIMIT = "the limit is 4 MiB"
SCENARIO = "version: 1\nname: hostile\n"
FIFO = "not a regular file (a FIFO)"


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _laughs(levels: int, width: int) -> str:
    """The "billion laughs": each level an alias list of `width` aliases of the one before."""
    lines = ["version: 1", "name: laughs", "l0: &l0 [lol]"]
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _special(tmp: Path) -> list[tuple[Path, str]]:
    fifo = tmp / "fifo.yaml"
    os.mkfifo(fifo)
    directory = tmp / "directory.yaml"
    directory.mkdir()
    sock_path = tmp / "socket.yaml"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(sock_path))  # the file stays after the socket is closed
    loop_a, loop_b = tmp / "loop-a.yaml", tmp / "loop-b.yaml"
    loop_a.symlink_to(loop_b.name)
    loop_b.symlink_to(loop_a.name)
    to_fifo = tmp / "link-to-fifo.yaml"
    to_fifo.symlink_to(fifo.name)
    to_zero = tmp / "link-to-zero.yaml"
    to_zero.symlink_to("/dev/zero")
    dangling = tmp / "dangling.yaml"
    dangling.symlink_to("nowhere.yaml")
    return [
        (fifo, FIFO),
        (directory, "not a regular file (a directory)"),
        (sock_path, "not a regular file (a socket)"),
        (loop_a, "a loop of symbolic links"),
        (to_fifo, FIFO),
        (to_zero, "not a regular file (a character device)"),
        (dangling, "a symbolic link to a file that does not exist"),
        (Path("/dev/zero"), "not a regular file (a character device)"),
        (Path("/dev/null"), "not a regular file (a character device)"),
        (Path("/dev/stdin"), FIFO),  # the harness gives a silent pipe as stdin
        (Path("/dev/urandom"), "not a regular file (a character device)"),
        (Path("/proc/self/status"), "not a scenario: none of its keys is a scenario key"),  # size 0
    ]


def _big(tmp: Path) -> list[tuple[Path, str]]:
    sparse = tmp / "sparse-50MB.yaml"
    with sparse.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    limit = 4 * 1024 * 1024
    body = "version: 2\nname: big\n"
    at_limit = body + "#" * (limit - len(body) - 1) + "\n"
    comment_line = "# " + "x" * 78 + "\n"
    return [
        (_write(tmp / "5MB.yaml", SCENARIO + comment_line * (5 * 1024 * 1024 // 81)), LIMIT),
        (_write(tmp / "50MB.yaml", SCENARIO + comment_line * (50 * 1024 * 1024 // 81)), LIMIT),
        (sparse, LIMIT),
        (_write(tmp / "4MiB-plus-1.yaml", at_limit + "#"), LIMIT),
        (_write(tmp / "4MiB-exactly.yaml", at_limit), "unsupported format version 2"),
        (_write(tmp / "flat-2M-values.yaml", "[" + "a," * (1_900_000) + "]\n"), "more than 400,000 keys and values"),
        (_write(tmp / "long-value.yaml", SCENARIO.replace("hostile", "x" * 3_000_000)), "missing required key"),
        (_write(tmp / "long-key.yaml", SCENARIO + "k" * 3_000_000 + ": 1\n"), "YAML syntax"),
        (
            _write(tmp / "many-aliases.yaml", "a: &a x\nb: [" + "*a, " * 600_000 + "]\n"),
            "more than 400,000 keys and values",
        ),
        (_write(tmp / "deep-10000.yaml", "[" * 10_000 + "]" * 10_000), "nested more than 64 levels"),
        (_write(tmp / "deep-4MB.yaml", "[" * (4_000_000)), "nested more than 64 levels"),
        (_write(tmp / "deep-blocks.yaml", "".join(" " * i + "k:\n" for i in range(2000))), "nested more than 64"),
        (_write(tmp / "laughs-6.yaml", _laughs(6, 10)), "more than 400,000 keys and values"),
        (_write(tmp / "laughs-9.yaml", _laughs(9, 10)), "more than 400,000 keys and values"),
        (_write(tmp / "laughs-40x2.yaml", _laughs(40, 2)), "more than 400,000 keys and values"),
        (_write(tmp / "laughs-100x9.yaml", _laughs(100, 9)), "more than 400,000 keys and values"),
    ]


def _bytes(tmp: Path) -> list[tuple[Path, str]]:
    rng = random.Random(11)  # deterministic junk
    binary = bytes(rng.randrange(256) for _ in range(4096))
    return [
        (_write(tmp / "binary.yaml", binary), "a NUL byte"),
        (_write(tmp / "elf.yaml", b"\x7fELF\x02\x01\x01\x00" + binary), "a NUL byte"),
        (_write(tmp / "gzip.yaml", b"\x1f\x8b\x08\x00" + binary), "a NUL byte"),
        (_write(tmp / "nul.yaml", SCENARIO + "description: a\0b\n"), "a NUL byte"),
        (_write(tmp / "latin1.yaml", SCENARIO.encode() + b"description: caf\xe9\n"), "not UTF-8 text (byte 0xe9)"),
        (_write(tmp / "overlong.yaml", SCENARIO.encode() + b"description: \xc0\xaf\n"), "not UTF-8 text"),
        (_write(tmp / "surrogate.yaml", SCENARIO.encode() + b"description: \xed\xa0\x80\n"), "not UTF-8 text"),
        (_write(tmp / "truncated-utf8.yaml", SCENARIO.encode() + b"description: \xe2\x82"), "not UTF-8 text"),
        (_write(tmp / "utf16.yaml", SCENARIO.encode("utf-16")), "the file is UTF-16 text; save it as UTF-8"),
        (_write(tmp / "utf16be.yaml", b"\xfe\xff" + SCENARIO.encode("utf-16-be")), "UTF-16 text"),
        (_write(tmp / "utf32.yaml", SCENARIO.encode("utf-32")), "the file is UTF-32 text"),
        (_write(tmp / "utf8-bom.yaml", b"\xef\xbb\xbf" + b"version: 2\nname: bom\n"), "unsupported format version 2"),
        (_write(tmp / "esc.yaml", SCENARIO + "description: \x1b[31mred\n"), "control character U+001B"),
        (_write(tmp / "del.yaml", SCENARIO + "description: a\x7fb\n"), "control character U+007F"),
        (_write(tmp / "c1.yaml", SCENARIO + "description: a\u0090b\n"), "control character U+0090"),
        (_write(tmp / "bell.yaml", SCENARIO + "name: \a\n"), "control character U+0007"),
        (_write(tmp / "form-feed.yaml", SCENARIO + "\f\n"), "control character U+000C"),
        (_write(tmp / "crlf.yaml", "version: 1\r\nname: crlf\r\nversio: 1\r\n"), "crlf.yaml:3:1"),
        (_write(tmp / "cr-only.yaml", "version: 1\rname: cr\rversio: 1\r"), "cr-only.yaml:3:1"),
        (_write(tmp / "noncharacter.yaml", SCENARIO + "description: \ufffe\n"), "control character U+FFFE"),
    ]


def _includes(tmp: Path) -> list[tuple[Path, str]]:
    inc = tmp / "inc"
    inc.mkdir()
    os.mkfifo(inc / "fifo.yaml")
    (inc / "dir.yaml").mkdir()
    (inc / "loop.yaml").symlink_to("loop.yaml")
    (inc / "link-to-fifo.yaml").symlink_to("fifo.yaml")
    with (inc / "sparse.yaml").open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    _write(inc / "binary.yaml", bytes(range(256)))
    _write(inc / "latin1.yaml", b"nodes: {caf\xe9: {}}\n")
    _write(inc / "utf16.yaml", "nodes: {}\n".encode("utf-16"))
    _write(inc / "laughs.yaml", _laughs(9, 10).replace("version: 1\nname: laughs\n", "nodes: {}\n"))
    # An /etc/shadow-like file (it parses as a mapping whose keys are the lines) and other
    # secrets in shapes that reach each kind of message.
    _write(inc / "shadow", f"root:$6${SECRET}hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    _write(inc / "secret-syntax.yaml", f"password: [{SECRET}\n")
    _write(inc / "secret-quote.yaml", f'token: "{SECRET}\n')
    _write(inc / "secret-alias.yaml", f"nodes: *{SECRET}\n")
    _write(inc / "secret-tag.yaml", f"nodes: !{SECRET} x\n")
    _write(inc / "secret-dup.yaml", f"nodes: {{}}\n{SECRET}: 1\n{SECRET}: 2\n")
    _write(inc / "secret-key.yaml", f"nodes: {{}}\n{SECRET}-api-key: abc\n")
    _write(inc / "secret-string.yaml", f"{SECRET} one line of a config file\n")
    _write(inc / "secret-ctrl.yaml", f"nodes: {{}}\n{SECRET}: \x1b[2J\n")
    _write(inc / "secret-tab.yaml", f"nodes:\n\t{SECRET}: 1\n")
    _write(inc / "secret-escape.yaml", f'nodes: "{SECRET}\\q"\n')
    cases = [
        ("fifo.yaml", "topology file 'inc/fifo.yaml': not a regular file (a FIFO)"),
        ("dir.yaml", "topology file 'inc/dir.yaml': not a regular file (a directory)"),
        ("loop.yaml", "topology file 'inc/loop.yaml': a loop of symbolic links"),
        ("link-to-fifo.yaml", "not a regular file (a FIFO)"),
        ("sparse.yaml", LIMIT),
        ("binary.yaml", "topology file 'inc/binary.yaml': a NUL byte"),
        ("latin1.yaml", "not UTF-8 text (byte 0xe9); save the file as UTF-8 (at its line 1, column 12)"),
        ("utf16.yaml", "the file is UTF-16 text"),
        ("laughs.yaml", "more than 400,000 keys and values"),
        ("shadow", "a key that is not a topology key"),
        ("secret-syntax.yaml", "YAML syntax"),
        ("secret-quote.yaml", "YAML syntax"),
        ("secret-alias.yaml", "names no anchor defined before it"),
        ("secret-tag.yaml", "cannot read this value (an explicit tag that does not fit)"),
        ("secret-dup.yaml", "duplicate key; a key may appear once"),
        ("secret-key.yaml", "a key that is not a topology key"),
        ("secret-string.yaml", "a topology file holds a mapping"),
        ("secret-ctrl.yaml", "control character U+001B"),
        ("secret-tab.yaml", "YAML syntax"),
        ("secret-escape.yaml", "YAML syntax"),
    ]
    out = []
    for target, expected in cases:
        scenario = _write(tmp / f"include-{target.replace('.yaml', '')}.yaml", f"{SCENARIO}topology: inc/{target}\n")
        out.append((scenario, expected))
    for special, expected in (
        ("/dev/zero", "topology file '/dev/zero': not a regular file (a character device)"),
        ("/dev/stdin", "topology file '/dev/stdin': not a regular file (a FIFO)"),
        ("/dev/null", "not a regular file (a character device)"),
        ("/proc/self/status", "a key that is not a topology key"),
        ("/proc/self/environ", "a NUL byte"),
        ("/etc/passwd", "a topology file holds a mapping"),
        ("/", "topology file '/': not a regular file (a directory)"),
    ):
        name = special.strip("/").replace("/", "-") or "root"
        scenario = _write(tmp / f"include-abs-{name}.yaml", f"{SCENARIO}topology: {special}\n")
        out.append((scenario, expected))
    myself = _write(tmp / "include-itself.yaml", f"{SCENARIO}topology: include-itself.yaml\n")
    out.append((myself, "is this scenario itself"))
    return out


def cases(tmpdir: Path) -> list[tuple[Path, str]]:
    """Write the generated cases into `tmpdir`; (path, expected substring) for each."""
    groups = {"files": _special, "big": _big, "bytes": _bytes, "includes": _includes}
    out: list[tuple[Path, str]] = []
    for name, make in groups.items():
        directory = tmpdir / name
        directory.mkdir()
        out += make(directory)
    return out

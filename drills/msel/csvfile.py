"""Read and write an MSEL's CSV within bounds, as spreadsheets save it.

Excel's CSV dialect (quoted cells, doubled quotes, newlines inside quoted cells), UTF-8 with or
without a byte-order mark, comma or (as Excel writes it where the comma is the decimal sign)
semicolon between cells. Bounds, each refused with the row: the file at most `MAX_FILE_BYTES`,
`MAX_ROWS` rows after the header, `MAX_COLUMNS` columns, `MAX_CELL_BYTES` a cell; no NUL byte
and no control character but tab and newline (a cell's text ends up in the scenario's YAML).
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from drills.errors import BadInput
from drills.msel import MselError, RowProblem
from drills.scenario import userfile

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_ROWS = 5000
MAX_COLUMNS = 64
MAX_CELL_BYTES = 16 * 1024
_BOM = "\ufeff"
# A cell a spreadsheet would read as a formula (`=HYPERLINK(...)`, `+cmd|...`): CSV injection.
# Export writes it behind an apostrophe, as a spreadsheet shows text; import takes it off again.
_FORMULA = re.compile(r"^'*(?:[=+@]|-(?! ))")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Table:
    """The header and the rows of an MSEL file; `rows` pairs each row's number (the header is
    row 1) with its cells, padded to the header's width. Blank rows are left out."""

    file: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]


def _row_at(text: str) -> int:
    """The row (1-based) in which the character after `text` lies."""
    try:
        # One more character: it starts a new row when `text` ends a row, else continues it.
        return sum(1 for _ in csv.reader(io.StringIO(text + "x")))
    except csv.Error:
        return text.count("\n") + 1


def _decode(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise MselError([RowProblem(name, 0, "", "the file is UTF-16 text; save it as CSV UTF-8")])
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = _row_at(data[: exc.start].decode("utf-8"))
        raise MselError(
            [
                RowProblem(
                    name,
                    row,
                    "",
                    f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as \"CSV UTF-8\" "
                    "(Excel: File > Save As > CSV UTF-8; LibreOffice: character set Unicode (UTF-8))",
                )
            ]
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        raise MselError([RowProblem(name, _row_at(text[:nul]), "", "a NUL byte: this is a binary file, not CSV text")])
    return text


def _delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    return ";" if ";" in first and "," not in first else ","


def read_table(path: Path) -> Table:
    """The MSEL at `path`, checked against every bound, or MselError naming each problem."""
    name = str(path)
    try:
        data = userfile.read_bytes(path, MAX_FILE_BYTES)
    except userfile.FileRefused as exc:
        raise MselError([RowProblem(name, 0, "", exc.reason.replace("scenario or topology file", "CSV file"))]) from None
    text = _decode(data, name)
    reader = csv.reader(io.StringIO(text, newline=""), dialect="excel", delimiter=_delimiter(text))
    problems: list[RowProblem] = []
    header: tuple[str, ...] = ()
    rows: list[tuple[int, tuple[str, ...]]] = []
    number = 0
    try:
        for cells in reader:
            number += 1
            if number == 1:
                header = tuple(unquoted(cell.strip()) for cell in cells)
                if len(header) > MAX_COLUMNS:
                    raise MselError(
                        [RowProblem(name, 1, "", f"{len(header)} columns; the limit is {MAX_COLUMNS}: delete the empty or unused ones")]
                    )
                while header and not header[-1]:  # trailing empty columns, as spreadsheets save them
                    header = header[:-1]
                problems.extend(_check_cells(name, 1, header, header))
                continue
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) == MAX_ROWS:
                problems.append(RowProblem(name, number, "", f"more than {MAX_ROWS} injects; split the exercise into several scenarios"))
                break
            if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
                problems.append(
                    RowProblem(name, number, "", f"{len(cells)} cells, but the header names {len(header)} columns; give the extra cells a header")
                )
                continue
            # A newline inside a cell as Windows saves it (CRLF) is a newline.
            padded = tuple(unquoted(cell.replace("\r\n", "\n")) for cell in cells[: len(header)])
            padded += ("",) * (len(header) - len(padded))
            problems.extend(_check_cells(name, number, header, padded))
            rows.append((number, padded))
    except csv.Error as exc:  # a cell over csv's own field limit (128 KiB), a quote left open
        problems.append(RowProblem(name, number + 1, "", f"not CSV as a spreadsheet writes it ({exc}); cells are at most 16 KiB"))
    if not header:
        problems.append(RowProblem(name, 0, "", "the file is empty; an MSEL starts with a header row (ID, Exercise Time, ...)"))
    if problems:
        raise MselError(problems)
    return Table(name, header, tuple(rows))


def _check_cells(name: str, number: int, header: tuple[str, ...], cells: tuple[str, ...]) -> list[RowProblem]:
    problems = []
    for index, cell in enumerate(cells):
        column = header[index] if index < len(header) and header[index] else f"column {index + 1}"
        size = len(cell.encode("utf-8"))
        if size > MAX_CELL_BYTES:
            problems.append(RowProblem(name, number, column, f"a cell of {size:,} bytes; the limit is 16 KiB: shorten it"))
            continue
        bad = _CONTROL.search(cell)
        if bad:
            problems.append(
                RowProblem(name, number, column, f"control character U+{ord(bad.group()):04X} in the cell; remove it")
            )
    return problems


def _quoted(cell: str) -> str:
    return "'" + cell if _FORMULA.match(cell) else cell


def unquoted(cell: str) -> str:
    """A cell as the scenario holds it: the apostrophe export put before a formula-like cell removed."""
    return cell[1:] if cell.startswith("'") and _FORMULA.match(cell[1:]) else cell


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    """Rows as Excel writes CSV (CRLF, quotes where needed), with a byte-order mark so that
    Excel opens it as UTF-8 (LibreOffice and Google Sheets read it too). A cell that a
    spreadsheet would run as a formula starts with an apostrophe."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, dialect="excel")
    writer.writerow([_quoted(cell) for cell in header])
    writer.writerows([_quoted(cell) for cell in row] for row in rows)
    return _BOM + out.getvalue()


def write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` at once: written to a new file beside it, then renamed over it
    (a symlink planted at `path` is replaced, never written through)."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise BadInput(f"{path}: cannot write it ({exc.strerror or exc}); check the path and its directory") from None

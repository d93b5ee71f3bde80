"""The Master Scenario Events List (MSEL) as a spreadsheet: `drill msel export` writes a
scenario's timeline as CSV, one row per step; `drill msel import` reads such a CSV back into the
scenario's `timeline:`. Export then import gives back an equivalent timeline.

Every problem of an imported CSV is reported with its row (row 1 is the header, as a
spreadsheet numbers them) and column, all at once (`MselError`).
"""

from __future__ import annotations

from dataclasses import dataclass

from drills.errors import BadInput


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with an MSEL file, at a row and column when known."""

    file: str
    row: int  # 1 is the header; 0 when the whole file is at fault
    column: str  # the column's header as the file writes it; "" when the whole row is at fault
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row:
            where += f", row {self.row}"
        if self.column:
            where += f', column "{self.column}"'
        return f"{where}: {self.message}"


class MselError(BadInput):
    """An MSEL file drills cannot use; every problem found, in row order."""

    def __init__(self, problems: list[RowProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: p.row)
        super().__init__("\n".join(str(p) for p in self.problems))

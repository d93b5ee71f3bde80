"""The pieces every HTML report is built from: the page shell (inline CSS, print rules), the
verdict header, sections and tables.

A page needs no script, no network and no other file: styles are inline, plots are inline SVG.
Every piece of text from a results document goes through `esc` (html.escape, quotes too, so it
is safe in an attribute); the page as a whole through `visible` (drills.textsafe), so a control
or bidi character from a scenario shows as its escape (`\\x1b`) rather than raw. Text keeps its
newlines (a note's second line stays a second line in its cell: cells wrap with `pre-wrap`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from drills.textsafe import visible

# Verdict classes: the colour of a header, a row or a cell. `error` is a figure that could not
# be judged (an unreachable partition pair), shown like an inconclusive one.
PASS, FAIL, INCONCLUSIVE, ERROR, NEUTRAL = "pass", "fail", "inconclusive", "error", ""
OUTCOME_CLASS = {"passed": PASS, "failed": FAIL, "inconclusive": INCONCLUSIVE}

_NUMBER_UNIT = re.compile(r"(\d) (ms|s|%|packets/s)(?!\w)")

CSS = """
:root{--pass:#1e7d32;--pass-bg:#e6f4ea;--fail:#b3261e;--fail-bg:#fce8e6;--inc:#8a5300;--inc-bg:#fff4e0}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:1.5em auto;
 padding:0 1em;color:#1f2328;line-height:1.4}
h1{font-size:1.5em;margin:0 0 .2em}
h2{font-size:1.2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1em;margin:1em 0 .4em}
.verdict{border-radius:6px;padding:.8em 1.1em;border-left:8px solid}
.verdict .outcome{font-size:1.6em;font-weight:700;letter-spacing:.04em;margin:.1em 0}
.verdict.pass{background:var(--pass-bg);border-color:var(--pass)} .verdict.pass .outcome{color:var(--pass)}
.verdict.fail{background:var(--fail-bg);border-color:var(--fail)} .verdict.fail .outcome{color:var(--fail)}
.verdict.inconclusive{background:var(--inc-bg);border-color:var(--inc)}
.verdict.inconclusive .outcome{color:var(--inc)}
.verdict ul{margin:.3em 0 0;padding-left:1.3em}
.facts{color:#57606a;font-size:.9em;margin:.2em 0}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;margin:.4em 0;font-size:.88em}
th,td{border:1px solid #d0d7de;padding:.25em .5em;text-align:left;vertical-align:top;white-space:pre-wrap}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.mark,td.nowrap{white-space:nowrap}
tr.pass td.mark,td.pass{background:var(--pass-bg);color:var(--pass);font-weight:600}
tr.fail td.mark,td.fail{background:var(--fail-bg);color:var(--fail);font-weight:600}
tr.inconclusive td.mark,tr.error td.mark,td.inconclusive,td.error{background:var(--inc-bg);color:var(--inc);font-weight:600}
tr.fail td{background:#fff8f7} tr.inconclusive td,tr.error td{background:#fffbf2}
.note{background:#f6f8fa;border-left:4px solid #8c959f;padding:.4em .8em;margin:.5em 0}
.plots{display:grid;grid-template-columns:1fr;gap:.2em}
figure.probe-plot{margin:0;border:1px solid #eaeef2;border-radius:4px;padding:.2em .4em}
figure.probe-plot svg{width:100%;height:auto;display:block}
figure.probe-plot figcaption{font-size:.8em;color:#57606a}
.legend span{margin-right:1.4em;font-size:.85em}
table.pair-grid td{text-align:center;min-width:4.5em}
table.pair-grid td.self{background:#eaeef2}
table.pair-grid td.none{color:#8c959f}
table.pair-grid .want{display:block;font-size:.75em;color:#57606a;font-weight:400}
.range svg{display:block}
@media print{
 body{max-width:none;margin:0;font-size:10pt}
 section{break-before:page;page-break-before:always}
 section.keep{break-before:auto;page-break-before:auto}
 .table-wrap{overflow:visible}
 table{max-width:100%;font-size:8pt;table-layout:auto}
 th,td{overflow-wrap:break-word;padding:.15em .35em}
 tr,figure{break-inside:avoid;page-break-inside:avoid}
 thead{display:table-header-group}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def esc(value: object) -> str:
    """`value` as HTML text, safe in an element and in a quoted attribute."""
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Cell:
    """A table cell: its text (escaped when rendered) and its CSS class (`num`, `mark`, a verdict).
    `markup`: the text is our own markup (an SVG drawn from numbers), put in as it is."""

    text: object
    cls: str = ""
    markup: bool = False


@dataclass(frozen=True)
class Row:
    """A table row: its cells and its verdict class (colours the row's mark)."""

    cells: Sequence[object]  # str (or any value: escaped) or Cell
    cls: str = NEUTRAL


def table(header: Sequence[str], rows: Sequence[Row | Sequence[object]], cls: str = "") -> str:
    """A table in a wrapper that scrolls on screen and never clips in print."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        r = row if isinstance(row, Row) else Row(row)
        cells = []
        for cell in r.cells:
            c = cell if isinstance(cell, Cell) else Cell(cell)
            attr = f' class="{esc(c.cls)}"' if c.cls else ""
            if c.cls == "num" and not c.markup:
                # A figure wraps at its ± or /, never between a number and its unit.
                c = Cell(_NUMBER_UNIT.sub("\\1\u00a0\\2", str(c.text)), c.cls)
            cells.append(f"<td{attr}>{c.text if c.markup else esc(c.text)}</td>")
        attr = f' class="{esc(r.cls)}"' if r.cls else ""
        body.append(f"<tr{attr}>{''.join(cells)}</tr>")
    attr = f' class="{esc(cls)}"' if cls else ""
    return f'<div class="table-wrap"><table{attr}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def mark(text: str) -> Cell:
    """The first cell of a verdict row (PASS / FAIL / ...), coloured by the row's class."""
    return Cell(text, "mark")


def section(ident: str, title: str, *parts: str, keep: bool = False) -> str:
    """A titled section; in print each starts a page (`keep`: stays with what precedes it)."""
    cls = ' class="keep"' if keep else ""
    return f'<section id="{esc(ident)}"{cls}><h2>{esc(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def paragraph(text: str, cls: str = "") -> str:
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<p{attr}>{esc(text)}</p>"


def bullets(items: Sequence[str], cls: str = "") -> str:
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"


REASONS_SHOWN = 12  # the header stays a header: the tables below list every one


def verdict_header(title: str, outcome_cls: str, outcome_text: str, facts: str, reasons: Sequence[str]) -> str:
    """The page's head: its title, the outcome in its colour, one line of facts, and why (the
    first REASONS_SHOWN reasons, then how many more)."""
    if len(reasons) > REASONS_SHOWN:
        reasons = [*reasons[:REASONS_SHOWN], f"… and {len(reasons) - REASONS_SHOWN} more (see below)."]
    return (
        f'<header id="verdict" class="verdict {esc(outcome_cls)}"><h1>{esc(title)}</h1>'
        f'<p class="outcome">{esc(outcome_text)}</p><p class="facts">{esc(facts)}</p>'
        f"{bullets(reasons, 'reasons') if reasons else ''}</header>"
    )


def page(title: str, body: Sequence[str], extra_css: str = "") -> str:
    """The whole document: every part is already escaped HTML; control characters made visible.
    `extra_css`: a report's own rules (ours, never text from a file), after the shared ones."""
    return visible(
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}{extra_css}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )

"""Text from scenarios made safe to show: control characters escaped visibly.

Scenario files are passed around, and their text (names, notes, commands, messages, the values
an error quotes) reaches terminals, logs and reports. Raw, an ESC starts a terminal escape
sequence (clear the screen, retitle the window, rewrite what was printed before), a carriage
return or a backspace overwrites a line, and a bidi override (U+202E) reorders what the reader
sees. `visible` replaces each such character with its escape (`\\x1b`, `\\u202e`), so the reader
sees exactly which bytes the file holds. A leaf module: it imports nothing from drills, so every
layer (errors, rendering, reports) can use it.

Backslashes are kept as they are: `\\x1b` in the output may have been written that way in the
file, but it can never act on the terminal, and paths and commands stay readable.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b alone is a CSI on some terminals).
_CONTROL = [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]
# Bidirectional embeddings, overrides and isolates (Trojan Source, CVE-2021-42574), the
# explicit direction marks, and the line/paragraph separators some terminals treat as newlines.
_FORMAT = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]
# Lone surrogates (JSON's "\\ud800" decodes to one) cannot be encoded at all: printed raw they
# crash the write; U+FFFE and U+FFFF are not characters, and XML refuses them.
_UNENCODABLE = [*range(0xD800, 0xE000), 0xFFFE, 0xFFFF]


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TABLE = {code: _escape(code) for code in _CONTROL + _FORMAT + _UNENCODABLE}
_TABLE_ONE_LINE = {**_TABLE, ord("\n"): "\\n", ord("\t"): "\\t"}
# str.translate looks every character up in a dict (13 us for an 85-character log line here);
# a regular expression first finds out (2 us, the call included) whether there is anything to do.
_ANY = re.compile("[" + "".join(f"\\U{code:08x}" for code in _TABLE) + "]")
_ANY_ONE_LINE = re.compile("[" + "".join(f"\\U{code:08x}" for code in _TABLE_ONE_LINE) + "]")


def visible(text: object, *, one_line: bool = False) -> str:
    """`text` (str() of it) with every control, bidi and line-separator character replaced by its
    visible escape. Tab and newline are kept, unless `one_line` (a table cell, a title, an XML
    attribute): then they are escaped as `\\t` and `\\n` too."""
    text = str(text)
    if one_line:
        return text.translate(_TABLE_ONE_LINE) if _ANY_ONE_LINE.search(text) else text
    return text.translate(_TABLE) if _ANY.search(text) else text

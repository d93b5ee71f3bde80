"""Names drills can use, made from a graph's labels: valid (`drills.scenario.fields.Name`:
letters, digits, `_`, `.`, `-`, starting with a letter or digit, at most 40 bytes) and unique
(ignoring case, so that no two differ only by it)."""

from __future__ import annotations

import re
import unicodedata

from drills.scenario.limits import MAX_NAME_BYTES

NODE_NAME_CHARS = 24
"""Node names are kept short so that a link's name, `NODE_A-NODE_B`, stays readable and mostly
within `MAX_NAME_BYTES` (longer ones are cut)."""

_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")


def plain(text: str, limit: int) -> str:
    """`text` reduced to a name's characters: accents dropped (São Paulo -> Sao-Paulo), every run of
    other characters a `-`, cut to `limit`; empty when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    name = _INVALID.sub("-", ascii_text)
    name = re.sub(r"^[^A-Za-z0-9]+", "", name)[:limit]
    return name.rstrip("-_.")


class Names:
    """Hands out unique names, in time linear in their number (a thousand nodes labelled alike
    do not rescan the same suffixes)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._next: dict[str, int] = {}  # base (lower case) -> the next suffix to try

    def unique(self, base: str, limit: int = MAX_NAME_BYTES) -> str:
        """`base` (cut to `limit`), or `base-2`, `base-3`, ... when that is taken."""
        name = base[:limit]
        key = name.lower()
        count = self._next.get(key, 1)
        while name.lower() in self._taken:
            count += 1
            suffix = f"-{count}"
            name = base[: limit - len(suffix)].rstrip("-_.") + suffix
        self._next[key] = count
        self._taken.add(name.lower())
        return name

"""Put a new `timeline:` into a scenario's text, keeping everything else as written (comments,
key order, the topology), and say where the lines went: a problem the scenario loader finds
in the result is reported at the base file's own line.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from drills.scenario import yamlcompose

HEADER_MARK = "# timeline: imported from "


@dataclass(frozen=True)
class Spliced:
    """The new scenario text and where its lines came from."""

    text: str
    header_lines: int  # lines of the import's own header comment, at the top
    block_start: int  # first line (1-based, in `text`) of the new timeline
    block_end: int  # last line of the new timeline
    removed: int  # lines of the base's own timeline left out
    removed_header: int = 0  # lines of an earlier import's header comment left out

    def base_line(self, line: int) -> int:
        """The base file's line for a line of `text` outside the new timeline (0: the header)."""
        if line <= self.header_lines:
            return 0
        if line < self.block_start:
            return line - self.header_lines + self.removed_header
        return line - (self.block_end - self.block_start + 1) + self.removed - self.header_lines + self.removed_header


def _timeline_span(text: str) -> tuple[int, int] | None:
    """(first line, line after the last) of the top-level `timeline:` key and its value, 0-based;
    None when the file has no such key. Comment lines at the left edge just before the next key
    belong to that key, not to the timeline."""
    root = yamlcompose.compose(text, yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return None
    lines = text.splitlines()
    keys = [key for key, _value in root.value]
    for index, key in enumerate(keys):
        if isinstance(key, yaml.ScalarNode) and key.value == "timeline":
            if key.start_mark.column != 0:
                return None  # a flow mapping at the top: not ours to splice
            # The value ends where the next top-level key starts (the composer keeps start
            # marks only), less the blank and comment lines just before that key.
            end = int(keys[index + 1].start_mark.line) if index + 1 < len(keys) else len(lines)
            while end > key.start_mark.line + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
                end -= 1
            return int(key.start_mark.line), end
    return None


def _insert_at(text: str) -> int:
    """Where a scenario without a timeline gets one: before `expect:` (or what follows it)."""
    root = yamlcompose.compose(text, yaml.SafeLoader)
    if isinstance(root, yaml.MappingNode):
        for key, _value in root.value:
            named = isinstance(key, yaml.ScalarNode) and key.value in ("expect", "expect_known", "duration")
            if named and key.start_mark.column == 0:
                return int(key.start_mark.line)
    return len(text.splitlines())


def splice(base: str, timeline: str, header: str) -> Spliced:
    """`base` with its timeline replaced by `timeline` (the YAML lines of `timeline: ...`) and
    `header` (comment lines) on top; an earlier import's header line is replaced."""
    lines = base.splitlines(keepends=True)
    removed_header = 0
    while removed_header < len(lines) and lines[removed_header].startswith(HEADER_MARK):
        removed_header += 1
    lines = lines[removed_header:]
    body = "".join(lines)
    span = _timeline_span(body)
    if span is None:
        start = end = _insert_at(body)
    else:
        start, end = span
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    new = timeline.splitlines(keepends=True)
    head = header.splitlines(keepends=True)
    text = "".join(head + lines[:start] + new + lines[end:])
    return Spliced(
        text=text,
        header_lines=len(head),
        block_start=len(head) + start + 1,
        block_end=len(head) + start + len(new),
        removed=end - start,
        removed_header=removed_header,
    )

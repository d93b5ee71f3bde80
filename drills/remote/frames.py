"""Length-prefixed frames over a pair of file descriptors: the agent's channel.

A frame is a 4-byte big-endian length, then that many bytes of one UTF-8 JSON object. The
channel is an SSH session's stdin/stdout (or a local pipe pair), so a frame may arrive in any
number of pieces: reads loop until the frame is whole. A frame over `MAX_FRAME_BYTES` is
refused before any of its body is read (a corrupt or hostile length never allocates 4 GiB).

Clean end of file (between frames) is `None` from `FrameReader.read`, distinct from a bad frame
(`BadFrame`): the first is a controller that went away, the second a channel that cannot be
trusted any more. Either way the reader is done.
"""

from __future__ import annotations

import json
import os
import select
import struct
import threading
from typing import Any

from drills.errors import BackendError

MAX_FRAME_BYTES = 32 * 1024 * 1024  # a 300-node topology encodes to ~1 MiB; 32x headroom
HEADER = struct.Struct(">I")
_READ_CHUNK_BYTES = 1024 * 1024


class BadFrame(BackendError):
    """A frame that cannot be read: too long, cut short by end of file, not UTF-8 JSON, not an
    object. The channel is out of step after one: it is closed, never resynchronised."""


class ChannelLost(BackendError):
    """The channel to an agent (or to the controller) is gone: end of file, a bad frame, a
    write to a closed pipe, or the agent process exited."""


def encode_frame(message: dict[str, Any]) -> bytes:
    """The bytes of one frame holding `message` (BadFrame when it would be too long)."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(body) > MAX_FRAME_BYTES:
        raise BadFrame(f"a frame of {len(body)} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadFrame(f"a frame is not UTF-8 JSON ({exc})") from None
    if not isinstance(message, dict):
        raise BadFrame(f"a frame holds a JSON {type(message).__name__}, not an object")
    return message


class FrameReader:
    """Reads frames from a file descriptor (blocking). One reader thread per descriptor."""

    def __init__(self, fd: int, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.fd = fd
        self.max_frame_bytes = max_frame_bytes

    def _read_exactly(self, count: int, started: bool) -> bytes | None:
        """`count` bytes; None on end of file before the first byte when no frame is `started`."""
        parts: list[bytes] = []
        have = 0
        while have < count:
            try:
                chunk = os.read(self.fd, min(count - have, _READ_CHUNK_BYTES))
            except OSError as exc:
                raise ChannelLost(f"reading the channel failed: {exc.strerror}") from None
            if not chunk:
                if have == 0 and not started:
                    return None
                raise BadFrame(f"end of file inside a frame ({have} of {count} bytes read)")
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def read(self) -> dict[str, Any] | None:
        """The next frame's object; None at a clean end of file (between frames)."""
        header = self._read_exactly(HEADER.size, started=False)
        if header is None:
            return None
        (length,) = HEADER.unpack(header)
        if length > self.max_frame_bytes:
            raise BadFrame(f"a frame announces {length} bytes, over the {self.max_frame_bytes}-byte limit")
        body = self._read_exactly(length, started=True)
        assert body is not None
        return decode_body(body)


class FrameWriter:
    """Writes frames to a file descriptor; safe to share between threads (one frame at a time,
    never interleaved). With `stall_s`, the descriptor is made non-blocking and a write that
    makes no progress for that long (the other side stopped reading: a hung or stopped peer)
    is `ChannelLost` instead of a caller blocked for ever."""

    def __init__(self, fd: int, stall_s: float | None = None) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        self._stall_ms = None if stall_s is None else max(1, int(stall_s * 1000))
        if stall_s is not None:
            os.set_blocking(fd, False)
            self._poll = select.poll()
            self._poll.register(fd, select.POLLOUT)

    def write(self, message: dict[str, Any]) -> None:
        data = memoryview(encode_frame(message))
        with self._lock:
            while data:
                try:
                    written = os.write(self.fd, data)
                except BlockingIOError:
                    if not self._poll.poll(self._stall_ms):
                        raise ChannelLost(f"the channel took nothing for {self._stall_ms} ms (the peer stopped reading)") from None
                    continue
                except OSError as exc:  # EPIPE: the other side is gone
                    raise ChannelLost(f"writing the channel failed: {exc.strerror}") from None
                data = data[written:]

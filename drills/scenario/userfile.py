"""Read a text file a user gave us, with bounds: drills runs as root and reads files people pass
around, so no file may hang it, exhaust its memory, or make it open a device.

Rules, each refused with a reason (`FileRefused`) instead of an exception from deep inside:

- only a regular file (symlinks are followed and the target is checked): no FIFO, device,
  socket or directory. The path is opened with O_PATH first, which opens nothing (no device
  driver runs, a FIFO cannot block), the descriptor's own type is checked, and only then is that
  same inode reopened for reading through /proc/self/fd: no window between check and open;
- at most `MAX_FILE_BYTES` (4 MiB), read with a bounded read (a file that grows while we read,
  or whose size the kernel does not report, cannot make us read more);
- UTF-8 text (a UTF-8 byte-order mark is accepted and dropped; UTF-16/32 are refused with the
  fix), no NUL byte and no control character other than tab, newline and carriage return (YAML
  does not allow them either; refusing them here gives a line and column instead of an offset).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

MAX_FILE_BYTES = 4 * 1024 * 1024  # a 10,000-link scenario is about 1.3 MB
_CHUNK_BYTES = 64 * 1024

_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
# What YAML calls non-printable (YAML 1.2, 5.1), but CR, tab and newline.
_NOT_PRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")


class FileRefused(Exception):
    """A file we will not read, and why (the reason says what to do); at a line when known."""

    def __init__(self, reason: str, line: int = 0, column: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _check_regular(fd: int, limit_bytes: int) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"not a regular file ({_kind(info.st_mode)}); give a scenario or topology file")
    if info.st_size > limit_bytes:
        raise FileRefused(_too_big(info.st_size, limit_bytes))
    return info


def _too_big(size: int | None, limit_bytes: int) -> str:
    have = f"{size:,} bytes" if size is not None else "larger"
    limit = f"{limit_bytes // 2**20} MiB ({limit_bytes:,} bytes)" if limit_bytes >= 2**20 else f"{limit_bytes:,} bytes"
    return f"file is {have}; the limit is {limit}: split it, or shorten it"


def _open_error(path: Path, exc: OSError) -> FileRefused:
    if exc.errno == errno.ENOENT:
        if path.is_symlink():
            return FileRefused("a symbolic link to a file that does not exist; check the link")
        return FileRefused("file not found; check the path")
    if exc.errno == errno.ELOOP:
        return FileRefused("a loop of symbolic links; check the links")
    if exc.errno == errno.ENXIO:  # opening a unix socket
        return FileRefused("not a regular file (a socket); give a scenario or topology file")
    if exc.errno == errno.EACCES:
        return FileRefused("permission denied; check the file's permissions")
    return FileRefused(f"cannot open: {exc.strerror or 'error'} (errno {exc.errno})")


def open_regular(path: Path, limit_bytes: int = MAX_FILE_BYTES) -> int:
    """A descriptor open for reading on the regular file `path` (symlinks followed) of at most
    `limit_bytes`, or FileRefused."""
    try:
        handle = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise _open_error(Path(path), exc) from None
    try:
        first = _check_regular(handle, limit_bytes)
        try:
            # Reopen the very inode we checked; O_NONBLOCK|O_NOCTTY in case something raced us.
            fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError:  # no /proc: open the path again, then compare inodes
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            raise _open_error(Path(path), exc) from None
    finally:
        os.close(handle)
    try:
        second = _check_regular(fd, limit_bytes)
        if (second.st_dev, second.st_ino) != (first.st_dev, first.st_ino):
            raise FileRefused("the file changed while it was opened; try again")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: Path, limit_bytes: int = MAX_FILE_BYTES) -> bytes:
    """At most `limit_bytes` of the regular file `path`; FileRefused when it holds more."""
    fd = open_regular(path, limit_bytes)
    try:
        chunks: list[bytes] = []
        total = 0
        while total <= limit_bytes:
            chunk = os.read(fd, min(_CHUNK_BYTES, limit_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise FileRefused(f"cannot read: {exc.strerror or 'error'} (errno {exc.errno})") from None
    finally:
        os.close(fd)
    if total > limit_bytes:
        raise FileRefused(_too_big(None, limit_bytes))
    return b"".join(chunks)


def _line_column(data: bytes | str, offset: int) -> tuple[int, int]:
    newline: bytes | str = b"\n" if isinstance(data, bytes) else "\n"
    line = data.count(newline, 0, offset) + 1  # type: ignore[arg-type]
    start = data.rfind(newline, 0, offset) + 1  # type: ignore[arg-type]
    return line, offset - start + 1


def decode(data: bytes) -> str:
    """UTF-8 text without NUL or control characters (a UTF-8 BOM dropped), or FileRefused."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise FileRefused(f"the file is {name} text; save it as UTF-8", 1, 1)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nul = data.find(b"\0")
    if nul >= 0:
        line, column = _line_column(data, nul)
        raise FileRefused("a NUL byte: this is a binary file, not YAML text", line, column)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_column(data, exc.start)
        raise FileRefused(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8", line, column
        ) from None
    bad = _NOT_PRINTABLE.search(text)
    if bad:
        line, column = _line_column(text, bad.start())
        code = ord(bad.group())
        raise FileRefused(
            f"control character U+{code:04X} (not allowed in YAML); remove it, or write it as an escape "
            'in a double-quoted string ("\\x1b")',
            line,
            column,
        )
    return text


def read_text(path: Path) -> str:
    """The text of the user's file `path` under every rule of this module, or FileRefused."""
    return decode(read_bytes(path))

"""Results directories (`runs/SCENARIO-RUNID/`, `--out DIR`): created and written by root without
ever following a symlink someone else planted.

`drill run` runs as root and writes where it is told, often under a directory other users can
write (a home, /tmp, a CI workspace). A symlink planted there (`runs -> /etc`, `results.json ->
/etc/shadow`) would have root create or overwrite files anywhere. So every path is walked from
`/` one component at a time with openat(2) and O_NOFOLLOW; a component that is a symlink is
followed only when it is *trusted*: owned by root (or the effective uid) in a directory that no
one else can write, the rule the kernel's fs.protected_symlinks applies in sticky directories.
Anything else is refused with BadInput. Files are replaced by unlink + O_CREAT|O_EXCL in the
directory already opened, so neither a symlink nor a hard link planted in its place is written
through.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from drills.errors import BadInput

DIR_MODE = 0o755  # results are meant to be read by the user who asked for the drill
FILE_MODE = 0o644
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _trusted_symlink(parent_fd: int, link: os.stat_result) -> bool:
    owners = (0, os.geteuid())
    parent = os.fstat(parent_fd)
    return link.st_uid in owners and parent.st_uid in owners and not parent.st_mode & 0o022


def _step(parent_fd: int, name: str, path: Path, create: bool) -> int | None:
    """Open directory `name` in `parent_fd` (creating it when `create`); None when it does not
    exist and `create` is false."""
    for _attempt in range(2):
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            if not create:
                return None
            with contextlib.suppress(FileExistsError):  # made meanwhile: looked at like any other
                os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
            continue
        if stat.S_ISLNK(info.st_mode):
            if not _trusted_symlink(parent_fd, info):
                raise BadInput(
                    f"{path}: {name} is a symlink that someone other than root could have planted "
                    f"(owned by uid {info.st_uid}, or in a directory others can write); refusing to write "
                    "through it: remove it or choose another results directory (--out)"
                )
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        if not stat.S_ISDIR(info.st_mode):
            raise BadInput(f"{path}: {name} is not a directory; choose another results directory (--out)")
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
    raise BadInput(f"{path}: {name} keeps changing while drills creates it; choose another results directory")


def _open_dir(path: Path, create: bool) -> int | None:
    """A descriptor of directory `path`, walked from / without following untrusted symlinks;
    None when a component does not exist and `create` is false."""
    absolute = Path(os.path.abspath(path))
    fd = os.open("/", _DIR_FLAGS)
    try:
        for name in absolute.parts[1:]:
            next_fd = _step(fd, name, path, create)
            if next_fd is None:
                return None
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_dir(path: Path) -> None:
    """Refuse now (BadInput) a results directory that could not be written safely later: called
    before a drill starts, so its results are not lost to a planted symlink at the end."""
    try:
        fd = _open_dir(path, create=False)
    except OSError as exc:
        raise BadInput(f"results directory {path}: {exc.strerror}") from None
    if fd is not None:
        os.close(fd)


def make_dir(path: Path) -> None:
    """Create `path` and its missing parents (0755), never through an untrusted symlink."""
    try:
        fd = _open_dir(path, create=True)
    except OSError as exc:
        raise BadInput(f"cannot create results directory {path}: {exc.strerror}") from None
    assert fd is not None
    os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write `path` anew (0644) in its existing directory; whatever was at its name is replaced,
    never written through."""
    try:
        fd = _open_dir(path.parent, create=False)
        if fd is None:
            raise BadInput(f"cannot write {path}: its directory does not exist")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path.name, dir_fd=fd)
            out = os.open(
                path.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE, dir_fd=fd
            )
        finally:
            os.close(fd)
        with os.fdopen(out, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror}") from None

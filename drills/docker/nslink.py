"""A container's network namespace, named like any drills node: /run/netns/drill-RUN-NODE.

Once bound there, the whole namespace path of drills (veths born inside it, addresses, routes,
probes, link faults, degrade, nftables faults, `ip netns exec`) works on a container unchanged;
containerlab does the same. A bind mount rather than containerlab's symlink to /proc/PID/ns/net:
a symlink outlives the container and, once its pid is reused, names some other process's
namespace (possibly the host's), so a fault would land there; a bind mount always names the
container's own namespace, and `kernel.delete_namespace` removes it like any other.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from drills.errors import BackendError, NameExists
from drills.netns import kernel

_MS_BIND = 4096
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def namespace_file(pid: int) -> Path:
    return Path(f"/proc/{pid}/ns/net")


def bind(name: str, pid: int) -> None:
    """Bind the network namespace of process `pid` at /run/netns/NAME (journal it first)."""
    kernel._ensure_run_dir()  # the run dir as `ip netns` makes it (shared mount): one owner of that logic
    target = kernel.netns_path(name)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    except FileExistsError:
        raise NameExists(f"namespace {name} already exists (not this run's: left alone); run `drill clean`", name) from None
    os.close(fd)
    _mount(pid, target)


def rebind(name: str, pid: int) -> None:
    """Point /run/netns/NAME at process `pid`'s namespace (a restarted container has a new one)."""
    target = kernel.netns_path(name)
    _libc.umount2(bytes(target), _MNT_DETACH)  # EINVAL when nothing is mounted: fine
    if not target.exists():
        fd = os.open(target, os.O_RDONLY | os.O_CREAT, 0)
        os.close(fd)
    _mount(pid, target)


def _mount(pid: int, target: Path) -> None:
    source = bytes(namespace_file(pid))
    if _libc.mount(source, bytes(target), b"none", _MS_BIND, None) != 0:
        code = ctypes.get_errno()
        hint = " (the container exited)" if code == errno.ENOENT else ""
        raise BackendError(f"cannot bind the namespace of pid {pid} at {target}: {os.strerror(code)}{hint}")


def same_namespace(name: str, pid: int) -> bool:
    """True when /run/netns/NAME is the network namespace of process `pid` (read back, not assumed)."""
    inode = kernel.namespace_inode(name)
    try:
        info = os.stat(namespace_file(pid))
    except OSError:
        return False
    return inode == (info.st_dev, info.st_ino)

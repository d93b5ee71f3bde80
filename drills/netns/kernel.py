"""Every system call and netlink message of the namespace backend, in one place.

Named namespaces follow iproute2's convention (a bind mount of the namespace at
/run/netns/NAME) so `ip netns exec` and `ip -n` work on a drills testbed. Namespaces are made
by unshare(2) in a worker thread rather than with `pyroute2.netns.create`, which forks a process
per namespace (about 9 ms each here against well under 1 ms). A netlink socket opened by a
thread that has entered a namespace belongs to that namespace for its whole life, so one worker
thread can visit every node and keep a socket in each: no subprocess per object.

pyroute2's exceptions are translated to `BackendError` here and nowhere else.
"""

from __future__ import annotations

import _thread
import ctypes
import errno
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink import NETLINK_ROUTE
from pyroute2.netlink.exceptions import NetlinkError

from drills import realtime
from drills.errors import BackendError, EnvironmentProblem, NameExists

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_MNT_DETACH = 2
FILE_TIMEOUT_S = 30.0  # creating one empty file takes ~1 ms: longer means a stuck filesystem

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def netns_path(name: str) -> Path:
    return NETNS_RUN_DIR / name


def _ensure_run_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does, so that namespaces mounted
    there are visible to other mount namespaces (and to `ip netns`)."""
    NETNS_RUN_DIR.mkdir(parents=True, exist_ok=True)
    if _libc.mount(b"none", bytes(NETNS_RUN_DIR), None, _MS_SHARED | _MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        return
    # Not a mount point yet: bind it onto itself first, then make it shared.
    _check(
        _libc.mount(bytes(NETNS_RUN_DIR), bytes(NETNS_RUN_DIR), b"none", _MS_BIND | _MS_REC, None),
        "mount --bind /run/netns",
    )
    _check(
        _libc.mount(b"none", bytes(NETNS_RUN_DIR), None, _MS_SHARED | _MS_REC, None), "mount --make-shared /run/netns"
    )


def _in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread and return its result. Namespace changes made by setns(2) or
    unshare(2) affect only the calling thread, so they die with this thread and never leak
    into the caller.

    A signal handler that raises (Ctrl-C, SIGTERM -> Aborted) may interrupt the caller at any
    bytecode, never the worker. Had the caller then torn down from the journal while the worker
    was still creating namespaces, those would outlive the run; so the interruption is passed on
    only once the worker is done. The hand-over is made of flags in `box` (set or read in one
    step under the GIL) and raw `_thread` locks used only to wake the other side: a Python-level
    lock (Event, Condition, Thread.join) interrupted at the wrong moment stays held, deadlocking
    both threads, and on Python 3.11 an interrupted Thread.start() or join() corrupts the
    Thread's state (bpo-45274)."""
    box: dict[str, Any] = {}
    # A fault's apply runs real-time with no inheritance across clone (drills.realtime.applying):
    # its work here keeps the caller's priority; a process started here begins ordinary.
    scheduling = realtime.current()
    gate = _thread.allocate_lock()  # held until the caller says "go" (or "cancel")
    done = _thread.allocate_lock()  # held until the worker finishes
    gate.acquire()
    done.acquire()

    def work() -> None:
        try:
            realtime.adopt(scheduling)
            while "go" not in box:
                gate.acquire(timeout=0.05)
            if box["go"]:
                box["result"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            box["finished"] = True
            done.release()

    def say(go: bool) -> None:
        box.setdefault("go", go)
        with suppress(RuntimeError):  # released already, by an interrupted attempt
            gate.release()

    try:
        _thread.start_new_thread(work, ())
    except BaseException:
        # The worker may or may not have started: either way it must do nothing. (If an
        # interruption lands between here and the loop below, the worker stays parked on the
        # gate and never acts.)
        say(False)
        raise
    interrupted: BaseException | None = None
    while True:
        try:
            say(True)
            while "finished" not in box:
                done.acquire(timeout=0.1)
            break
        except BaseException as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def _enter(name: str) -> None:
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {name}")
    finally:
        os.close(fd)


def write_sysctl(key: str, value: str) -> None:
    """Write a net.* sysctl of the calling thread's namespace (call inside a namespace thread)."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, f"{value}\n".encode())
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise BackendError(f"sysctl {key} does not exist in this kernel") from None
    except OSError as exc:
        raise BackendError(f"cannot set sysctl {key}={value}: {exc.strerror}") from None


def create_namespaces(names: Sequence[str], sysctls: Iterable[tuple[str, str]]) -> None:
    """Create named namespaces and set the given sysctls in each, in one worker thread.

    Creation order: the mount-point file first, then unshare, then the bind mount. A crash at any
    point leaves at most a file or a mount that `delete_namespace` removes. The files are made
    by a second thread, a few ahead of the worker: creating a file costs as much as the unshare
    here (~0.5-1.5 ms on this host's ext4 /run), and the two overlap on two CPUs (bench/scale.py:
    ~30 % of namespace creation at 1,000 nodes)."""
    settings = list(sysctls)

    def work() -> None:
        tid = threading.get_native_id()
        made: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        failed: list[BaseException] = []
        stop = threading.Event()

        def files() -> None:
            try:
                for name in names:
                    if stop.is_set():
                        break
                    os.close(os.open(netns_path(name), os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
                    made.put(name)
            except BaseException as exc:  # re-raised by the worker
                failed.append(exc)
            finally:
                made.put(None)

        maker = threading.Thread(target=files, name="drills-netns-files", daemon=True)
        maker.start()
        try:
            while (name := made.get(timeout=FILE_TIMEOUT_S)) is not None:
                _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
                source = f"/proc/self/task/{tid}/ns/net".encode()
                _check(_libc.mount(source, bytes(netns_path(name)), b"none", _MS_BIND, None), f"mount {name}")
                for key, value in settings:
                    write_sysctl(key, value)
        except queue.Empty:
            raise OSError(errno.ETIMEDOUT, f"no mount-point file made in {FILE_TIMEOUT_S:.0f} s") from None
        finally:
            # Teardown may follow an error at once: no file may appear after this returns.
            stop.set()
            maker.join(timeout=FILE_TIMEOUT_S)
        if failed:
            raise failed[0]

    try:
        _ensure_run_dir()
        _in_thread(work)
    except FileExistsError as exc:
        name = Path(exc.filename).name
        raise NameExists(f"namespace {name} already exists (not this run's: left alone); run `drill clean`", name) from None
    except OSError as exc:
        raise BackendError(f"cannot create a network namespace: {exc}") from None


def namespace_exists(name: str) -> bool:
    return netns_path(name).exists()


def delete_namespace(name: str) -> bool:
    """Unmount and remove a named namespace. Idempotent; True when something was removed.

    The kernel frees the namespace, and every interface in it, once no process and no socket
    holds it any more: kill its processes first (see `pids_in_namespaces`)."""
    target = netns_path(name)
    if not target.exists():
        return False
    _libc.umount2(bytes(target), _MNT_DETACH)  # EINVAL when a crash left the file unmounted
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise BackendError(f"cannot remove {target}: {exc.strerror}") from None
    return True


def namespace_inode(name: str) -> tuple[int, int] | None:
    try:
        info = os.stat(netns_path(name))
    except OSError:
        return None
    # A mounted namespace stats as the nsfs inode that /proc/PID/ns/net also shows; a leftover
    # unmounted file has a tmpfs inode that no process matches, which is harmless.
    return (info.st_dev, info.st_ino)


def process_namespace_inode(pid: int) -> tuple[int, int] | None:
    """The network namespace of process `pid` (as `namespace_inode` gives a named one's)."""
    try:
        info = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def pids_in_namespaces(names: Iterable[str]) -> dict[str, list[int]]:
    """Processes whose network namespace is one of `names` (one scan of /proc for all)."""
    # Each process's namespace is read as its link ("net:[INODE]"): half the cost of a stat
    # of it (the scan is on the clock for node-freeze, about 10 us a process here). Every
    # network namespace is an inode of the one nsfs, so the inode names it; a named one whose
    # file is not on nsfs (a leftover, unmounted) matches no process, as before.
    nsfs_dev = os.stat("/proc/self/ns/net").st_dev
    links: dict[str, str] = {}
    found: dict[str, list[int]] = {}
    for name in names:
        inode = namespace_inode(name)
        if inode is not None:
            found[name] = []
            if inode[0] == nsfs_dev:
                links[f"net:[{inode[1]}]"] = name
    if not links:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        owner = links.get(link)
        if owner is not None:
            found[owner].append(int(entry.name))
    return found


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot: with the pid, it names a process
    uniquely (a pid alone may have been reused after a crash)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def run_in_namespace(name: str, fn: Callable[[], T]) -> T:
    """Call `fn` in a thread that has entered namespace `name` (sockets it opens stay there;
    processes it starts are born there)."""

    def work() -> T:
        _enter(name)
        return fn()

    return _in_thread(work)


def enter_namespace_for_exec(name: str) -> None:
    """Move the calling (single-threaded) process into namespace `name`; used just before exec."""
    try:
        _enter(name)
    except OSError as exc:
        raise BackendError(f"cannot enter namespace {name}: {exc}") from None


# --------------------------------------------------------------------------- netlink


@contextmanager
def netlink_errors(what: str) -> Iterator[None]:
    """Translate pyroute2/OS failures into BackendError naming the object being changed."""
    try:
        yield
    except NetlinkError as exc:
        raise BackendError(f"{what}: {os.strerror(exc.code) if exc.code else exc}") from exc
    except OSError as exc:
        raise BackendError(f"{what}: {exc}") from exc


def root_netlink() -> IPRoute:
    return IPRoute()


def open_netlink(name: str) -> IPRoute:
    """An rtnetlink handle whose socket lives in namespace `name`."""

    def make() -> socket.socket:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)

    with netlink_errors(f"open netlink in {name}"):
        return IPRoute(use_socket=run_in_namespace(name, make))


def add_veth(root: IPRoute, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
    """Create a veth pair with each end born directly in its namespace (never in the host's)."""
    fd_a = os.open(netns_path(ns_a), os.O_RDONLY | os.O_CLOEXEC)
    fd_b = os.open(netns_path(ns_b), os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netlink_errors(f"create veth {ns_a}:{if_a} <-> {ns_b}:{if_b}"):
            root.link("add", ifname=if_a, kind="veth", net_ns_fd=fd_a, peer={"ifname": if_b, "net_ns_fd": fd_b})
    finally:
        os.close(fd_a)
        os.close(fd_b)


@dataclass(frozen=True)
class LinkState:
    """What the kernel says about one interface."""

    ifname: str
    index: int
    admin_up: bool
    carrier: bool
    mtu: int


_IFF_UP = 0x1


def link_index(ipr: IPRoute, ifname: str) -> int:
    with netlink_errors(f"look up {ifname}"):
        found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise BackendError(f"interface {ifname} not found")
    return int(found[0])


def link_state(ipr: IPRoute, ifname: str, index: int | None = None) -> LinkState:
    """What the kernel says of `ifname` (pass its `index` when known: saves a lookup)."""
    with netlink_errors(f"read {ifname}"):
        msg = ipr.link("get", index=index if index is not None else link_index(ipr, ifname))[0]
    return LinkState(
        ifname=ifname,
        index=int(msg["index"]),
        admin_up=bool(msg["flags"] & _IFF_UP),
        carrier=bool(msg.get_attr("IFLA_CARRIER")),
        mtu=int(msg.get_attr("IFLA_MTU")),
    )


def set_link(ipr: IPRoute, ifname: str, *, up: bool, mtu: int | None = None, index: int | None = None) -> None:
    """Set `ifname` administratively up or down (pass its `index` when known: saves a lookup)."""
    if index is None:
        index = link_index(ipr, ifname)
    with netlink_errors(f"set {ifname} {'up' if up else 'down'}"):
        if mtu is not None:
            ipr.link("set", index=index, mtu=mtu)
        ipr.link("set", index=index, state="up" if up else "down")


def local_link_index(ifname: str) -> int:
    """Index of `ifname` in the *calling thread's* namespace, from the kernel directly
    (if_nametoindex: one ioctl, against a netlink round trip through pyroute2). Only valid in a
    thread that has entered the interface's namespace (`in_each_namespace`, `run_in_namespace`)."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise BackendError(f"interface {ifname} not found") from None


def add_address(ipr: IPRoute, ifname: str, address: IPv4Interface | IPv6Interface, index: int | None = None) -> None:
    """Add (idempotently) an address to `ifname` (pass its `index` when known: saves a lookup)."""
    if index is None:
        index = link_index(ipr, ifname)
    with netlink_errors(f"add address {address} to {ifname}"):
        ipr.addr("replace", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)


def add_route(
    ipr: IPRoute,
    destination: str,
    gateway: str | None,
    device: str | None,
    metric: int,
    source: str | None,
    device_index: int | None = None,
) -> None:
    spec: dict[str, Any] = {"dst": destination, "priority": metric}
    if gateway is not None:
        spec["gateway"] = gateway
    if device is not None:
        spec["oif"] = device_index if device_index is not None else link_index(ipr, device)
    if source is not None:
        spec["prefsrc"] = source
    with netlink_errors(f"add route {destination} via {gateway or device} metric {metric}"):
        ipr.route("replace", **spec)


def interface_names(ipr: IPRoute) -> list[str]:
    with netlink_errors("list interfaces"):
        return [str(msg.get_attr("IFLA_IFNAME")) for msg in ipr.link("dump")]


def require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "the namespace testbed needs root (creating network namespaces); run as root or with sudo"
        )


def visit_namespaces(names: Sequence[str], fn: Callable[[str], None]) -> None:
    """Call `fn(name)` for each namespace from one worker thread that has entered it in turn
    (setns is per thread, and cheap): sockets `fn` opens live in that namespace."""

    def work() -> None:
        for name in names:
            _enter(name)
            fn(name)

    with netlink_errors("configure namespaces"):
        _in_thread(work)


def in_each_namespace(names: Sequence[str], fn: Callable[[str, IPRoute], None]) -> None:
    """Call `fn(name, ipr)` for each namespace, with `ipr` a netlink handle inside it; one worker
    thread visits them all in turn (setns is per thread, and cheap)."""

    def work() -> None:
        for name in names:
            _enter(name)
            ipr = IPRoute(use_socket=socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE))
            try:
                fn(name, ipr)
            finally:
                ipr.close()

    with netlink_errors("configure namespaces"):
        _in_thread(work)

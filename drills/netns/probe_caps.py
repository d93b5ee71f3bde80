"""Kernel capability probes, each tried for real in a throwaway network namespace.

Why this module exists: `drill doctor` must *detect* what this host can do, and the only honest
way to learn whether the kernel accepts a netem qdisc, a veth pair or an nftables rule is to ask
it to make one. Doing that in the host's own namespace would touch the machine's real network,
so every probe here runs in a scratch namespace: a fresh thread calls unshare(CLONE_NEWNET),
opens its netlink socket there and tries each feature in turn. The namespace is never named or
mounted (nothing in /run/netns, nothing journaled): once the thread has exited and its sockets
and file descriptors are closed, nothing refers to it and the kernel frees it together with
anything a failed cleanup might have left inside.

One thing a probe could still leave on the host: on a kernel with loadable modules, creating an
object may load its module, and loading `ifb` makes two devices, ifb0 and ifb1, in the host's
own namespace (its `numifbs` parameter defaults to 2). So the ifb probe is only tried when the
module is built in or already loaded (`ifb_would_load`); otherwise it reports why not and how to
load the module without those devices. Other modules (netem, tbf, nf_tables...) load without
creating anything. This is what lets `drill validate` and `drill plan`, which ask for these
probes, promise no side effects on the host's network.

It calls pyroute2 directly rather than through `drills.netns.kernel`: the backend's helpers turn
every failure into a `BackendError`, while here a refusal by the kernel is the answer being
sought (data, not an error), and the probes need the raw netlink error code to say *why*.
Each probe still removes what it created, on success and on failure.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import subprocess
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink import NETLINK_ROUTE
from pyroute2.netlink.exceptions import NetlinkError

from drills.netns import kernel

# Names of the objects the probes create; they only ever exist inside the scratch namespace.
VETH_NAME = "drdoc0"
VETH_PEER_NAME = "drdoc1"
IFB_NAME = "drdocifb0"
TAP_NAME = "drdoctap0"
NFT_TABLE = "drills_doctor"

TUN_DEVICE = "/dev/net/tun"
_TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_TC_H_ROOT = 0xFFFFFFFF
_PROBE_HANDLE = 0x10000  # "1:"
NFT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Outcome:
    """What one probe found."""

    ok: bool
    detail: str  # what the kernel (or tool) said, in words a user can act on


NOT_TRIED = Outcome(False, "not tried: no scratch network namespace could be created")


@dataclass(frozen=True)
class ScratchReport:
    """Every probe made in one scratch namespace."""

    namespace: Outcome
    veth: Outcome = NOT_TRIED
    netem: Outcome = NOT_TRIED
    tbf: Outcome = NOT_TRIED
    htb: Outcome = NOT_TRIED
    clsact: Outcome = NOT_TRIED
    ifb: Outcome = NOT_TRIED
    tuntap: Outcome = NOT_TRIED
    nftables: Outcome = NOT_TRIED
    nft_families: dict[str, Outcome] = field(default_factory=dict)  # "inet" -> accepted?


class _NotScratch(Exception):
    """The probe thread is not provably alone in a fresh namespace: touch nothing."""


def probe_scratch_namespace(nft_path: str | None, ifb_loads: Callable[[], bool] | None = None) -> ScratchReport:
    """Create a scratch namespace in a throwaway thread, try every kernel feature there, and
    return what was found. `nft_path` is the nft binary to try rulesets with (None: skip);
    `ifb_loads` says whether an ifb device would load its module (default: `ifb_would_load`)."""
    return kernel._in_thread(lambda: _probe_in_fresh_namespace(nft_path, ifb_loads or ifb_would_load))


def _netns_inode(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return (info.st_dev, info.st_ino)


def _probe_in_fresh_namespace(nft_path: str | None, ifb_loads: Callable[[], bool]) -> ScratchReport:
    # Runs in its own thread: unshare(2) below changes only this thread's namespace.
    before = _netns_inode("/proc/thread-self/ns/net")
    if kernel._libc.unshare(kernel.CLONE_NEWNET) != 0:
        reason = os.strerror(ctypes.get_errno())
        return ScratchReport(Outcome(False, f"unshare(CLONE_NEWNET): {reason}"))
    if _netns_inode("/proc/thread-self/ns/net") == before:
        # Never go on in what may be the host's namespace.
        return ScratchReport(Outcome(False, "unshare(CLONE_NEWNET) left the namespace unchanged"))
    try:
        ipr = _open_scratch_netlink()
    except _NotScratch as exc:
        return ScratchReport(Outcome(False, str(exc)))
    except Exception as exc:  # no netlink here means no probe can run: report, don't raise
        return ScratchReport(Outcome(False, f"netlink in the scratch namespace: {type(exc).__name__}: {exc}"))
    try:
        return _probe_all(ipr, nft_path, ifb_loads)
    finally:
        ipr.close()


def _link_names(ipr: IPRoute) -> list[str]:
    return [str(msg.get_attr("IFLA_IFNAME")) for msg in ipr.link("dump")]


def _open_scratch_netlink() -> IPRoute:
    """An rtnetlink handle whose socket is provably in this thread's fresh namespace.

    A socket belongs to the namespace of the thread that created it. pyroute2 0.9 opens its
    socket in the calling thread, but that is an implementation detail: check that only `lo` is
    visible (a fresh namespace has nothing else), and fall back to a socket made here."""
    ipr = IPRoute()
    if _link_names(ipr) != ["lo"]:
        ipr.close()
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        ipr = IPRoute(use_socket=sock)
        names = _link_names(ipr)
        if names != ["lo"]:
            ipr.close()
            seen = ", ".join(names)
            raise _NotScratch(f"netlink socket does not see a fresh namespace (links: {seen})")
    return ipr


def _attempt(probe: Callable[[], Outcome]) -> Outcome:
    # A probe that fails is data: pyroute2 raises NetlinkError, OSError, and for invalid
    # parameter combinations KeyError or a bare Exception. Whatever it is, report it.
    try:
        return probe()
    except NetlinkError as exc:
        return Outcome(False, _netlink_reason(exc))
    except Exception as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}")


def _quietly(undo: Callable[[], Any]) -> None:
    # A failed undo cannot leak: whatever remains lives in the scratch namespace, which the
    # kernel frees with its contents when the probe thread exits.
    with suppress(Exception):
        undo()


def _netlink_reason(exc: NetlinkError) -> str:
    code = int(exc.code or 0)
    text = os.strerror(code) if code else str(exc)
    return f"{text} (netlink error {code})"


def _probe_all(ipr: IPRoute, nft_path: str | None, ifb_loads: Callable[[], bool]) -> ScratchReport:
    namespace = Outcome(True, "unshare(CLONE_NEWNET) in a thread: fresh namespace with only lo")
    with ExitStack() as undo:
        veth = _attempt(lambda: _probe_veth(ipr, undo))
        # Qdiscs and netdev chains need a device; lo (always present) stands in when veth failed.
        device = VETH_NAME if veth.ok else "lo"
        index = int(ipr.link_lookup(ifname=device)[0])
        netem = _attempt(lambda: _probe_root_qdisc(ipr, index, "netem", delay=1000))
        tbf = _attempt(lambda: _probe_root_qdisc(ipr, index, "tbf", rate="1mbit", burst=16384, latency="50ms"))
        htb = _attempt(lambda: _probe_root_qdisc(ipr, index, "htb", default=0x10))
        clsact = _probe_clsact(ipr, index)
        ifb = IFB_NOT_LOADED if ifb_loads() else _attempt(lambda: _probe_ifb(ipr))
        tuntap = _attempt(lambda: _probe_tap(ipr))
        families: dict[str, Outcome] = {}
        if nft_path is None:
            nftables = Outcome(False, "not tried: no nft binary")
        else:
            families = {
                family: _attempt(partial(_probe_nft, nft_path, family, device)) for family in ("inet", "netdev")
            }
            nftables = _summarise_nft(families)
    return ScratchReport(
        namespace=namespace,
        veth=veth,
        netem=netem,
        tbf=tbf,
        htb=htb,
        clsact=clsact,
        ifb=ifb,
        tuntap=tuntap,
        nftables=nftables,
        nft_families=families,
    )


def _delete_link(ipr: IPRoute, ifname: str) -> None:
    for index in ipr.link_lookup(ifname=ifname):
        ipr.link("del", index=index)


def _probe_veth(ipr: IPRoute, undo: ExitStack) -> Outcome:
    ipr.link("add", ifname=VETH_NAME, kind="veth", peer={"ifname": VETH_PEER_NAME})
    # Removed only once every probe using it has finished (the ExitStack unwinds last).
    undo.callback(_quietly, lambda: _delete_link(ipr, VETH_NAME))
    missing = [name for name in (VETH_NAME, VETH_PEER_NAME) if not ipr.link_lookup(ifname=name)]
    if missing:
        return Outcome(False, f"the kernel acknowledged the veth pair but shows no {missing[0]}")
    return Outcome(True, "veth pair created")


def _qdisc_kinds(ipr: IPRoute, index: int) -> list[str]:
    return [str(msg.get_attr("TCA_KIND")) for msg in ipr.get_qdiscs(index=index)]


def _qdisc_reason(exc: NetlinkError) -> str:
    if exc.code == errno.ENOENT:
        # What tc prints for the same ENOENT: the kernel has no such qdisc kind.
        return f"Specified qdisc kind is unknown (netlink error {exc.code})"
    return _netlink_reason(exc)


def _probe_root_qdisc(ipr: IPRoute, index: int, kind: str, **params: Any) -> Outcome:
    try:
        ipr.tc("add", kind, index, _PROBE_HANDLE, **params)
    except NetlinkError as exc:
        return Outcome(False, _qdisc_reason(exc))
    try:
        if kind not in _qdisc_kinds(ipr, index):
            return Outcome(False, f"the kernel acknowledged {kind} but does not show it")
        return Outcome(True, f"{kind} qdisc added and removed")
    finally:
        _quietly(lambda: ipr.tc("del", index=index, handle=_PROBE_HANDLE, parent=_TC_H_ROOT))


def _probe_ingress_kind(ipr: IPRoute, index: int, kind: str) -> Outcome:
    try:
        ipr.tc("add", kind, index)
    except NetlinkError as exc:
        return Outcome(False, _qdisc_reason(exc))
    try:
        if kind not in _qdisc_kinds(ipr, index):
            return Outcome(False, f"the kernel acknowledged {kind} but does not show it")
        return Outcome(True, "accepted")
    finally:
        _quietly(lambda: ipr.tc("del", kind, index))


def _probe_clsact(ipr: IPRoute, index: int) -> Outcome:
    found = {kind: _attempt(partial(_probe_ingress_kind, ipr, index, kind)) for kind in ("clsact", "ingress")}
    detail = "; ".join(f"{kind}: {outcome.detail}" for kind, outcome in found.items())
    return Outcome(any(outcome.ok for outcome in found.values()), detail)


IFB_NOT_LOADED = Outcome(
    False,
    "not tried: the ifb module is not loaded, and loading it would make ifb0 and ifb1 in the host's "
    "namespace (`modprobe ifb numifbs=0` loads it without them)",
)


def ifb_would_load(
    proc_modules: Path = Path("/proc/modules"), sys_module: Path = Path("/sys/module"), lib_modules: Path | None = None
) -> bool:
    """True when creating an ifb device would first load the ifb module (and with it make ifb0
    and ifb1 in the host's namespace): the kernel has loadable modules, and ifb is neither
    loaded nor built in. The paths are parameters for the tests."""
    try:
        loaded = proc_modules.read_text()
    except OSError:  # no /proc/modules: a kernel without loadable modules loads nothing
        return False
    if any(line.split(" ", 1)[0] == "ifb" for line in loaded.splitlines()) or (sys_module / "ifb").exists():
        return False
    builtin = (lib_modules or Path("/lib/modules") / os.uname().release) / "modules.builtin"
    try:
        return not any(line.rsplit("/", 1)[-1] == "ifb.ko" for line in builtin.read_text().splitlines())
    except OSError:  # cannot tell whether it is built in: do not risk it
        return True


def _probe_ifb(ipr: IPRoute) -> Outcome:
    try:
        ipr.link("add", ifname=IFB_NAME, kind="ifb")
    except NetlinkError as exc:
        if exc.code == errno.EOPNOTSUPP:
            return Outcome(False, f"Unknown device type ifb (netlink error {exc.code})")
        return Outcome(False, _netlink_reason(exc))
    try:
        if not ipr.link_lookup(ifname=IFB_NAME):
            return Outcome(False, "the kernel acknowledged the ifb device but does not show it")
        return Outcome(True, "ifb device created")
    finally:
        _quietly(lambda: _delete_link(ipr, IFB_NAME))


def _probe_tap(ipr: IPRoute) -> Outcome:
    # TUNSETIFF on a descriptor opened in this thread makes the device in this thread's
    # namespace; without IFF_TUN_PERSIST it disappears when the descriptor is closed.
    if not os.path.exists(TUN_DEVICE):
        return Outcome(False, f"{TUN_DEVICE} does not exist")
    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    try:
        request = struct.pack("16sH22x", TAP_NAME.encode(), _IFF_TAP | _IFF_NO_PI)
        fcntl.ioctl(fd, _TUNSETIFF, request)
        if not ipr.link_lookup(ifname=TAP_NAME):
            return Outcome(False, "TUNSETIFF succeeded but no tap device appeared")
    finally:
        os.close(fd)
    if ipr.link_lookup(ifname=TAP_NAME):
        _quietly(lambda: _delete_link(ipr, TAP_NAME))
        return Outcome(True, f"tap device made through {TUN_DEVICE} (outlived its descriptor)")
    return Outcome(True, f"tap device created through {TUN_DEVICE} (TUNSETIFF)")


def _nft_script(family: str, device: str) -> str:
    hook = "hook output" if family == "inet" else f"hook ingress device {device}"
    # One atomic batch that ends by deleting its own table: accepted means the kernel built every
    # object (expressions are checked when the rule is added); refused means it rolled back.
    return (
        f"add table {family} {NFT_TABLE}\n"
        f"add chain {family} {NFT_TABLE} probe {{ type filter {hook} priority 0; }}\n"
        f"add rule {family} {NFT_TABLE} probe numgen random mod 100 < 1 drop\n"
        f"delete table {family} {NFT_TABLE}\n"
    )


def _probe_nft(nft_path: str, family: str, device: str) -> Outcome:
    # A child forked by this thread is born in this thread's (scratch) namespace.
    done = subprocess.run(
        [nft_path, "-f", "-"],
        input=_nft_script(family, device),
        capture_output=True,
        text=True,
        timeout=NFT_TIMEOUT_S,
        check=False,
    )
    if done.returncode == 0:
        return Outcome(True, "accepted")
    lines = done.stderr.splitlines()
    errors = [line for line in lines if "Error:" in line] or lines
    reason = errors[0].split("Error:", 1)[-1].strip() if errors else f"exit {done.returncode}"
    return Outcome(False, reason)


def _summarise_nft(families: dict[str, Outcome]) -> Outcome:
    accepted = [family for family, outcome in families.items() if outcome.ok]
    refused = {family: outcome for family, outcome in families.items() if not outcome.ok}
    parts = []
    if accepted:
        parts.append(f"{', '.join(accepted)}: table, base chain and random-drop rule accepted")
    parts.extend(f"{family}: {outcome.detail}" for family, outcome in refused.items())
    return Outcome(not refused, "; ".join(parts))

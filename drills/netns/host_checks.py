"""What this host's kernel can do for the namespace backend, each capability tried for real in a
throwaway network namespace (drills.netns.probe_caps): the backend declares these
(`NetnsBackend.capabilities`), and `drill doctor` shows them as its kernel rows."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from drills.backend import NAMESPACES, NETEM, NFTABLES, ROOT, TBF, TUNTAP, VETH
from drills.netns import probe_caps
from drills.netns.probe_caps import NOT_TRIED, Outcome, ScratchReport

_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21
HTB = "htb qdisc"
CLSACT = "clsact/ingress qdisc"
IFB = "IFB devices"


@dataclass(frozen=True)
class Check:
    """One capability of this host, as detected."""

    name: str  # e.g. "netem qdisc"
    ok: bool
    detail: str  # what was found, e.g. "kernel 6.18: Specified qdisc kind is unknown"
    fix: str  # what to do when missing ("" when ok)
    needed_for: str  # which drills features depend on it


def kernel_capabilities() -> dict[str, bool]:
    """Like `capabilities`, for the kernel features only (root, namespaces, qdiscs, nftables...):
    no wait for a Docker engine, so `drill validate` stays quick."""
    nft_path = shutil.which("nft")
    scratch = probe_caps.probe_scratch_namespace(nft_path)
    checks = [root_check(), *kernel_checks(scratch, os.uname().release, nft_path)]
    return {check.name: check.ok for check in checks}


# --------------------------------------------------------------------------- process


def _effective_caps() -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return None


def root_check() -> Check:
    needed = "creating namespaces, links, qdiscs, filters (the netns testbed, every kernel fault)"
    euid = os.geteuid()
    caps = _effective_caps()
    missing = [
        name
        for name, bit in (("CAP_NET_ADMIN", _CAP_NET_ADMIN), ("CAP_SYS_ADMIN", _CAP_SYS_ADMIN))
        if caps is None or not caps & (1 << bit)
    ]
    if euid != 0:
        return Check(ROOT, False, f"running as uid {euid}", "run as root (sudo drill …)", needed)
    if missing:
        return Check(
            ROOT,
            False,
            f"euid 0 but without {' and '.join(missing)}",
            "grant the capabilities (docker run --cap-add NET_ADMIN --cap-add SYS_ADMIN, or --privileged)",
            needed,
        )
    return Check(ROOT, True, "euid 0 with CAP_NET_ADMIN and CAP_SYS_ADMIN", "", needed)


# --------------------------------------------------------------------------- kernel


def _kernel_check(
    name: str, outcome: Outcome, release: str, fix: str, needed_for: str, *, after: str = NAMESPACES
) -> Check:
    if outcome == NOT_TRIED:
        return Check(name, False, outcome.detail, f"fix '{after}' first", needed_for)
    detail = f"kernel {release}: {outcome.detail}"
    return Check(name, outcome.ok, detail, "" if outcome.ok else fix, needed_for)


def _kernel_has_modules() -> bool:
    # /proc/modules is absent on a kernel built without loadable module support.
    return Path("/proc/modules").exists()


def _module_hint(module: str, config: str) -> str:
    if _kernel_has_modules():
        return f"modprobe {module}; if there is no such module, use a kernel with {config}"
    return f"this kernel has no loadable modules: boot one built with {config}"


def kernel_checks(scratch: ScratchReport, release: str, nft_path: str | None) -> list[Check]:
    namespace = scratch.namespace
    if namespace.ok:
        ns_fix = ""
    elif "not permitted" in namespace.detail:
        ns_fix = "run as root with CAP_SYS_ADMIN (in a container: --privileged)"
    else:
        ns_fix = "use a kernel with CONFIG_NET_NS=y"
    if nft_path is None:
        nft = Check(
            NFTABLES,
            False,
            "nft not found on PATH (kernel support not tried)",
            "apt-get install nftables (RHEL: dnf install nftables)",
            _NEEDED_NFT,
        )
    else:
        nft = _kernel_check(
            NFTABLES,
            scratch.nftables,
            release,
            "use a kernel with CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET, CONFIG_NF_TABLES_NETDEV "
            "and CONFIG_NFT_NUMGEN (" + _module_hint("nf_tables", "CONFIG_NF_TABLES") + ")",
            _NEEDED_NFT,
        )
    if os.path.exists(probe_caps.TUN_DEVICE):
        tun_fix = _module_hint("tun", "CONFIG_TUN")
    else:
        tun_fix = (
            f"mkdir -p /dev/net && mknod {probe_caps.TUN_DEVICE} c 10 200 (kernel: CONFIG_TUN); "
            f"in a container: --device {probe_caps.TUN_DEVICE}"
        )
    return [
        Check(
            NAMESPACES,
            namespace.ok,
            f"kernel {release}: {namespace.detail}",
            ns_fix,
            "the netns testbed (one namespace per node) and these kernel probes",
        ),
        _kernel_check(
            VETH,
            scratch.veth,
            release,
            _module_hint("veth", "CONFIG_VETH"),
            "links between testbed nodes",
        ),
        _kernel_check(
            NETEM,
            scratch.netem,
            release,
            "install a kernel with CONFIG_NET_SCH_NETEM (Debian: linux-image-amd64; "
            "RHEL: kernel-modules-extra) or use the userspace engine"
            + ("; if it is installed: modprobe sch_netem" if _kernel_has_modules() else ""),
            "delay, jitter, loss, duplication, reordering (degrade faults)",
        ),
        _kernel_check(
            TBF,
            scratch.tbf,
            release,
            _module_hint("sch_tbf", "CONFIG_NET_SCH_TBF"),
            "bandwidth limits (rate faults)",
        ),
        _kernel_check(
            HTB,
            scratch.htb,
            release,
            _module_hint("sch_htb", "CONFIG_NET_SCH_HTB"),
            "bandwidth limits under other qdiscs (rate classes)",
        ),
        _kernel_check(
            CLSACT,
            scratch.clsact,
            release,
            _module_hint("sch_ingress", "CONFIG_NET_SCH_INGRESS"),
            "faults on incoming traffic (tc filters on ingress, redirect to IFB)",
        ),
        _kernel_check(
            IFB,
            scratch.ifb,
            release,
            # numifbs=0: the module's default makes ifb0 and ifb1 in the host's namespace.
            _module_hint("ifb numifbs=0", "CONFIG_IFB"),
            "shaping incoming traffic (ingress redirected through an IFB device)",
        ),
        _kernel_check(
            TUNTAP,
            scratch.tuntap,
            release,
            tun_fix,
            "the userspace link engine (TAP pairs joined by a relay process): `auto` links that need netem "
            "use it when the kernel has no netem",
        ),
        nft,
    ]


_NEEDED_NFT = "random loss and drops without netem (numgen), blackholes, partitions"


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1.0, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""



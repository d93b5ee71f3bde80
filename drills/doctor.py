"""`drill doctor`: what this host can do, each capability detected (never assumed).

Kernel features are tried for real in a throwaway network namespace (`drills.netns.probe_caps`);
tools are looked up on PATH and, where a binary alone proves nothing (nftables, Docker), asked to
do something small. Every check that fails says what to install or change. The library never
prints: the CLI formats the list.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.backend import CONTAINERS as DOCKER
from drills.backend import NAMESPACES as NAMESPACES
from drills.backend import NETEM as NETEM
from drills.backend import NFTABLES as NFTABLES
from drills.backend import ROOT as ROOT
from drills.backend import TBF as TBF
from drills.backend import TUNTAP as TUNTAP
from drills.backend import VETH as VETH
from drills.netns import probe_caps
from drills.netns.probe_caps import NOT_TRIED, Outcome, ScratchReport

DOCKER_TIMEOUT_S = 2.0
_MIN_PYTHON = (3, 11)
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21

# Check names: stable keys of `capabilities()`, for code that refuses what the host cannot do.
# Those a backend may declare are the seam's own names (one spelling for both).
PYTHON = "Python version"
HTB = "htb qdisc"
CLSACT = "clsact/ingress qdisc"
IFB = "IFB devices"
IPTABLES = "iptables"
ANSIBLE = "Ansible"
MININET = "Mininet"


@dataclass(frozen=True)
class Check:
    """One capability of this host, as detected."""

    name: str  # e.g. "netem qdisc"
    ok: bool
    detail: str  # what was found, e.g. "kernel 6.18: Specified qdisc kind is unknown"
    fix: str  # what to do when missing ("" when ok)
    needed_for: str  # which drills features depend on it


def run_checks(*, docker_timeout_s: float = DOCKER_TIMEOUT_S) -> list[Check]:
    """Detect every capability drills can use, in a fixed order. Creates nothing outside a
    scratch namespace that is gone when this returns; takes well under a second plus at most
    `docker_timeout_s` waiting for a Docker engine."""
    nft_path = shutil.which("nft")
    scratch = probe_caps.probe_scratch_namespace(nft_path)
    release = os.uname().release
    return [
        _root_check(),
        _python_check(),
        *_kernel_checks(scratch, release, nft_path),
        _iptables_check(),
        _docker_check(docker_timeout_s),
        _ansible_check(),
        _mininet_check(),
    ]


def capabilities() -> dict[str, bool]:
    """Check name -> detected, for parts of drills that must refuse what the host lacks
    (e.g. netem faults when `capabilities()[NETEM]` is False)."""
    return {check.name: check.ok for check in run_checks()}


def kernel_capabilities() -> dict[str, bool]:
    """Like `capabilities`, for the kernel features only (root, namespaces, qdiscs, nftables...):
    no wait for a Docker engine, so `drill validate` stays quick."""
    nft_path = shutil.which("nft")
    scratch = probe_caps.probe_scratch_namespace(nft_path)
    checks = [_root_check(), *_kernel_checks(scratch, os.uname().release, nft_path)]
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


def _root_check() -> Check:
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


def _python_check() -> Check:
    found = ".".join(str(part) for part in sys.version_info[:3])
    ok = sys.version_info[:2] >= _MIN_PYTHON
    wanted = ".".join(str(part) for part in _MIN_PYTHON)
    fix = "" if ok else f"install Python {wanted} or newer (Debian 12: python3)"
    return Check(PYTHON, ok, f"Python {found} ({sys.executable})", fix, "drills itself")


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


def _kernel_checks(scratch: ScratchReport, release: str, nft_path: str | None) -> list[Check]:
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


# --------------------------------------------------------------------------- tools


def _tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1.0, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _iptables_check() -> Check:
    needed = "NFQUEUE to userspace (nft `queue` may be absent) and hosts without nftables"
    path = shutil.which("iptables")
    if path is None:
        fix = "apt-get install iptables"
        return Check(IPTABLES, False, "iptables not found on PATH", fix, needed)
    version = _tool_version([path, "--version"])
    return Check(IPTABLES, True, f"{path}: {version}" if version else path, "", needed)


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def _import_optional(module: str) -> tuple[Any, str]:
    """(module, "") when importable, else (None, why not)."""
    try:
        return importlib.import_module(module), ""
    except ImportError as exc:
        return None, str(exc)
    except Exception as exc:  # a broken install: report it rather than crash the doctor
        return None, f"{type(exc).__name__}: {exc}"


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _docker_check(timeout_s: float) -> Check:
    needed = "the Docker testbed backend (containers wired with veth pairs)"
    docker, why = _import_optional("docker")
    if docker is None:
        fix = "pip install 'drills[docker]'"
        return Check(DOCKER, False, f"docker SDK not importable: {why}", fix, needed)
    sdk = f"docker SDK {_distribution_version('docker')}"
    start = "dockerd & (then wait for /var/run/docker.sock)"
    install = "" if shutil.which("dockerd") else "apt-get install docker.io; "
    fix = f"{install}{start}"
    client = None
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
        where = str(client.api.base_url)
    except Exception as exc:  # DockerException, requests' errors, timeouts: all mean "no engine"
        cause = _root_cause(exc)
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if isinstance(cause, FileNotFoundError | ConnectionRefusedError):
            reason = f"no engine listening at {host}"
        else:
            reason = f"engine at {host} did not answer: {type(cause).__name__}: {cause}"
        return Check(DOCKER, False, f"{sdk}; {reason}", fix, needed)
    finally:
        _close_quietly(client)
    return Check(DOCKER, True, f"{sdk}; engine answered ping at {where}", "", needed)


def _close_quietly(client: Any) -> None:
    close: Callable[[], object] | None = getattr(client, "close", None)
    # Closing an idle HTTP pool cannot change the result: never let it fail the check.
    if close is not None:
        with suppress(Exception):
            close()


def _ansible_check() -> Check:
    needed = "Ansible playbooks as drill actions (ansible-runner)"
    runner, why = _import_optional("ansible_runner")
    playbook = shutil.which("ansible-playbook")
    found = []
    fixes = []
    if runner is None:
        found.append(f"ansible_runner not importable ({why})")
        fixes.append("pip install 'drills[ansible]'")
    else:
        found.append(f"ansible-runner {_distribution_version('ansible-runner')}")
    if playbook is None:
        found.append("ansible-playbook not found on PATH")
        fixes.append("pip install ansible-core (or apt-get install ansible)")
    else:
        found.append(playbook)
    return Check(ANSIBLE, not fixes, "; ".join(found), "; ".join(fixes), needed)


def _mininet_check() -> Check:
    needed = "information only: the Mininet comparison benchmarks in bench/ (drills never uses it)"
    path = shutil.which("mn")
    if path is None:
        return Check(MININET, False, "mn not found on PATH", "apt-get install mininet", needed)
    return Check(MININET, True, f"mn at {path}", "", needed)

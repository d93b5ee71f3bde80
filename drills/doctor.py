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
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from drills import realtime
from drills.backend import CONTAINERS as DOCKER
from drills.backend import NAMESPACES as NAMESPACES
from drills.backend import NETEM as NETEM
from drills.backend import NFTABLES as NFTABLES
from drills.backend import ROOT as ROOT
from drills.backend import TBF as TBF
from drills.backend import TUNTAP as TUNTAP
from drills.backend import VETH as VETH
from drills.netns import probe_caps
from drills.netns.host_checks import CLSACT as CLSACT
from drills.netns.host_checks import HTB as HTB
from drills.netns.host_checks import IFB as IFB
from drills.netns.host_checks import Check as Check
from drills.netns.host_checks import kernel_capabilities as kernel_capabilities
from drills.netns.host_checks import kernel_checks, root_check, tool_version

DOCKER_TIMEOUT_S = 2.0
_MIN_PYTHON = (3, 11)

# Check names: stable keys of `capabilities()`, for code that refuses what the host cannot do.
# Those a backend may declare are the seam's own names (one spelling for both).
PYTHON = "Python version"
IPTABLES = "iptables"
ANSIBLE = "Ansible"
MININET = "Mininet"
FRR = "FRR daemons"
KEEPALIVED = "keepalived"
REALTIME = "real-time probe threads"


def run_checks(*, docker_timeout_s: float = DOCKER_TIMEOUT_S) -> list[Check]:
    """Detect every capability drills can use, in a fixed order. Creates nothing outside a
    scratch namespace that is gone when this returns; takes well under a second plus at most
    `docker_timeout_s` waiting for a Docker engine."""
    nft_path = shutil.which("nft")
    scratch = probe_caps.probe_scratch_namespace(nft_path)
    release = os.uname().release
    return [
        root_check(),
        _python_check(),
        *kernel_checks(scratch, release, nft_path),
        _realtime_check(),
        _iptables_check(),
        _docker_check(docker_timeout_s),
        _ansible_check(),
        _mininet_check(),
        *_daemon_checks(),
    ]


def _daemon_checks() -> list[Check]:
    """FRR's and keepalived's programs, which a node's `daemons:` runs (drills.scenario.daemons)."""
    from drills.scenario import daemons

    out = []
    for name, package, programs in (
        (FRR, "frr", [p for p in daemons.programs() if p != daemons.KEEPALIVED]),
        (KEEPALIVED, "keepalived", [daemons.KEEPALIVED]),
    ):
        missing = [p for p in programs if not os.access(p, os.X_OK)]
        detail = f"missing: {', '.join(missing)}" if missing else ", ".join(os.path.basename(p) for p in programs) + " found"
        fix = f"apt-get install {package} (Debian's package)" if missing else ""
        out.append(Check(name, not missing, detail, fix, f"nodes' `daemons: {{{package}: ...}}`"))
    return out


def capabilities() -> dict[str, bool]:
    """Check name -> detected, for parts of drills that must refuse what the host lacks
    (e.g. netem faults when `capabilities()[NETEM]` is False)."""
    return {check.name: check.ok for check in run_checks()}


def _python_check() -> Check:
    found = ".".join(str(part) for part in sys.version_info[:3])
    ok = sys.version_info[:2] >= _MIN_PYTHON
    wanted = ".".join(str(part) for part in _MIN_PYTHON)
    fix = "" if ok else f"install Python {wanted} or newer (Debian 12: python3)"
    return Check(PYTHON, ok, f"Python {found} ({sys.executable})", fix, "drills itself")


# --------------------------------------------------------------------------- tools


def _realtime_check() -> Check:
    why = realtime.refusal()
    needed = "probe senders on time at a fault's edge (drills.realtime); without, they run as ordinary threads"
    if why is not None:
        return Check(REALTIME, False, f"SCHED_FIFO refused: {why}", "run as root (CAP_SYS_NICE), outside a container without a real-time budget", needed)
    return Check(REALTIME, True, f"SCHED_FIFO {realtime.FIFO_PRIORITY} allowed", "", needed)


def _iptables_check() -> Check:
    needed = "NFQUEUE to userspace (nft `queue` may be absent) and hosts without nftables"
    path = shutil.which("iptables")
    if path is None:
        fix = "apt-get install iptables"
        return Check(IPTABLES, False, "iptables not found on PATH", fix, needed)
    version = tool_version([path, "--version"])
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
        fixes.append("pip install 'drills[hosts]'")
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

"""Provisioning hosts with the playbooks of `ansible/`: `prepare` checks each host and installs
this drills there (from wheels built here), `clean` runs `drill clean` on each. Neither starts
anything that outlives it; the agent is started over SSH for the length of a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from drills.errors import HostError
from drills.hosts import ansible_edge, wheels
from drills.hosts.ansible_edge import Progress

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
PREPARE_TIMEOUT_S = 900.0  # a first install on a slow host: venv, pip from local wheels
CLEAN_TIMEOUT_S = 300.0
CLEAN_TASK = "drill clean"


@dataclass(frozen=True)
class Prepared:
    """What `prepare` installed: the version of drills and the wheels it came from."""

    version: str
    wheels: wheels.Wheels
    hosts: tuple[str, ...]  # the hosts that ran the playbook


def playbook(name: str, ansible_dir: Path = ANSIBLE_DIR) -> Path:
    """The playbook `ansible/NAME.yml` of the checkout drills runs from."""
    path = ansible_dir / f"{name}.yml"
    if not path.is_file():
        raise HostError(f"no playbook {path}: drills provisions hosts from its source checkout's ansible/ directory")
    return path


def _hosts_of(result: ansible_edge.PlaybookResult) -> tuple[str, ...]:
    return tuple(dict.fromkeys(o.host for o in result.outcomes))


def prepare(
    inventory_path: Path,
    hosts: Iterable[str] = (),
    progress: Progress = lambda _line: None,
    *,
    state_dir: Path,
    timeout_s: float = PREPARE_TIMEOUT_S,
) -> Prepared:
    """Check every host of the inventory (or only `hosts`) and install this drills into its
    virtualenv (the host variable drills_venv, default /opt/drills/venv). Raises `HostError`
    naming each host that is unreachable or fails a check, and why."""
    progress("building the wheels of drills for the hosts")
    built = wheels.build(state_dir)
    extravars = {
        "drills_version": built.version,
        "drills_python_version": built.python,
        "drills_arch": built.machine,
        "drills_wheels_local": str(built.tarball),
    }
    result = ansible_edge.run_playbook(
        playbook("prepare"), inventory_path, limit=hosts, extravars=extravars, progress=progress, timeout_s=timeout_s
    )
    return Prepared(built.version, built, _hosts_of(result))


def clean(
    inventory_path: Path,
    hosts: Iterable[str] = (),
    progress: Progress = lambda _line: None,
    *,
    all_runs: bool = False,
    state_dir: str = "",
    timeout_s: float = CLEAN_TIMEOUT_S,
) -> Mapping[str, str]:
    """`drill clean` (with `--all` when `all_runs`) on every host of the inventory (or only
    `hosts`), with the hosts' own state directory (`state_dir`, "" for their default). Returns
    what it reported removing, by host ("" where nothing was left). `drill clean` has no
    per-run option: it removes what every crashed run of the host left."""
    extravars: dict[str, object] = {"drills_clean_all": all_runs}
    if state_dir:
        extravars["drills_state_dir"] = state_dir
    result = ansible_edge.run_playbook(
        playbook("clean"), inventory_path, limit=hosts, extravars=extravars, progress=progress, timeout_s=timeout_s
    )
    return {host: result.stdout(host, CLEAN_TASK) for host in _hosts_of(result)}

"""The one edge to Ansible: runs a playbook through ansible-runner, turns its events into progress
lines ("h2: install drills ok") and its failures into `HostError`s naming each host, the task and
why. The only module of drills that imports `ansible_runner`.

ansible-runner's `run()` does not raise when a play fails: its `status` and `rc` are checked here.
Each run gets a private data directory (removed afterwards) and its own SSH control-socket
directory: the SSH masters Ansible leaves behind for reuse are told to exit when the run ends, so
no ssh (nor a ProxyCommand it started) outlives the call.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drills.errors import HostError
from drills.hosts.ssh import sudo_refusal

Progress = Callable[[str], None]

DEFAULT_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 10  # ssh's ConnectTimeout (ANSIBLE_TIMEOUT): an unreachable host fails in bounded time
FORKS = 32  # hosts provisioned at once (Ansible's default, 5, would queue a larger testbed's hosts)
CANCEL_POLL_S = 0.5  # how often ansible-runner asks whether to stop (its pexpect timeout)
MASTER_EXIT_TIMEOUT_S = 5.0
TAIL_LINES = 6  # of a failed command's stderr/stdout quoted in an error
OUTPUT_LIMIT_BYTES = 64 * 1024  # of one task's stdout kept per host

# What ssh itself says on stderr when a session ends: not the task's words.
SSH_NOISE = re.compile(r"^(Shared connection to \S+ closed\.|Connection to \S+ closed\.)\s*$")

# Ansible's per-host outcomes; every other event is ignored here.
OUTCOMES = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


@dataclass(frozen=True)
class TaskOutcome:
    """What one task did on one host."""

    host: str
    task: str
    outcome: str  # ok, changed, failed, unreachable, skipped, ignored (a failure the play ignores)
    message: str = ""  # why it failed or was unreachable: Ansible's msg and the command's output tail
    stdout: str = ""  # a command's output (first OUTPUT_LIMIT_BYTES)


@dataclass
class PlaybookResult:
    """A finished playbook: runner status and rc, and each task's outcome on each host."""

    playbook: str
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int | None
    outcomes: list[TaskOutcome] = field(default_factory=list)

    def stdout(self, host: str, task: str) -> str:
        """The output of `task` on `host` ("" when it printed nothing or did not run there)."""
        for outcome in self.outcomes:
            if outcome.host == host and outcome.task == task:
                return outcome.stdout
        return ""

    @property
    def failures(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.outcome in ("failed", "unreachable")]


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = [line.rstrip() for line in text.strip().splitlines()[-lines:]]
    return " | ".join(line for line in kept if line)


def _task_name(event_data: Mapping[str, Any]) -> str:
    task = str(event_data.get("task") or "?")
    # Role tasks may come as "role : task": the role is ours, the task name says the step.
    return task.split(" : ", 1)[1] if " : " in task else task


def _message(res: Mapping[str, Any]) -> str:
    """Why a task failed, in one line: Ansible's msg, then what the command wrote."""
    parts = []
    msg = str(res.get("msg") or "").strip()
    if msg:
        parts.append(_tail(msg))
    stderr = "\n".join(
        line for line in str(res.get("stderr") or res.get("module_stderr") or "").splitlines() if not SSH_NOISE.match(line)
    ).strip()
    stdout = str(res.get("stdout") or res.get("module_stdout") or "").strip()
    if stderr:
        parts.append(_tail(stderr))
    if stdout and res.get("rc") not in (0, None):
        # A failed command's stdout says why too (the script module runs its file on a pty:
        # what it wrote to stderr arrives on stdout).
        parts.append(_tail(stdout))
    if "rc" in res and res["rc"] not in (0, None) and not msg.startswith("non-zero return code"):
        parts.append(f"exit {res['rc']}")
    return "; ".join(parts) or "no message"


def outcome_of(event: Mapping[str, Any]) -> TaskOutcome | None:
    """The task outcome an ansible-runner event reports, or None for other events (plays,
    stats, verbose output...)."""
    kind = OUTCOMES.get(str(event.get("event", "")))
    data = event.get("event_data")
    if kind is None or not isinstance(data, Mapping):
        return None
    res = data.get("res")
    res = res if isinstance(res, Mapping) else {}
    if kind == "ok" and res.get("changed"):
        kind = "changed"
    if kind == "failed" and data.get("ignore_errors"):
        kind = "ignored"
    message = _message(res) if kind in ("failed", "unreachable", "ignored") else ""
    stdout = str(res.get("stdout") or "")[:OUTPUT_LIMIT_BYTES]
    return TaskOutcome(str(data.get("host") or "?"), _task_name(data), kind, message, stdout)


def progress_line(outcome: TaskOutcome) -> str:
    """The progress line of one task on one host: "h2: install drills ok"."""
    line = f"{outcome.host}: {outcome.task} {outcome.outcome}"
    return f"{line}: {outcome.message}" if outcome.message else line


def failure_error(result: PlaybookResult, timeout_s: float) -> HostError | None:
    """The error a finished playbook amounts to, or None when it succeeded."""
    if result.status == "successful" and result.rc == 0:
        return None
    name = Path(result.playbook).name
    failures = result.failures
    hosts = tuple(dict.fromkeys(f.host for f in failures))
    if result.status in ("timeout", "canceled"):
        done = ", ".join(sorted({o.host for o in result.outcomes})) or "none"
        why = f"did not finish within {timeout_s:g} s" if result.status == "timeout" else "was cancelled"
        return HostError(f"Ansible playbook {name} {why} (hosts that answered: {done})", hosts)
    if not failures:
        return HostError(
            f"Ansible playbook {name} failed (status {result.status}, rc {result.rc}) before any task "
            "ran on a host: check the inventory and that ansible-playbook runs (drill doctor)"
        )
    lines = []
    for f in failures:
        if f.outcome == "unreachable":
            lines.append(f"  {f.host}: unreachable: {f.message}{_become_advice(f.message)}")
        else:
            lines.append(f"  {f.host}: task `{f.task}` failed: {f.message}{_become_advice(f.message)}")
    noun = "host" if len(hosts) == 1 else "hosts"
    return HostError(f"Ansible playbook {name} failed on {len(hosts)} {noun} ({', '.join(hosts)}):\n" + "\n".join(lines), hosts)


def _become_advice(message: str) -> str:
    """What to do when a task failed because become (ansible_become) could not get root."""
    refusal = sudo_refusal(message)
    if refusal == "password":
        return (
            " (ansible_become: give the ansible_user passwordless sudo on this host, a NOPASSWD line in "
            "/etc/sudoers.d/, which drills' agent needs too: it runs through `sudo -n`; or log in as root)"
        )
    if refusal == "missing":
        return " (ansible_become needs sudo on this host: install it, or log in as root)"
    return ""


def _envvars(private_dir: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        # ansible-playbook lives beside this interpreter (the venv's bin/); without it on PATH
        # ansible-runner fails with no rc at all.
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_TIMEOUT": str(CONNECT_TIMEOUT_S),
        "ANSIBLE_FORKS": str(FORKS),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(private_dir / "cp"),
        "ANSIBLE_LOCAL_TEMP": str(private_dir / "tmp"),
        "ANSIBLE_HOME": str(private_dir / "home"),
    }


def _exit_masters(control_dir: Path) -> None:
    """Tell every SSH master of this run to exit (ControlPersist would keep each, and the
    ProxyCommand it started, for another minute)."""
    if not control_dir.is_dir():
        return
    for socket in control_dir.iterdir():
        # `-O exit` needs a destination argument; the control socket decides where it goes.
        argv = ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "drills-master"]
        try:
            subprocess.run(argv, capture_output=True, timeout=MASTER_EXIT_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue  # best effort: ControlPersist ends it within its own timeout anyway


def run_playbook(
    playbook: Path,
    inventory: Path,
    *,
    limit: Iterable[str] = (),
    extravars: Mapping[str, object] | None = None,
    progress: Progress = lambda _line: None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> PlaybookResult:
    """Run `playbook` against `inventory` (only the hosts of `limit`, when given) and return what
    each task did on each host. Raises `HostError` naming each failed or unreachable host and the
    task, when the playbook did not finish in `timeout_s`, or when `cancel` was set."""
    try:
        import ansible_runner
    except ImportError as exc:
        raise HostError(f"ansible-runner is not installed ({exc}): pip install 'drills[hosts]'") from None
    if shutil.which("ansible-playbook", path=_envvars(Path("/"))["PATH"]) is None:
        raise HostError("ansible-playbook is not installed beside drills: pip install 'drills[hosts]'")
    result = PlaybookResult(str(playbook), "unstarted", None)
    deadline = time.monotonic() + timeout_s

    def on_event(event: dict[str, Any]) -> bool:
        outcome = outcome_of(event)
        if outcome is not None:
            result.outcomes.append(outcome)
            progress(progress_line(outcome))
        return True  # ansible-runner drops an event whose handler does not return True

    def cancelled() -> bool:
        return time.monotonic() > deadline or (cancel is not None and cancel.is_set())

    hosts = ",".join(limit)
    with tempfile.TemporaryDirectory(prefix="drills-ansible-") as tmp:
        private_dir = Path(tmp)
        for sub in ("cp", "tmp", "home"):
            (private_dir / sub).mkdir(mode=0o700)
        try:
            runner = ansible_runner.run(
                private_data_dir=str(private_dir),
                playbook=str(playbook.resolve()),
                inventory=str(inventory.resolve()),
                limit=hosts or None,
                extravars=dict(extravars or {}),
                envvars=_envvars(private_dir),
                settings={"pexpect_timeout": CANCEL_POLL_S},
                event_handler=on_event,
                cancel_callback=cancelled,
                quiet=True,
            )
        except Exception as exc:  # ansible-runner's own errors (configuration, callback) have no common base
            raise HostError(f"could not run Ansible playbook {playbook.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            _exit_masters(private_dir / "cp")
        result.status = str(runner.status)
        result.rc = runner.rc if isinstance(runner.rc, int) else None
        if result.status == "canceled" and time.monotonic() > deadline:
            result.status = "timeout"
        error = failure_error(result, timeout_s)
        if error is not None and not result.failures and result.status not in ("timeout", "canceled"):
            # Nothing reached a host: ansible-playbook's own words say why (a bad inventory...).
            stdout = ""
            if runner.stdout is not None:
                with runner.stdout as handle:
                    stdout = handle.read(OUTPUT_LIMIT_BYTES)
            error = HostError(f"{error}\n{_tail(stdout, 10)}", error.hosts)
    if error is not None:
        raise error
    return result

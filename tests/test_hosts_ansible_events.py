"""ansible-runner's events as drills reads them (drills/hosts/ansible_edge.py): per-host task
outcomes become progress lines ("h2: install drills ok") and failures a `HostError` naming each
host and task. The event dicts are recorded from a real run (ansible-core 2.19, ansible-runner
2.4), trimmed to the fields the edge reads. The last tests run real playbooks on this machine
(`ansible_connection=local`, and ssh to a closed loopback port)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from drills.errors import ExitCode, HostError
from drills.hosts import ansible_edge
from drills.hosts.ansible_edge import PlaybookResult, TaskOutcome, failure_error, outcome_of, progress_line

UNREACHABLE = {
    "event": "runner_on_unreachable",
    "event_data": {
        "host": "ghost",
        "task": "look",
        "res": {
            "changed": False,
            "msg": "Task failed: Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused",
            "unreachable": True,
        },
    },
}
OK = {
    "event": "runner_on_ok",
    "event_data": {"host": "local", "task": "look", "res": {"changed": False, "msg": "", "rc": 0, "stderr": "", "stdout": "hello"}},
}
CHANGED = {
    "event": "runner_on_ok",
    "event_data": {"host": "local", "task": "change", "res": {"changed": True, "msg": "", "rc": 0, "stderr": "", "stdout": "changed"}},
}
SKIPPED = {"event": "runner_on_skipped", "event_data": {"host": "local", "task": "skip me"}}
IGNORED = {
    "event": "runner_on_failed",
    "event_data": {
        "host": "local",
        "task": "tolerated",
        "ignore_errors": True,
        "res": {"changed": True, "msg": "non-zero return code", "rc": 4, "stderr": "soft", "stdout": ""},
    },
}
FAILED = {
    "event": "runner_on_failed",
    "event_data": {
        "host": "local",
        "task": "break",
        "ignore_errors": None,
        "res": {"changed": True, "msg": "non-zero return code", "rc": 3, "stderr": "disk full", "stdout": ""},
    },
}
OTHERS: list[dict[str, Any]] = [
    {"event": "playbook_on_task_start", "event_data": {"task": "look"}},
    {"event": "runner_on_start", "event_data": {"host": "local", "task": "look"}},
    {"event": "playbook_on_stats", "event_data": {}},
    {"event": "verbose", "stdout": "PLAY RECAP"},
    {"event": "runner_on_ok", "event_data": "not a mapping"},
]


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (OK, "local: look ok"),
        (CHANGED, "local: change changed"),
        (SKIPPED, "local: skip me skipped"),
        (IGNORED, "local: tolerated ignored: non-zero return code; soft"),
        (FAILED, "local: break failed: non-zero return code; disk full"),
        (
            UNREACHABLE,
            "ghost: look unreachable: Task failed: Failed to connect to the host via ssh: "
            "ssh: connect to host 127.0.0.1 port 1: Connection refused",
        ),
    ],
)
def test_each_outcome_is_one_progress_line(event: dict[str, Any], line: str) -> None:
    outcome = outcome_of(event)
    assert outcome is not None
    assert progress_line(outcome) == line


@pytest.mark.parametrize("event", OTHERS)
def test_other_events_are_not_outcomes(event: dict[str, Any]) -> None:
    assert outcome_of(event) is None


def test_a_role_task_is_named_without_its_role_and_output_is_kept() -> None:
    event = {"event": "runner_on_ok", "event_data": {"host": "h1", "task": "drills_host : drill clean", "res": {"stdout": "removed x"}}}
    outcome = outcome_of(event)
    assert outcome == TaskOutcome("h1", "drill clean", "ok", "", "removed x")


def test_a_failed_script_quotes_its_output_without_sshs_own_words() -> None:
    res = {"msg": "non-zero return code", "rc": 1, "stderr": "Shared connection to 198.19.254.11 closed.\r\n", "stdout": "no python3.99\r\n"}
    outcome = outcome_of({"event": "runner_on_failed", "event_data": {"host": "h1", "task": "check host", "res": res}})
    assert outcome is not None
    assert outcome.message == "non-zero return code; no python3.99"


def test_a_quiet_failure_quotes_its_stdout_and_exit_status() -> None:
    event = {"event": "runner_on_failed", "event_data": {"host": "h1", "task": "t", "res": {"msg": "", "rc": 2, "stdout": "a\nb\nwhy"}}}
    outcome = outcome_of(event)
    assert outcome is not None
    assert outcome.message == "a | b | why; exit 2"


def _result(status: str, rc: int | None, *events: dict[str, Any]) -> PlaybookResult:
    outcomes = [o for o in (outcome_of(e) for e in events) if o is not None]
    return PlaybookResult("/x/prepare.yml", status, rc, outcomes)


def test_success_is_no_error_and_an_ignored_failure_is_not_one() -> None:
    assert failure_error(_result("successful", 0, OK, CHANGED, IGNORED), 60) is None


def test_failures_and_unreachable_hosts_are_each_named() -> None:
    error = failure_error(_result("failed", 4, OK, UNREACHABLE, FAILED), 60)
    assert isinstance(error, HostError)
    assert error.exit_code == ExitCode.ENVIRONMENT
    assert error.hosts == ("ghost", "local")
    assert str(error) == (
        "Ansible playbook prepare.yml failed on 2 hosts (ghost, local):\n"
        "  ghost: unreachable: Task failed: Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused\n"
        "  local: task `break` failed: non-zero return code; disk full"
    )


def test_become_refused_or_missing_says_what_to_do() -> None:
    refused = {
        "event": "runner_on_failed",
        "event_data": {"host": "h2", "task": "drill clean", "res": {"changed": False, "msg": "Task failed: Missing sudo password"}},
    }
    missing = {
        "event": "runner_on_failed",
        "event_data": {
            "host": "h3",
            "task": "check host",
            "res": {"changed": False, "msg": "MODULE FAILURE", "module_stderr": "/bin/sh: 1: sudo: not found", "rc": 127},
        },
    }
    error = failure_error(_result("failed", 2, refused, missing), 60)
    assert error is not None and error.hosts == ("h2", "h3")
    first, second = str(error).splitlines()[1:]
    assert first.startswith("  h2: task `drill clean` failed: Task failed: Missing sudo password (ansible_become: give")
    assert "passwordless sudo on this host" in first and "`sudo -n`" in first
    assert second.endswith("(ansible_become needs sudo on this host: install it, or log in as root)")
    # Other failures get no such advice.
    assert "sudo" not in str(failure_error(_result("failed", 4, FAILED), 60))


def test_a_failure_before_any_host_and_a_timeout_are_errors_too() -> None:
    early = failure_error(_result("failed", 1), 60)
    assert early is not None and "before any task ran on a host" in str(early) and early.hosts == ()
    late = failure_error(_result("timeout", 254, OK), 60)
    assert late is not None and str(late) == "Ansible playbook prepare.yml did not finish within 60 s (hosts that answered: local)"
    # A failed status with rc 0 (or the reverse) is not success either.
    assert failure_error(_result("successful", 2, OK), 60) is not None


# --------------------------------------------------------------------------- real runs, on this machine

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: look
      ansible.builtin.command: echo hello
      changed_when: false
    - name: break
      ansible.builtin.command: sh -c 'echo disk full >&2; exit 3'
      when: inventory_hostname == 'local'
"""


def _inventory(directory: Path, *lines: str) -> Path:
    path = directory / "inventory.ini"
    path.write_text("".join(line + "\n" for line in lines))
    return path


needs_ansible = pytest.mark.skipif(
    shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) is None,
    reason="ansible-playbook is not installed beside this Python: pip install -e '.[hosts]'",
)
LOCAL = f"local ansible_connection=local ansible_python_interpreter={sys.executable}"


@needs_ansible
def test_a_real_run_reports_progress_and_raises_for_the_failed_host(tmp_path: Path) -> None:
    playbook = tmp_path / "pb.yml"
    playbook.write_text(PLAYBOOK)
    # A closed port on loopback: refused at once, so the host is unreachable in bounded time.
    inventory = _inventory(tmp_path, LOCAL, "ghost ansible_host=127.0.0.1 ansible_port=1 ansible_user=root")
    lines: list[str] = []
    with pytest.raises(HostError) as caught:
        ansible_edge.run_playbook(playbook, inventory, progress=lines.append, timeout_s=120)
    assert caught.value.hosts == ("ghost", "local") or caught.value.hosts == ("local", "ghost")
    message = str(caught.value)
    assert "ghost: unreachable: " in message and "Connection refused" in message
    assert "local: task `break` failed: non-zero return code; disk full" in message
    assert "local: look ok" in lines


@needs_ansible
def test_a_real_run_limited_to_a_good_host_succeeds(tmp_path: Path) -> None:
    playbook = tmp_path / "pb.yml"
    playbook.write_text(PLAYBOOK.replace("== 'local'", "== 'nobody'"))
    inventory = _inventory(tmp_path, LOCAL, "ghost ansible_host=127.0.0.1 ansible_port=1")
    result = ansible_edge.run_playbook(playbook, inventory, limit=["local"], timeout_s=120)
    assert (result.status, result.rc) == ("successful", 0)
    assert result.stdout("local", "look") == "hello"
    assert [(o.host, o.task, o.outcome) for o in result.outcomes] == [("local", "look", "ok"), ("local", "break", "skipped")]


@needs_ansible
def test_a_run_past_its_timeout_is_stopped_and_says_so(tmp_path: Path) -> None:
    playbook = tmp_path / "slow.yml"
    # ansible-runner kills ansible-playbook's process group; a command the local connection
    # started may outlive it (its own session), so this one ends by itself soon after.
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.command: sleep 6\n")
    with pytest.raises(HostError, match=r"slow\.yml did not finish within 2 s"):
        ansible_edge.run_playbook(playbook, _inventory(tmp_path, LOCAL), timeout_s=2)


@needs_ansible
def test_a_limit_that_matches_no_host_is_an_error_quoting_ansible(tmp_path: Path) -> None:
    playbook = tmp_path / "pb.yml"
    playbook.write_text(PLAYBOOK)
    with pytest.raises(HostError, match=r"(?s)before any task ran on a host.*nosuch") as caught:
        ansible_edge.run_playbook(playbook, _inventory(tmp_path, LOCAL), limit=["nosuch"], timeout_s=120)
    assert caught.value.hosts == ()

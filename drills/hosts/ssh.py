"""How the controller starts a host's agent: the command line, built from the inventory's own
variables (the same ones Ansible reads), so one inventory reaches a host for both."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from drills.errors import BackendError
from drills.hosts.records import Host

CONNECT_TIMEOUT_S = 10
# SSH's own keepalive: a channel whose far side vanished (a host powered off, a cable pulled)
# is declared dead after ServerAliveInterval x ServerAliveCountMax, even with no agent frame due.
KEEPALIVE_INTERVAL_S = 1
KEEPALIVE_COUNT = 3


def agent_argv(host: Host) -> list[str]:
    """The command that runs `drill agent` on `host` with its frames on our stdin/stdout: through
    SSH (batch mode: a key, never a password prompt that would hang an unattended run), or, for
    `ansible_connection=local`, this interpreter's own drills."""
    if host.local:
        return [sys.executable, "-m", "drills", "agent"]
    return remote_argv(host, [f"{host.venv}/bin/drill", "agent"])


def remote_argv(host: Host, command: list[str], *, tty: bool = False) -> list[str]:
    """The ssh command line that runs `command` on `host` (through `sudo -n` with
    ansible_become); `tty` asks for a terminal (an interactive `drill exec`)."""
    remote = ["sudo", "-n", "--", *command] if host.become else list(command)
    argv = [
        "ssh", "-t" if tty else "-T", "-x",
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        "-o", f"ServerAliveInterval={KEEPALIVE_INTERVAL_S}",
        "-o", f"ServerAliveCountMax={KEEPALIVE_COUNT}",
        "-p", str(host.port),
    ]  # fmt: skip
    if not _proxied(host.ssh_args):
        # Our own connection, without Nagle's delays (drills.hosts.connect says why).
        connect = shlex.join([sys.executable, "-m", "drills.hosts.connect"])
        argv += ["-o", "ProxyUseFdpass=yes", "-o", f"ProxyCommand={connect} %h %p"]
    if host.key_file:
        argv += ["-i", host.key_file]
    if host.user:
        argv += ["-l", host.user]
    argv += list(host.ssh_args)
    return [*argv, "--", host.address, shlex.join(remote)]


# What sudo (or Ansible, or the shell when sudo is missing) says when it will not run as root.
_SUDO_NEEDS_PASSWORD = (
    "a password is required",
    "a terminal is required",
    "is not in the sudoers file",
    "may not run sudo",
    "Missing sudo password",  # Ansible's words for the same
    "Incorrect sudo password",
)
_SUDO_MISSING = ("sudo: not found", "sudo: command not found")


def sudo_refusal(reason: str) -> str:
    """Whether `reason` (an error, a command's last lines) shows sudo asking for a password
    ("password"), sudo missing ("missing"), or neither ("")."""
    if any(words in reason for words in _SUDO_MISSING):
        return "missing"
    if any(words in reason for words in _SUDO_NEEDS_PASSWORD):
        return "password"
    return ""


def sudo_advice(host: Host, reason: str) -> str:
    """What to do when the agent (or a command) on `host` did not start and `reason` (its exit
    status and last log lines, which carry sudo's own words) shows sudo refused or is missing;
    "" when the host does not become root through sudo or the reason is something else."""
    if not host.become:
        return ""
    user = host.user or "the login user"
    refusal = sudo_refusal(reason)
    if refusal == "missing":
        return (
            f"host {host.name} has no sudo, which ansible_become=true needs: install it there (apt-get install sudo), "
            "or log in as root (ansible_user=root, no ansible_become)"
        )
    if refusal == "password":
        return (
            f"on host {host.name}, sudo asks {user} for a password, and drills runs unattended (sudo -n): "
            f"give {user} passwordless sudo there (a line `{host.user or 'USER'} ALL=(ALL) NOPASSWD: ALL` in "
            "/etc/sudoers.d/), or log in as root (ansible_user=root, no ansible_become)"
        )
    return ""


@contextmanager
def sudo_advised(host: Host) -> Iterator[None]:
    """Around starting `host`'s agent and its first call: a BackendError whose reason shows sudo
    refused, or is missing, is raised again with what to do (`sudo_advice`)."""
    try:
        yield
    except BackendError as exc:
        advice = sudo_advice(host, str(exc))
        if not advice:
            raise
        raise BackendError(f"{exc}; {advice}") from None


def _proxied(ssh_args: tuple[str, ...]) -> bool:
    """Whether the inventory's SSH arguments reach the host their own way (a proxy or a jump)."""
    text = " ".join(ssh_args).lower()
    return "proxycommand" in text or "proxyjump" in text or "-j" in ssh_args

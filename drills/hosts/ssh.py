"""How the controller starts a host's agent: the command line, built from the inventory's own
variables (the same ones Ansible reads), so one inventory reaches a host for both."""

from __future__ import annotations

import shlex
import sys

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


def _proxied(ssh_args: tuple[str, ...]) -> bool:
    """Whether the inventory's SSH arguments reach the host their own way (a proxy or a jump)."""
    text = " ".join(ssh_args).lower()
    return "proxycommand" in text or "proxyjump" in text or "-j" in ssh_args

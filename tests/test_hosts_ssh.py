"""How the controller reaches a host's agent: the ssh command line built from the inventory's
own variables, over drills' Nagle-free connection unless the inventory names its own proxy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drills.errors import BackendError
from drills.hosts.records import Host
from drills.hosts.ssh import agent_argv, remote_argv, sudo_advice, sudo_advised


def test_a_plain_host_gets_drills_connector_and_its_inventory_options() -> None:
    host = Host("h2", "203.0.113.7", port=2222, user="ops", key_file="/keys/id", become=True, venv="/srv/drills")
    argv = agent_argv(host)
    assert argv[:2] == ["ssh", "-T"] and "BatchMode=yes" in argv
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "ops" and argv[argv.index("-i") + 1] == "/keys/id"
    assert "ProxyUseFdpass=yes" in argv
    proxy = next(a for a in argv if a.startswith("ProxyCommand="))
    assert proxy.endswith("-m drills.hosts.connect %h %p") and sys.executable in proxy
    assert argv[-3:] == ["--", "203.0.113.7", "sudo -n -- /srv/drills/bin/drill agent"]


def test_an_inventory_proxy_is_left_as_given() -> None:
    host = Host("h1", "198.19.254.11", ssh_args=("-o", "ProxyJump=bastion"))
    argv = remote_argv(host, ["ip", "netns", "exec", "drill-x-a", "true"], tty=True)
    assert "-t" in argv and "ProxyUseFdpass=yes" not in argv and "ProxyJump=bastion" in argv
    assert argv[-1] == "ip netns exec drill-x-a true"


def test_the_local_host_runs_this_interpreters_agent() -> None:
    assert agent_argv(Host("me", "127.0.0.1", local=True)) == [sys.executable, "-m", "drills", "agent"]


def test_the_connector_refuses_bad_arguments_and_names_an_unreachable_port() -> None:
    usage = subprocess.run([sys.executable, "-m", "drills.hosts.connect", "h"], capture_output=True, text=True, timeout=60, check=False)
    assert usage.returncode == 2 and "usage" in usage.stderr
    # Port 1 on the loopback: nothing listens there, the connection is refused at once.
    refused = subprocess.run(
        [sys.executable, "-m", "drills.hosts.connect", "127.0.0.1", "1"], capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 255 and "connect to 127.0.0.1 port 1" in refused.stderr


# The reasons as the agent's client reports them: its exit status and the last lines it wrote.
REFUSED = "h2: the agent's channel was lost during hello (the agent exited with status 1: sudo: a password is required)"
MISSING = "h2: the agent's channel was lost during hello (the agent exited with status 127: sh: 1: sudo: not found)"


def test_sudo_refusing_or_missing_is_explained_naming_the_host_and_the_user() -> None:
    host = Host("h2", "198.19.254.12", user="drill", become=True)
    refused = sudo_advice(host, REFUSED)
    assert "on host h2, sudo asks drill for a password" in refused
    assert "`drill ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/" in refused and "ansible_user=root" in refused
    assert "host h2 has no sudo" in sudo_advice(host, MISSING) and "apt-get install sudo" in sudo_advice(host, MISSING)
    # Nothing to say: another failure, or a host that does not become root through sudo.
    assert sudo_advice(host, "h2: connect to 198.19.254.12 port 22: No route to host") == ""
    assert sudo_advice(Host("h2", "198.19.254.12", user="drill"), REFUSED) == ""


def test_sudo_advised_adds_the_advice_to_the_error_and_leaves_others_alone() -> None:
    host = Host("h2", "198.19.254.12", user="drill", become=True)
    with pytest.raises(BackendError) as caught, sudo_advised(host):
        raise BackendError(REFUSED)
    assert str(caught.value).startswith(REFUSED + "; on host h2, sudo asks drill for a password")
    other = BackendError("h2: no answer to hello within 60 s")
    with pytest.raises(BackendError) as caught, sudo_advised(host):
        raise other
    assert caught.value is other

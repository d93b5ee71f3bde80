"""The several-machines lane, for real: three SSH hosts (containers running sshd) provisioned by
Ansible through ansible-runner (drills/hosts/ansible_edge.py, provision.py, ansible/).

The session's `lane` fixture (tests/lane_testing.py) brings the hosts up and runs `prepare` once;
these tests check what it did, run the playbooks again, and make Ansible fail on purpose. Each
leaves every host as it was (`lane.leftovers`) and this machine too (`host_snapshot`: no ssh
master or ProxyCommand of a playbook outlives it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from lane_testing import Lane, LaneSetupError, bring_up, new_lane, prerequisites, tear_down

import drills
from drills.errors import ExitCode, HostError
from drills.hosts import ansible_edge, provision
from drills.hosts.records import AGENT_VENV

pytestmark = [pytest.mark.netns, pytest.mark.docker]


def test_every_host_answers_ssh_on_its_underlay_address(lane: Lane, host_snapshot: Any) -> None:
    for host in lane.hosts:
        done = lane.ssh(host.name, "hostname; ip -o -4 addr show dev ul0")
        assert done.returncode == 0, f"{host.name}: {done.stderr}"
        name, address_line = done.stdout.splitlines()
        assert name == host.name
        assert f" {host.address}/24 " in address_line


def test_prepare_installed_this_drills_on_every_host(lane: Lane, host_snapshot: Any) -> None:
    for host in lane.hosts:
        done = lane.ssh(host.name, f"{AGENT_VENV}/bin/drill --version")
        assert done.returncode == 0, f"{host.name}: {done.stderr}"
        assert done.stdout.strip() == f"drills {drills.__version__}"
    # Progress came as "host: task outcome" lines, one per task and host.
    for host in lane.hosts:
        assert f"{host.name}: check host ok" in lane.prepare_log
        assert any(line.startswith(f"{host.name}: install drills ") for line in lane.prepare_log)
        assert f"{host.name}: verify drill --version ok" in lane.prepare_log


def test_prepare_again_installs_nothing_and_leaves_hosts_as_they_were(lane: Lane, host_snapshot: Any) -> None:
    assert lane.state_dir is not None
    before = lane.snapshots()
    lines: list[str] = []
    prepared = provision.prepare(lane.inventory, progress=lines.append, state_dir=lane.state_dir)
    assert set(prepared.hosts) == {"h1", "h2", "h3"}
    assert prepared.version == drills.__version__
    # The same wheels (the same sources): the install task finds them installed already.
    assert {f"{h}: {task} ok" for h in ("h1", "h2", "h3") for task in ("copy wheels", "install drills")} <= set(lines), lines
    assert lane.all_leftovers(before) == []


def test_clean_runs_drill_clean_on_every_host(lane: Lane, host_snapshot: Any) -> None:
    before = lane.snapshots()
    lines: list[str] = []
    removed = provision.clean(lane.inventory, progress=lines.append, all_runs=True)
    assert set(removed) == {"h1", "h2", "h3"}
    for host in ("h1", "h2", "h3"):
        assert any(line in (f"{host}: drill clean ok", f"{host}: drill clean changed") for line in lines), lines
    assert lane.all_leftovers(before) == []


def test_clean_removes_a_testbed_a_host_left_up(lane: Lane, host_snapshot: Any) -> None:
    before = lane.snapshot("h2")
    scenario = (Path(__file__).resolve().parent.parent / "scenarios" / "quickstart-fibre-cut.yaml").read_text()
    up = lane.ssh("h2", f"cat > /tmp/lane-up.yaml <<'EOF'\n{scenario}\nEOF\n{AGENT_VENV}/bin/drill up /tmp/lane-up.yaml", timeout_s=120)
    assert up.returncode == 0, up.stderr
    assert any(item.startswith("namespace drill-") for item in lane.snapshot("h2") - before)
    removed = provision.clean(lane.inventory, ["h2"], all_runs=True)
    assert list(removed) == ["h2"]
    assert removed["h2"].strip(), "drill clean said nothing about the testbed it removed"
    lane.ssh("h2", "rm -f /tmp/lane-up.yaml")
    assert lane.leftovers("h2", before) == []


def _failing_playbook(directory: Path) -> Path:
    path = directory / "refuse.yml"
    path.write_text(
        "- hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: reserve disk\n"
        "      ansible.builtin.command: sh -c 'echo no space left on /opt >&2; exit 3'\n"
        "      when: inventory_hostname == 'h2'\n"
        "    - name: after\n"
        "      ansible.builtin.command: 'true'\n"
        "      changed_when: false\n"
    )
    return path


def test_a_task_failing_on_one_host_names_that_host_and_task(lane: Lane, tmp_path: Path, host_snapshot: Any) -> None:
    lines: list[str] = []
    with pytest.raises(HostError) as caught:
        ansible_edge.run_playbook(_failing_playbook(tmp_path), lane.inventory, progress=lines.append, timeout_s=300)
    error = caught.value
    assert error.hosts == ("h2",)
    assert error.exit_code == ExitCode.ENVIRONMENT
    message = str(error)
    assert "refuse.yml failed on 1 host (h2)" in message
    assert "h2: task `reserve disk` failed:" in message
    assert "no space left on /opt" in message
    assert "h1" not in message and "h3" not in message
    assert "h2: reserve disk failed: " in "\n".join(lines)
    assert {"h1: after ok", "h3: after ok"} <= set(lines)


def test_a_host_without_the_controllers_python_is_refused_before_anything_is_installed(lane: Lane, tmp_path: Path, host_snapshot: Any) -> None:
    before = lane.snapshot("h1")
    extravars = {
        "drills_version": drills.__version__,
        "drills_python_version": "3.99",
        "drills_arch": "x86_64",
        "drills_wheels_local": str(tmp_path / "never-copied.tar"),
    }
    with pytest.raises(HostError) as caught:
        ansible_edge.run_playbook(provision.playbook("prepare"), lane.inventory, limit=["h1"], extravars=extravars, timeout_s=300)
    message = str(caught.value)
    assert caught.value.hosts == ("h1",)
    assert "h1: task `check host` failed:" in message
    assert "no python3.99" in message
    assert lane.leftovers("h1", before) == []


def test_an_unreachable_host_is_named_as_such(lane: Lane, tmp_path: Path, host_snapshot: Any) -> None:
    # 198.19.254.99 is on the underlay but nothing has it: the connection fails (no ARP answer)
    # within ssh's ConnectTimeout, and the run's own timeout bounds it anyway.
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(lane.inventory.read_text() + lane.inventory_line("h9", "198.19.254.99") + "\n")
    with pytest.raises(HostError) as caught:
        provision.clean(inventory, ["h9"], timeout_s=120)
    message = str(caught.value)
    assert caught.value.hosts == ("h9",)
    assert "failed on 1 host (h9)" in message
    assert "h9: unreachable:" in message


def test_a_lane_that_cannot_start_says_which_step_and_host(tmp_path: Path, host_snapshot: Any) -> None:
    client = prerequisites()
    lane = new_lane(tmp_path / "lane")
    lane.directory.mkdir()
    try:
        with pytest.raises(LaneSetupError, match=r"lane \w+: start the container of h1: .*drills-host:no-such-tag"):
            bring_up(client, "drills-host:no-such-tag", lane)
    finally:
        assert tear_down(client, lane) == []
        client.close()
    assert not (Path("/run/netns") / lane.underlay_ns).exists()


def test_a_long_lived_channel_echoes_and_its_far_end_ends_with_it(lane: Lane, host_snapshot: Any) -> None:
    """What the agent relies on: one ssh channel carries lines both ways, and when the
    controller's ssh dies (SIGKILL) the process on the host sees end of input and is gone."""
    before = lane.snapshot("h3")
    channel = subprocess.Popen(lane.ssh_argv("h3", "cat"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert channel.stdin is not None and channel.stdout is not None
        for n in range(3):
            channel.stdin.write(f"ping {n}\n")
            channel.stdin.flush()
            assert channel.stdout.readline() == f"ping {n}\n"
        assert "process cat" in lane.snapshot("h3")
    finally:
        channel.kill()
        channel.wait(timeout=10)
    assert lane.leftovers("h3", before) == []

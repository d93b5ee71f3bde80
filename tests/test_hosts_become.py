"""`ansible_become=true` on the lane: host h2 reached as the ordinary user `drill`, who becomes
root through passwordless sudo (testbed/images/drills-host.yaml), beside h1 reached as root.

Ansible's playbooks become root through the inventory's own variable; drills starts the agent
(and `drill exec`) through `sudo -n`. Checked: `drill hosts prepare` installs drills on h2 as
root; without become the check names h2 and says to set it; a drill with a cross link between h1
and h2 runs and leaves both hosts as they were; `drill up`, `exec` on h2 and `down` work through
sudo; `drill doctor --inventory` finds h2 fit; and a sudo that asks for a password, or is
missing, is reported naming h2 and saying what to do, before anything is deployed anywhere.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from lane_testing import SUDO_USER, Lane

from drills import spread
from drills.errors import BackendError, HostError
from drills.hosts import provision
from drills.hosts.records import AGENT_VENV
from drills.lifecycle import run as run_drill

pytestmark = [pytest.mark.netns, pytest.mark.docker]

SUDOERS = f"/etc/sudoers.d/{SUDO_USER}"
# Outside /etc/sudoers.d: sudo would still read a file there whose name has no dot.
SUDOERS_ASIDE = f"/root/sudoers-{SUDO_USER}.aside"

CUT = """
version: 1
name: become-cut
seed: 7
topology:
  nodes:
    a: {host: h1, routes: [{to: b, via: b:e1}]}
    b: {host: h2, routes: [{to: a, via: a:e1}]}
  links:
    - {name: ab, endpoints: [a:e1, b:e1]}
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 1000}
timeline:
  - {id: cut, at: 2s, fault: link-down, link: ab, for: 1s}
duration: 4s
"""


def _inventory(lane: Lane, tmp_path: Path, *, become: bool = True) -> Path:
    """h1 as root, h2 as `drill` (becoming root through sudo when `become`)."""
    path = tmp_path / "become.ini"
    h1, h2 = lane.host("h1"), lane.host("h2")
    path.write_text(
        "[lane]\n"
        + lane.inventory_line("h1", h1.address)
        + "\n"
        + lane.inventory_line("h2", h2.address, user=SUDO_USER, become=become)
        + "\n"
    )
    return path


@contextmanager
def _sudo_asks_for_a_password(lane: Lane) -> Iterator[None]:
    """h2's passwordless rule set aside (sudo then asks `drill` for a password), then restored."""
    moved = lane.ssh("h2", f"mv {SUDOERS} {SUDOERS_ASIDE}")
    assert moved.returncode == 0, moved.stderr
    try:
        yield
    finally:
        restored = lane.ssh("h2", f"mv {SUDOERS_ASIDE} {SUDOERS}")
        assert restored.returncode == 0, restored.stderr


def test_the_lane_user_logs_in_and_sudo_needs_no_password(lane: Lane, tmp_path: Path, host_snapshot: Any) -> None:
    done = lane.ssh("h2", f"su -s /bin/sh -c 'sudo -n id -u' {SUDO_USER}")
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stdout + done.stderr


def test_hosts_prepare_installs_drills_through_sudo(lane: Lane, tmp_path: Path, host_snapshot: Any) -> None:
    assert lane.state_dir is not None
    before = lane.snapshot("h2")
    # Without the stamp of the installed wheels, prepare installs again: as root, through sudo.
    assert lane.ssh("h2", f"rm -f {AGENT_VENV}/.drills-wheels.sha256").returncode == 0
    inventory = _inventory(lane, tmp_path)
    # The lane's state directory: the wheels the session's prepare built are reused.
    argv = [sys.executable, "-m", "drills", "--state-dir", str(lane.state_dir), "hosts", "prepare"]
    argv += ["--inventory", str(inventory), "--limit", "h2"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "h2: check host ok" in output and "h2: install drills changed" in output, output
    owner = lane.ssh("h2", f"stat -c %U {AGENT_VENV}/.drills-wheels.sha256 {AGENT_VENV}/bin/drill")
    assert owner.stdout.split() == ["root", "root"], owner.stdout + owner.stderr
    assert lane.leftovers("h2", before) == []


def test_without_become_prepare_names_the_host_and_says_to_set_it(lane: Lane, tmp_path: Path, host_snapshot: Any) -> None:
    assert lane.state_dir is not None
    with pytest.raises(HostError) as caught:
        provision.prepare(_inventory(lane, tmp_path, become=False), ["h2"], state_dir=lane.state_dir, timeout_s=300)
    assert caught.value.hosts == ("h2",)
    message = str(caught.value)
    assert "h2: task `check host` failed:" in message
    assert "not root" in message and "ansible_become=true" in message


def test_a_drill_across_a_become_host_runs_and_leaves_it_clean(tmp_path: Path, state_dir: Path, lane: Lane) -> None:
    before = {name: lane.snapshot(name) for name in ("h1", "h2")}
    path = tmp_path / "scenario.yaml"
    path.write_text(CUT)
    result = run_drill(path, state_dir, log=lambda _m: None, inventory=_inventory(lane, tmp_path))
    apply, revert = (s for s in result.steps if s.label == "cut")
    cut = next(m for m in result.metrics if m.kind == "apply")
    # The cut's outage is loss-derived (no clock involved): the span between the steps issued,
    # within the accuracy the drill states (as tests/test_hosts_drills.py's two-second cut).
    span_s = revert.issued_s - apply.issued_s
    assert abs(cut.outage_s - span_s) <= cut.accuracy_s, (cut.outage_s, span_s, cut.accuracy_s)
    assert not result.inconclusive
    assert {h["host"] for h in result.hosts} == {"h1", "h2"}
    for name, was in before.items():
        assert lane.leftovers(name, was) == []
    assert not any(state_dir.glob("runs/*"))


def test_up_exec_and_down_on_a_become_host(tmp_path: Path, lane: Lane, drill: Any) -> None:
    """`drill exec` runs through `sudo -n` too, and `drill down` tears h2's part down through a
    fresh agent started through sudo (the run's journal names the host)."""
    before = {name: lane.snapshot(name) for name in ("h1", "h2")}
    path = tmp_path / "scenario.yaml"
    path.write_text(CUT)
    up = drill("up", str(path), "--inventory", str(_inventory(lane, tmp_path)), timeout_s=180)
    try:
        assert up.returncode == 0, up.stderr
        inside = drill("exec", "b", "--", "ip", "-o", "link", "show", "e1", timeout_s=60)
        assert inside.returncode == 0 and "mtu 1450" in inside.stdout, inside.stdout + inside.stderr
        assert lane.leftovers("h2", before["h2"]), "h2's part did not stay up"
    finally:
        down = drill("down", timeout_s=180)
    assert down.returncode == 0, down.stderr
    for name, was in before.items():
        assert lane.leftovers(name, was) == []


def test_doctor_finds_the_become_host_fit(tmp_path: Path, lane: Lane, drill: Any) -> None:
    done = drill("doctor", "--inventory", str(_inventory(lane, tmp_path)), timeout_s=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"h2: ssh {SUDO_USER}@{lane.host('h2').address}:22 with sudo" in done.stdout, done.stdout
    assert "  h2: ok" in done.stdout, done.stdout


def test_sudo_asking_for_a_password_is_named_with_what_to_do(tmp_path: Path, state_dir: Path, lane: Lane) -> None:
    before = {name: lane.snapshot(name) for name in ("h1", "h2")}
    path = tmp_path / "scenario.yaml"
    path.write_text(CUT)
    inventory = _inventory(lane, tmp_path)
    with _sudo_asks_for_a_password(lane):
        checked = spread.check_hosts(inventory, lambda _m: None)
        with pytest.raises(BackendError) as raised:
            run_drill(path, state_dir, log=lambda _m: None, inventory=inventory)
        # Ansible's become meets the same refusal: named, with the same advice.
        with pytest.raises(HostError) as cleaning:
            provision.clean(inventory, ["h2"], timeout_s=120)
    assert cleaning.value.hosts == ("h2",)
    assert "h2: task `drill clean` failed:" in str(cleaning.value) and "passwordless sudo" in str(cleaning.value)
    assert isinstance(checked["h1"], dict)
    found = checked["h2"]
    assert isinstance(found, str)
    for message in (found, str(raised.value)):
        assert "sudo: a password is required" in message, message
        assert f"on host h2, sudo asks {SUDO_USER} for a password" in message, message
        assert f"`{SUDO_USER} ALL=(ALL) NOPASSWD: ALL`" in message, message
    assert "before anything was deployed" in str(raised.value)
    for name, was in before.items():
        assert lane.leftovers(name, was) == []
    assert not any(state_dir.glob("runs/*"))


def test_sudo_missing_is_named_with_what_to_do(tmp_path: Path, lane: Lane) -> None:
    inventory = _inventory(lane, tmp_path)
    hidden = lane.ssh("h2", "mv /usr/bin/sudo /usr/bin/sudo.hidden")
    assert hidden.returncode == 0, hidden.stderr
    try:
        checked = spread.check_hosts(inventory, lambda _m: None)
    finally:
        restored = lane.ssh("h2", "mv /usr/bin/sudo.hidden /usr/bin/sudo")
        assert restored.returncode == 0, restored.stderr
    found = checked["h2"]
    assert isinstance(found, str) and "sudo: not found" in found, found
    assert "host h2 has no sudo, which ansible_become=true needs: install it there" in found, found
    assert isinstance(checked["h1"], dict)

"""The several-machines test lane: three SSH hosts on this machine, provisioned with Ansible.

Each host is a container of the `drills-host` image (testbed/images/drills-host.yaml: Debian,
sshd, python3) with no network of Docker's. The test makes the underlay itself: a namespace
`drill-lane-<id>` holding a bridge (198.19.254.1/24) and one veth per host, whose far end is
the host's `ul0` (198.19.254.11, .12, .13). An ed25519 key made here is each host's root key,
and the key of its user `drill`, who becomes root through passwordless sudo (ansible_become).
The controller's SSH reaches the hosts through the underlay namespace with an ordinary inventory
option (a ProxyCommand running drills' connector in it), so nothing touches the machine's root namespace.

Not a conftest: test modules import it (`from lane_testing import lane_fixture`, used as
`lane`). The fixture is session-scoped and runs `drills.hosts.provision.prepare` once: every
host has this drills in /opt/drills/venv. Without root, Docker, the image or ssh it skips
(under CI=true it fails). A setup failure names the step and the host; every wait is bounded.

Containers carry the label `drills.lane=<id>` (and `drills.lane.pid`, the pytest process): a
lane left by a killed session is removed by the next one whose creator is gone.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from docker_testing import unavailable

LANE_LABEL = "drills.lane"
LANE_PID_LABEL = "drills.lane.pid"
HOST_IMAGE_NAME = "drills-host"
UNDERLAY_NETWORK = "198.19.254"
BRIDGE_ADDRESS = f"{UNDERLAY_NETWORK}.1"
# A chain a-b-c over the three hosts whose cross-host link ab is cut for exactly 2 s, a
# 1000 pps stream across it (tests/test_hosts_drills.py, and bench/hosts.py runs it whole).
CHAIN = """
version: 1
name: three-hosts-cut
seed: 3
topology:
  nodes:
    a: {host: h1, routes: [{to: c, via: b:e1}, {to: b, via: b:e1}]}
    b: {host: h2, routes: [{to: a, via: a:e1}, {to: c, via: c:e2}]}
    c: {host: h3, routes: [{to: a, via: b:e2}, {to: b, via: b:e2}]}
  links:
    - {name: ab, endpoints: [a:e1, b:e1]}
    - {name: bc, endpoints: [b:e2, c:e2]}
probes:
  - {name: stream, type: udp-stream, from: a, to: c, rate_pps: 1000}
timeline:
  - {id: cut, at: 2s, fault: link-down, link: ab, for: 2s}
expect:
  - {probe: stream, step: cut, max_recovery: 3s}
duration: 6s
"""

HOST_NAMES = ("h1", "h2", "h3")
SUDO_USER = "drill"  # the image's user with passwordless sudo (testbed/images/drills-host.yaml)
UNDERLAY_IFACE = "ul0"
NS_PREFIX = "drill-lane-"
STEP_TIMEOUT_S = 30.0
SSH_READY_TIMEOUT_S = 30.0
PREPARE_TIMEOUT_S = 300.0  # about 30 s on a busy 2-core machine
LANE_STATE_DIR = Path(tempfile.gettempdir()) / "drills-lane-state"
SETTLE_S = 3.0  # leftovers: how long a host may take to finish removing things
# privileged=True fails on this kind of machine (its capability bounding set lacks
# CAP_SYS_RESOURCE, and Docker asks for every capability): these are what a host needs for
# namespaces, links, qdiscs and nftables, with /proc/sys writable (systempaths) for sysctls.
HOST_CAPS = ("NET_ADMIN", "SYS_ADMIN", "NET_RAW", "SYS_PTRACE", "IPC_LOCK", "SYS_NICE", "NET_BROADCAST")
HOST_SECURITY = ("seccomp=unconfined", "apparmor=unconfined")
# Processes every host has (sshd and its sessions) or that the snapshot itself runs.
QUIET_PROCESSES = {"sshd", "sleep", "ps", "drills-host-sta"}


class LaneSetupError(Exception):
    """A step of bringing the lane up failed: which step, on which host, and why."""


def _unavailable(reason: str) -> None:
    unavailable(reason, "the several-machines lane")


def _run(argv: list[str], what: str, timeout_s: float = STEP_TIMEOUT_S, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False, **kwargs)
    except subprocess.TimeoutExpired:
        raise LaneSetupError(f"{what}: `{shlex.join(argv)}` still running after {timeout_s:g} s") from None
    except OSError as exc:
        raise LaneSetupError(f"{what}: cannot run {argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise LaneSetupError(f"{what}: `{shlex.join(argv)}` failed (exit {done.returncode}): {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class LaneHost:
    name: str  # the inventory name: h1, h2, h3
    container: str
    address: str  # on the underlay (ul0), also ansible_host and drills_underlay
    pid: int  # the container's main process on this machine (its namespaces)


@dataclass
class Lane:
    """Three SSH hosts and the inventory that reaches them."""

    id: str
    directory: Path  # private: the key, known_hosts, the inventory
    underlay_ns: str
    hosts: tuple[LaneHost, ...] = ()
    prepare_log: list[str] = field(default_factory=list)  # the progress lines of the session's prepare
    state_dir: Path | None = None  # the controller's state directory of that prepare (its wheels)

    @property
    def key_file(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.directory / "inventory.ini"

    def host(self, name: str) -> LaneHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @property
    def proxy_command(self) -> str:
        """SSH reaches the hosts from the lane's underlay namespace: drills' own connector (a
        socket without Nagle, handed to ssh) started inside it, the connection born there."""
        return f"ip netns exec {self.underlay_ns} {sys.executable} -m drills.hosts.connect %h %p"

    def ssh_options(self) -> list[str]:
        """The options the inventory gives Ansible, for ssh itself."""
        return [
            "-o", f"ProxyCommand={self.proxy_command}",
            "-o", "ProxyUseFdpass=yes",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
        ]  # fmt: skip

    def inventory_line(self, name: str, address: str, *, user: str = "root", become: bool = False) -> str:
        """A host line of the inventory (also for a host that does not exist, in tests): root's
        login, or `user`'s, becoming root through sudo with `become`."""
        common = (
            f'-o ProxyCommand="{self.proxy_command}" -o ProxyUseFdpass=yes '
            f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={self.known_hosts}"
        )
        return (
            f"{name} ansible_host={address} ansible_user={user} ansible_ssh_private_key_file={self.key_file} "
            f"drills_underlay={address} ansible_ssh_common_args='{common}'" + (" ansible_become=true" if become else "")
        )

    def ssh_argv(self, host: str, command: str) -> list[str]:
        """The ssh command line that runs `command` on `host` (for a long-lived process: Popen)."""
        argv = ["ssh", "-i", str(self.key_file), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
        return [*argv, "-o", "ConnectTimeout=10", *self.ssh_options(), f"root@{self.host(host).address}", command]

    def ssh(self, host: str, command: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a shell command on `host` over real SSH (the inventory's options); never raises
        for the command's exit status."""
        argv = self.ssh_argv(host, command)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)

    def _inside(self, host: LaneHost, *argv: str) -> str:
        """A command in the host's own namespaces (mount, net, pid): read by the test, not
        through the SSH it is testing."""
        enter = ["nsenter", "-t", str(host.pid), "-m", "-n", "-p", "-u", "-i", "--", *argv]
        return _run(enter, f"look inside {host.name}").stdout

    def snapshot(self, host: str) -> set[str]:
        """What a drill could leave on `host`: its namespaces, interfaces, qdiscs, nftables
        tables and processes (other than sshd and sleep), one string each."""
        target = self.host(host)
        found = {f"namespace {line.split()[0]}" for line in self._inside(target, "ip", "netns", "list").splitlines() if line.strip()}
        for line in self._inside(target, "ip", "-o", "link").splitlines():
            if line.strip():
                found.add("interface " + line.split(":")[1].strip().split("@")[0])
        found |= {f"qdisc {line.strip()}" for line in self._inside(target, "tc", "qdisc", "show").splitlines() if line.strip()}
        found |= {f"nftables {line.strip()}" for line in self._inside(target, "nft", "list", "tables").splitlines() if line.strip()}
        for line in self._inside(target, "ps", "-e", "-o", "comm=,args=").splitlines():
            comm, _, args = line.strip().partition(" ")
            if comm and comm not in QUIET_PROCESSES:
                found.add(f"process {args.strip()}")
        return found

    def snapshots(self) -> dict[str, set[str]]:
        return {host.name: self.snapshot(host.name) for host in self.hosts}

    def leftovers(self, host: str, before: set[str]) -> list[str]:
        """What `host` has now and had not in `before` (and what went missing), waiting up to
        SETTLE_S for things being removed; empty when it is as it was."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            now = self.snapshot(host)
            problems = [f"{host}: left {item}" for item in sorted(now - before)]
            problems += [f"{host}: lost {item}" for item in sorted(before - now)]
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.2)

    def all_leftovers(self, before: dict[str, set[str]]) -> list[str]:
        return [problem for host in self.hosts for problem in self.leftovers(host.name, before[host.name])]


# --------------------------------------------------------------------------- bringing it up


def _step(lane_id: str, what: str) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def wrapped() -> Iterator[None]:
        try:
            yield
        except LaneSetupError as exc:
            raise LaneSetupError(f"lane {lane_id}: {what}: {exc}") from None
        except Exception as exc:  # Docker's and the OS's errors: say where they happened
            raise LaneSetupError(f"lane {lane_id}: {what}: {type(exc).__name__}: {exc}") from None

    return wrapped()


def _remove_stale(client: Any) -> None:
    """Lanes whose pytest process is gone (a killed session): their containers and namespace."""
    for container in client.containers.list(all=True, filters={"label": LANE_LABEL}):
        pid = container.labels.get(LANE_PID_LABEL, "")
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue  # a lane of a live session (maybe another one's): not ours to touch
        lane_id = container.labels.get(LANE_LABEL, "")
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)
        if lane_id and (Path("/run/netns") / f"{NS_PREFIX}{lane_id}").exists():
            subprocess.run(["ip", "netns", "del", f"{NS_PREFIX}{lane_id}"], capture_output=True, timeout=STEP_TIMEOUT_S, check=False)


def _start_host(client: Any, lane: Lane, index: int, image: str) -> LaneHost:
    name = HOST_NAMES[index]
    address = f"{UNDERLAY_NETWORK}.{11 + index}"
    container_name = f"drills-lane-{lane.id}-{name}"
    devices = ["/dev/net/tun:/dev/net/tun:rwm"] if Path("/dev/net/tun").exists() else []
    with _step(lane.id, f"start the container of {name}"):
        host_config = client.api.create_host_config(
            network_mode="none", cap_add=list(HOST_CAPS), security_opt=list(HOST_SECURITY), devices=devices
        )
        # `--security-opt systempaths=unconfined` of docker's CLI: /proc/sys writable, nothing masked.
        host_config["MaskedPaths"] = []
        host_config["ReadonlyPaths"] = []
        created = client.api.create_container(
            image,
            name=container_name,
            hostname=name,
            host_config=host_config,
            labels={LANE_LABEL: lane.id, LANE_PID_LABEL: str(os.getpid())},
            detach=True,
            stop_signal="SIGKILL",
        )
        container = client.containers.get(created["Id"])
        container.start()
        container.reload()
        pid = int(container.attrs["State"]["Pid"] or 0)
        if not pid:
            raise LaneSetupError(f"container {container_name} is not running: {container.logs(tail=10).decode(errors='replace')}")
    host = LaneHost(name, container_name, address, pid)
    with _step(lane.id, f"wire {name}'s underlay ({UNDERLAY_IFACE} {address})"):
        bridge_end = f"ul-{name}"
        ns = lane.underlay_ns
        _run(["ip", "-n", ns, "link", "add", bridge_end, "type", "veth", "peer", "name", UNDERLAY_IFACE, "netns", str(pid)], "veth")
        _run(["ip", "-n", ns, "link", "set", bridge_end, "master", "br0", "up"], "attach to the bridge")
        inside = ["nsenter", "-t", str(pid), "-n", "--", "ip"]
        _run([*inside, "addr", "add", f"{address}/24", "dev", UNDERLAY_IFACE], "address")
        _run([*inside, "link", "set", UNDERLAY_IFACE, "up"], "link up")
        _run([*inside, "link", "set", "lo", "up"], "loopback up")
    # As on a real host: sudo looks its own host name up, and without this line warns on every
    # call (after a failed DNS lookup: the container has no network of Docker's).
    with _step(lane.id, f"name {name} in its /etc/hosts"), Path(f"/proc/{pid}/root/etc/hosts").open("a") as hosts:
        hosts.write(f"127.0.1.1 {name}\n")
    with _step(lane.id, f"authorise the lane's key on {name}, for root and {SUDO_USER}"):
        public = lane.key_file.with_suffix(".pub").read_text()
        for home in ("root", f"home/{SUDO_USER}"):
            # The image made each .ssh, owned by its user: the key file gets the same owner.
            ssh_dir = Path(f"/proc/{pid}/root/{home}/.ssh")
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            owner = ssh_dir.stat()
            keys = ssh_dir / "authorized_keys"
            keys.write_text(public)
            keys.chmod(0o600)
            os.chown(keys, owner.st_uid, owner.st_gid)
    return host


def _wait_for_ssh(lane: Lane, host: LaneHost) -> None:
    deadline = time.monotonic() + SSH_READY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        try:
            done = lane.ssh(host.name, "true", timeout_s=15)
        except subprocess.TimeoutExpired:
            last = "ssh did not finish within 15 s"
            continue
        if done.returncode == 0:
            return
        last = done.stderr.strip()
        time.sleep(0.2)
    raise LaneSetupError(f"lane {lane.id}: {host.name} ({host.address}) did not accept ssh within {SSH_READY_TIMEOUT_S:g} s: {last}")


def new_lane(directory: Path) -> Lane:
    lane_id = uuid.uuid4().hex[:8]
    return Lane(lane_id, directory, f"{NS_PREFIX}{lane_id}")


def bring_up(client: Any, image: str, lane: Lane) -> None:
    """Create the underlay, the three hosts and the inventory. On failure, raises
    `LaneSetupError` (what was made is left for `tear_down`, which the caller always runs)."""
    lane_id = lane.id
    with _step(lane_id, "make the lane's ssh key"):
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"drills-lane-{lane_id}", "-f", str(lane.key_file)], "ssh-keygen")
    with _step(lane_id, f"make the underlay namespace {lane.underlay_ns} and bridge {BRIDGE_ADDRESS}/24"):
        _run(["ip", "netns", "add", lane.underlay_ns], "namespace")
        ns = ["ip", "-n", lane.underlay_ns]
        _run([*ns, "link", "add", "br0", "type", "bridge"], "bridge")
        _run([*ns, "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", "br0"], "address")
        _run([*ns, "link", "set", "br0", "up"], "bridge up")
        _run([*ns, "link", "set", "lo", "up"], "loopback up")
    hosts = []
    for index in range(len(HOST_NAMES)):
        hosts.append(_start_host(client, lane, index, image))
        lane.hosts = tuple(hosts)
    lane.inventory.write_text(
        "# The several-machines test lane (tests/lane_testing.py)\n[lane]\n"
        + "".join(lane.inventory_line(h.name, h.address) + "\n" for h in lane.hosts)
    )
    for host in lane.hosts:
        _wait_for_ssh(lane, host)


def tear_down(client: Any, lane: Lane) -> list[str]:
    """Remove the lane's containers, namespace and files; returns what could not be removed."""
    problems = []
    for container in client.containers.list(all=True, filters={"label": f"{LANE_LABEL}={lane.id}"}):
        try:
            container.remove(force=True, v=True)
        except Exception as exc:
            problems.append(f"container {container.name}: {exc}")
    if (Path("/run/netns") / lane.underlay_ns).exists():
        done = subprocess.run(["ip", "netns", "del", lane.underlay_ns], capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False)
        if done.returncode != 0:
            problems.append(f"namespace {lane.underlay_ns}: {done.stderr.strip()}")
    shutil.rmtree(lane.directory, ignore_errors=True)
    return problems


def prerequisites() -> Any:
    """Docker's client with the host image built (or a skip/CI failure saying what is missing)."""
    if os.geteuid() != 0:
        _unavailable("needs root (namespaces, containers)")
    missing = [tool for tool in ("ssh", "ssh-keygen", "nsenter", "docker") if shutil.which(tool) is None]
    if missing:
        _unavailable(f"missing {', '.join(missing)}: ./dev setup installs openssh-client")
    try:
        import ansible_runner  # noqa: F401
        import docker
    except ImportError as exc:
        _unavailable(f"{exc.name} is not installed: pip install -e '.[docker,hosts]'")
    from drills.docker import images
    from drills.docker.api import Docker
    from drills.errors import DrillError

    try:
        engine = Docker.connect(timeout_s=20)
        images.ensure(HOST_IMAGE_NAME, engine, lambda _msg: None)
        engine.close()
    except DrillError as exc:
        _unavailable(f"no Docker engine or no {HOST_IMAGE_NAME} image: {exc}")
    return docker.from_env(timeout=60)


@pytest.fixture(scope="session", name="lane")
def lane_fixture() -> Iterator[Lane]:
    """Three SSH hosts reached through the lane's underlay, drills installed on each (prepare)."""
    client = prerequisites()
    from drills.docker import images
    from drills.errors import DrillError
    from drills.hosts import provision

    _remove_stale(client)
    image = images.load_definition(images.definition_path(HOST_IMAGE_NAME)).tag
    directory = Path(tempfile.mkdtemp(prefix="drills-lane-"))
    directory.chmod(0o700)
    lane = new_lane(directory)
    try:
        try:
            bring_up(client, image, lane)
        except LaneSetupError as exc:
            pytest.fail(str(exc), pytrace=False)
        # The controller's state directory for prepare holds only its wheels: kept across sessions
        # (a build costs a minute on a busy machine; the cache is keyed by the sources' digest).
        lane.state_dir = LANE_STATE_DIR
        LANE_STATE_DIR.mkdir(mode=0o700, exist_ok=True)
        try:
            provision.prepare(lane.inventory, progress=lane.prepare_log.append, state_dir=lane.state_dir, timeout_s=PREPARE_TIMEOUT_S)
        except DrillError as exc:
            pytest.fail(f"lane {lane.id}: prepare (ansible/prepare.yml) failed:\n{exc}", pytrace=False)
        yield lane
    finally:
        problems = tear_down(client, lane)
        client.close()
        if problems:
            raise LaneSetupError("the lane could not be removed: " + "; ".join(problems))

"""`drill doctor` against the real kernel: each verdict is checked against an independent
detection (iproute2's own tools in an `unshare -n` namespace), never against a hardcoded answer,
and the host must look exactly the same after the probes as before."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from drills import doctor
from drills.doctor import Check, capabilities, run_checks
from drills.netns import probe_caps

ROOT = os.geteuid() == 0
netns = pytest.mark.netns
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (creates network namespaces)")
REPO = Path(__file__).resolve().parent.parent

EXPECTED_NAMES = [
    "root privileges",
    "Python version",
    "network namespaces",
    "veth pairs",
    "netem qdisc",
    "tbf qdisc",
    "htb qdisc",
    "clsact/ingress qdisc",
    "IFB devices",
    "TUN/TAP",
    "nftables",
    "real-time probe threads",
    "iptables",
    "Docker engine",
    "Ansible",
    "Mininet",
    "FRR daemons",
    "keepalived",
]


@pytest.fixture(scope="module")
def checks() -> dict[str, Check]:
    return {check.name: check for check in run_checks(docker_timeout_s=0.5)}


def test_every_check_is_reported_once_in_order() -> None:
    names = [check.name for check in run_checks(docker_timeout_s=0.5)]
    assert names == EXPECTED_NAMES


def test_every_missing_capability_says_what_to_do(checks: dict[str, Check]) -> None:
    for check in checks.values():
        assert check.detail, check
        assert check.needed_for, check
        if check.ok:
            assert check.fix == "", check
        else:
            assert check.fix.strip(), f"{check.name} is missing but has no fix"


def test_capabilities_maps_each_check_to_its_verdict(checks: dict[str, Check]) -> None:
    found = capabilities()
    assert list(found) == EXPECTED_NAMES
    # Kernel verdicts are stable between two runs; Docker/Ansible could only change if someone
    # installed them in between, which is not this test's business.
    for name in ("network namespaces", "veth pairs", "netem qdisc", "tbf qdisc", "nftables"):
        assert found[name] == checks[name].ok
    assert found[doctor.NETEM] == checks["netem qdisc"].ok


def test_python_and_tools_agree_with_what_is_on_path(checks: dict[str, Check]) -> None:
    assert checks["Python version"].ok == (sys.version_info >= (3, 11))
    assert checks["iptables"].ok == (shutil.which("iptables") is not None)
    assert checks["Mininet"].ok == (shutil.which("mn") is not None)
    if shutil.which("ansible-playbook") is None:
        assert not checks["Ansible"].ok
    if shutil.which("nft") is None:
        assert not checks["nftables"].ok
        assert "nftables" in checks["nftables"].fix


def test_docker_verdict_matches_an_independent_ping(checks: dict[str, Check]) -> None:
    try:
        import docker
    except ImportError:
        assert not checks["Docker engine"].ok
        assert "pip install" in checks["Docker engine"].fix
        return
    try:
        client = docker.from_env(timeout=2)
        reachable = bool(client.ping())
        client.close()
    except Exception:
        reachable = False
    assert checks["Docker engine"].ok == reachable
    if not reachable:
        assert "dockerd" in checks["Docker engine"].fix


@netns
@needs_root
def test_namespaces_and_veth_work_here(checks: dict[str, Check]) -> None:
    assert checks["root privileges"].ok, checks["root privileges"]
    assert checks["network namespaces"].ok, checks["network namespaces"]
    assert checks["veth pairs"].ok, checks["veth pairs"]


def _tc_in_unshared_namespace(qdisc: str) -> subprocess.CompletedProcess[str]:
    script = f"ip link add name ref0 type veth peer name ref1 || exit 100; tc qdisc add dev ref0 root {qdisc}"
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=10, check=False
    )


@netns
@needs_root
@pytest.mark.parametrize(
    ("name", "qdisc"),
    [
        ("netem qdisc", "netem delay 1ms"),
        ("tbf qdisc", "tbf rate 1mbit burst 16k latency 50ms"),
        ("htb qdisc", "htb default 10"),
    ],
)
def test_qdisc_verdict_agrees_with_tc(checks: dict[str, Check], name: str, qdisc: str) -> None:
    if shutil.which("unshare") is None or shutil.which("tc") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare, ip and tc (util-linux, iproute2) for the independent check")
    done = _tc_in_unshared_namespace(qdisc)
    assert done.returncode != 100, f"veth failed in the reference namespace: {done.stderr}"
    kernel_has_it = done.returncode == 0
    check = checks[name]
    assert check.ok == kernel_has_it, (check, done.stderr)
    if not kernel_has_it:
        assert check.fix.strip()
        if "unknown" in done.stderr:  # tc: "Specified qdisc kind is unknown."
            assert "unknown" in check.detail


def _ns_inodes_in_use() -> frozenset[tuple[int, int]]:
    """The network namespaces any process or thread is in (what keeps a namespace alive,
    besides mounts in /run/netns and open descriptors)."""
    found: set[tuple[int, int]] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            tasks = list((proc / "task").iterdir())
        except OSError:
            continue
        for task in [proc, *tasks]:
            try:
                info = os.stat(task / "ns" / "net")
            except OSError:  # gone meanwhile, or not ours to look at
                continue
            found.add((info.st_dev, info.st_ino))
    return frozenset(found)


def _host_state() -> dict[str, object]:
    """What anyone on the machine can change (compared whole, when the machine is quiet)."""

    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout

    return {
        "ip -br link": out("ip", "-br", "link"),
        "ip netns list": out("ip", "netns", "list"),
        "netns inodes in use": _ns_inodes_in_use(),
    }


def _own_state() -> dict[str, object]:
    """What only this test process can change (compared on every run, noise or not)."""
    tasks = Path("/proc/self/task")
    children = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text() if proc.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat[stat.rindex(")") + 2 :].split()[1]) == os.getpid():
            children.append(proc.name)
    return {
        # A netlink socket or /dev/net/tun descriptor left open would pin the scratch namespace.
        "our open fds": sorted(os.listdir("/proc/self/fd")),
        # A thread or child process left in the scratch namespace would pin it too.
        "our threads' namespaces": {os.stat(task / "ns" / "net").st_ino for task in tasks.iterdir()},
        "our child processes": children,
    }


def _doctor_links_in_root_namespace() -> list[str]:
    listing = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[0].split("@")[0] for line in listing.splitlines() if line.strip()]
    ours = {probe_caps.VETH_NAME, probe_caps.VETH_PEER_NAME, probe_caps.IFB_NAME, probe_caps.TAP_NAME}
    return [name for name in names if name in ours]


@netns
@needs_root
def test_nothing_is_left_behind() -> None:
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip for the independent view of the host")
    run_checks(docker_timeout_s=0.5)  # the first run imports modules; compare later runs
    # Other work on a shared machine (someone's testbed) can change the host between two
    # snapshots. A leak by run_checks shows in every attempt, so one attempt with the whole host
    # unchanged is proof; what only this process can change must be unchanged every time.
    diffs: list[dict[str, tuple[object, object]]] = []
    for _ in range(5):
        own_before, host_before = _own_state(), _host_state()
        run_checks(docker_timeout_s=0.5)
        host_after, own_after = _host_state(), _own_state()
        assert own_after == own_before
        assert _doctor_links_in_root_namespace() == []
        changed = {
            key: (host_before[key], host_after[key]) for key in host_before if host_before[key] != host_after[key]
        }
        if not changed:
            return
        diffs.append(changed)
    warnings.warn(
        "the host kept changing under concurrent activity; only this process's own state was compared "
        f"(changed each time: {sorted({key for diff in diffs for key in diff})})",
        stacklevel=1,
    )


@netns
@needs_root
def test_without_the_capabilities_every_kernel_check_fails_with_a_fix() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop capabilities")
    program = (
        "import dataclasses, json\n"
        "from drills.doctor import run_checks\n"
        "print(json.dumps([dataclasses.asdict(c) for c in run_checks(docker_timeout_s=0.5)]))\n"
    )
    done = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-net_admin,-sys_admin",
            "--inh-caps=-net_admin,-sys_admin",
            sys.executable,
            "-c",
            program,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=REPO,
    )
    found = {item["name"]: Check(**item) for item in json.loads(done.stdout)}
    assert list(found) == EXPECTED_NAMES
    assert not found["root privileges"].ok
    assert "CAP_NET_ADMIN" in found["root privileges"].detail
    assert not found["network namespaces"].ok
    assert "not permitted" in found["network namespaces"].detail
    for name in ("veth pairs", "netem qdisc", "tbf qdisc", "htb qdisc", "IFB devices", "TUN/TAP"):
        assert not found[name].ok
        assert found[name].fix == "fix 'network namespaces' first"


def test_the_real_time_check_says_what_a_sender_would_get(checks: dict[str, Check]) -> None:
    """Independent of drills.realtime: a thread of this test tries SCHED_FIFO itself."""
    import os
    import threading

    allowed: list[bool] = []

    def attempt() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            allowed.append(True)
        except OSError:
            allowed.append(False)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    assert checks["real-time probe threads"].ok == allowed[0], checks["real-time probe threads"]

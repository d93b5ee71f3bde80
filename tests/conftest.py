"""Shared fixtures: a private state directory, and a before/after snapshot of the host that fails
a real-kernel test which leaves anything behind.

The snapshot is exact about what this test owns (its runs' namespaces, processes carrying its
token) and, on a shared host, ignores what others do meanwhile; see `host_snapshot`.

Tests marked `netns` need root. Without it they are skipped, except under CI (`CI=true`), where a
skipped lane would silently hide a broken backend: there the skip becomes a failure.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings
from lane_testing import lane_fixture  # noqa: F401  (the several-machines lane: one per session)

# Hypothesis draws its examples from a fixed seed per test (and keeps no example database): a
# property test then runs the same examples on every CI run instead of finding a new one by
# chance on some run. Its examples still vary by test, and a failure names the example.
settings.register_profile("drills", derandomize=True, database=None)
settings.load_profile("drills")

NETNS_DIR = Path("/run/netns")
TOKEN_ENV = "DRILLS_TEST_TOKEN"
# How long teardown waits for leftovers to go before calling them leaks: the kernel and a
# dying process may need a moment.
SETTLE_S = 3.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.hookimpl(tryfirst=True)  # before fixtures: none of them can work without root
def pytest_runtest_setup(item: pytest.Item) -> None:
    needs_root = item.get_closest_marker("netns") is not None or item.get_closest_marker("netem") is not None
    if needs_root and os.geteuid() != 0:
        reason = "needs root: creates network namespaces (run the netns lane as root)"
        if _in_ci():
            pytest.fail(f"CI=true and a netns test cannot run: {reason}; CI must run every lane", pytrace=False)
        pytest.skip(reason)
    if item.get_closest_marker("netem") is not None and not _netem_present():
        reason = "needs a kernel with sch_netem, and this one has none: `./dev vm-test` runs it in a VM that has"
        if _in_ci() or os.environ.get("DRILLS_VM_LANE"):
            # The VM lane exists to run these: a skip there would hide a broken kernel lane.
            pytest.fail(f"a netem test cannot run here: {reason}", pytrace=False)
        pytest.skip(reason)


_NETEM: dict[str, bool] = {}


def _netem_present() -> bool:
    """Probed once per session in a scratch namespace (drills' own capability probe)."""
    if "ok" not in _NETEM:
        from drills.netns import probe_caps  # the package under test, imported late

        _NETEM["ok"] = bool(probe_caps.probe_scratch_namespace(None).netem.ok)
    return _NETEM["ok"]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A private state directory (never /var/lib/drills)."""
    path = tmp_path / "state"
    path.mkdir()
    return path


# --------------------------------------------------------------------------- host snapshot

_IN_CREATE = 0x100
_IN_MOVED_TO = 0x80
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


class RunDirWatch:
    """Every run directory created under `runs_dir` while the watch is open, even one that lived
    for a millisecond (inotify): the run ids whose namespaces count as this test's own."""

    def __init__(self, runs_dir: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        runs_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir = runs_dir
        self._fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self._fd, bytes(runs_dir), _IN_CREATE | _IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {runs_dir}")
        self._seen: set[str] = set()

    def run_ids(self) -> set[str]:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + length].rstrip(b"\0").decode()
                offset += length
                if name:
                    self._seen.add(name)
        if self.runs_dir.is_dir():  # belt and braces: whatever is there now is ours too
            self._seen.update(entry.name for entry in self.runs_dir.iterdir() if entry.is_dir())
        return set(self._seen)

    def close(self) -> None:
        os.close(self._fd)


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30).stdout


def root_interfaces() -> list[str]:
    # `ip -br link` writes a veth as NAME@PEER; the name is what identifies it.
    return sorted(line.split()[0].split("@")[0] for line in _ip("-br", "link").splitlines() if line.strip())


def root_routes() -> list[str]:
    lines = _ip("route", "show", "table", "all").splitlines() + _ip("-6", "route", "show", "table", "all").splitlines()
    # Router-advertised routes count their lifetime down; that is not a change.
    return sorted(re.sub(r"\s+expires \d+sec", "", line).strip() for line in lines if line.strip())


def netns_names() -> set[str]:
    return {line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()}


def _start_ticks(pid: str) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()[19]


def processes() -> set[tuple[int, str]]:
    """(pid, start time) of every process: a pid alone may be reused."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            ticks = _start_ticks(entry.name)
            if ticks is not None:
                found.add((int(entry.name), ticks))
    return found


def _net_ns(pid: int | str) -> tuple[int, int] | None:
    try:
        info = os.stat(f"/proc/{pid}/ns/net")
    except OSError:  # gone, or a zombie
        return None
    return (info.st_dev, info.st_ino)


def _carries_token(pid: int, token: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{TOKEN_ENV}={token}".encode() in environ.split(b"\0")


def run_namespaces(run_ids: set[str]) -> list[str]:
    """Names of the namespaces, present now, that belong to one of `run_ids`."""
    if not run_ids or not NETNS_DIR.is_dir():
        return []
    return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith("drill-") and n.split("-")[1] in run_ids)


def _strict_host() -> bool:
    """Compare the root namespace exactly (a dedicated host, such as CI), rather than only for
    changes this test could have made (a shared host where others create interfaces too)."""
    return _in_ci() or os.environ.get("DRILLS_TEST_STRICT_HOST", "") not in ("", "0")


def scenario_fingerprint(directory: Path) -> tuple[set[str], set[str]]:
    """Interface names and addresses/prefixes of every scenario under `directory`: what a leak
    of this test's testbeds into the root namespace would be named after."""
    from drills.scenario import load_scenario  # the package under test, imported late

    names: set[str] = set()
    addresses: set[str] = set()
    for path in directory.rglob("*.yaml"):
        try:
            topology = load_scenario(path).topology
        except Exception:  # a deliberately broken file: it deployed nothing
            continue
        for node in topology.nodes:
            if node.loopback is not None:
                addresses.add(str(node.loopback.ip))
            for iface in node.interfaces:
                names.add(iface.name)
                for address in (iface.ipv4, iface.ipv6):
                    if address is not None:
                        addresses.update((str(address.ip), str(address.network)))
    return names, addresses


@dataclass
class HostSnapshot:
    """The host's root namespace, named namespaces and processes, before a test."""

    interfaces: list[str]
    routes: list[str]
    namespaces: set[str]
    pids: set[tuple[int, str]]
    token: str
    watch: RunDirWatch
    scenarios_dir: Path
    strict: bool
    extra_watches: list[RunDirWatch] = field(default_factory=list)

    def watch_state_dir(self, state_dir: Path) -> None:
        """Also count runs of another state directory as this test's own."""
        self.extra_watches.append(RunDirWatch(state_dir / "runs"))

    def run_ids(self) -> set[str]:
        """Ids of every run this test created so far."""
        ids = self.watch.run_ids()
        for extra in self.extra_watches:
            ids |= extra.run_ids()
        return ids

    def _root_changes(self) -> list[str]:
        interfaces, routes = root_interfaces(), root_routes()
        added_ifs = sorted(set(interfaces) - set(self.interfaces))
        gone_ifs = sorted(set(self.interfaces) - set(interfaces))
        added_routes = sorted(set(routes) - set(self.routes))
        gone_routes = sorted(set(self.routes) - set(routes))
        if not self.strict:
            # Others may be creating interfaces in the root namespace right now (Mininet does):
            # keep only what carries this test's interface names or addresses.
            names, addresses = scenario_fingerprint(self.scenarios_dir)
            added_ifs = [name for name in added_ifs if name in names]
            gone_ifs = [name for name in gone_ifs if name in names]

            def mine(route: str) -> bool:
                words = route.split()
                devices = {words[i + 1] for i, word in enumerate(words[:-1]) if word == "dev"}
                return bool(devices & names or set(words) & addresses)

            added_routes = [r for r in added_routes if mine(r)]
            gone_routes = [r for r in gone_routes if mine(r)]
        problems = []
        if added_ifs or gone_ifs:
            problems.append(f"root interfaces changed: added {added_ifs}, removed {gone_ifs}")
        if added_routes or gone_routes:
            problems.append(f"root routes changed: added {added_routes}, removed {gone_routes}")
        return problems

    def leftovers(self) -> list[str]:
        """Everything this test left behind, as readable problems (empty when none)."""
        problems: list[str] = []
        ours = self.run_ids()
        new_ns = sorted(set(run_namespaces(ours)) - self.namespaces)
        if new_ns:
            problems.append(f"namespaces of this test's runs remain: {new_ns}")
        problems += self._root_changes()
        host_ns = _net_ns(1)
        strays = []
        for pid, _ticks in processes() - self.pids:
            ns = _net_ns(pid)
            # Only processes this test started: they, and services started by them, inherit
            # the token (other people may be running testbeds on this host at the same time).
            if ns is not None and ns != host_ns and _carries_token(pid, self.token):
                strays.append(pid)
        if strays:
            described = []
            for pid in sorted(strays):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                except OSError:
                    cmd = "?"
                described.append(f"{pid} ({cmd})")
            problems.append(f"processes left in other network namespaces: {described}")
        return problems


@pytest.fixture
def host_snapshot(state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostSnapshot]:
    """Fail the test if it leaves behind a namespace of its runs, a change to the root
    namespace's interfaces or routes, or a process in another network namespace.

    Namespaces count as the test's own when their run id was created under `state_dir` (or a
    directory given to `watch_state_dir`); processes when they carry this test's token in their
    environment. Both keep the check exact while other drills run on the same host. The root
    namespace is compared exactly under CI (or DRILLS_TEST_STRICT_HOST=1); elsewhere only for
    interfaces and routes that carry the names or addresses of the scenarios in `tmp_path`,
    since other tools (Mininet) may be changing the root namespace of a shared host."""
    token = uuid.uuid4().hex
    monkeypatch.setenv(TOKEN_ENV, token)
    snapshot = HostSnapshot(
        interfaces=root_interfaces(),
        routes=root_routes(),
        namespaces=netns_names(),
        pids=processes(),
        token=token,
        watch=RunDirWatch(state_dir / "runs"),
        scenarios_dir=tmp_path,
        strict=_strict_host(),
    )
    try:
        yield snapshot
        deadline = time.monotonic() + SETTLE_S
        problems = snapshot.leftovers()
        while problems and time.monotonic() < deadline:
            time.sleep(0.1)
            problems = snapshot.leftovers()
        assert not problems, "the test left things behind:\n" + "\n".join(problems)
    finally:
        snapshot.watch.close()
        for extra in snapshot.extra_watches:
            extra.close()


# --------------------------------------------------------------------------- helpers as fixtures


def _drill_executable() -> list[str]:
    """The `drill` script beside this interpreter, else `python -m drills`."""
    beside = Path(sys.executable).parent / "drill"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "drills"]


@dataclass
class DrillCli:
    """Runs the `drill` command with this test's state directory."""

    state_dir: Path

    def argv(self, *args: str) -> list[str]:
        return [*_drill_executable(), "--state-dir", str(self.state_dir), *args]

    def __call__(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout_s, check=False)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def drill(state_dir: Path) -> DrillCli:
    """`drill(...)` runs the CLI with `--state-dir` set to this test's state directory."""
    return DrillCli(state_dir)


@pytest.fixture
def foreign_netns() -> Iterator[str]:
    """A namespace drills did not create (made with `ip netns add`), removed afterwards."""
    name = f"drilltest-foreign-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)

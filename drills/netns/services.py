"""Processes started inside a node's namespace: start, wait until ready, stop."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from drills import realtime
from drills.clock import Clock, SystemClock
from drills.errors import BackendError
from drills.netns import kernel
from drills.runs import open_private
from drills.scenario.resolved import Service

READY_POLL_S = 0.05
STOP_GRACE_S = 2.0


def start(
    namespace: str, service: Service, log_path: Path, cwd: Path, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `service` in `namespace`, in its own session so its whole process group can be
    signalled at teardown. Output goes to `log_path`; `extra_env` (such as DRILLS_DIR, the
    service's private directory) is added to its environment."""
    env = dict(os.environ)
    env.update(dict(service.env))
    env.update(extra_env or {})
    with open(log_path, "ab", opener=open_private) as log:

        def spawn() -> subprocess.Popen[bytes]:
            # On the drill clock (a restart on a revert), started real-time, ordinary from its first act.
            with realtime.starting(["/bin/sh", "-c", service.command]) as argv:
                return subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=cwd,
                    env=env,
                )

        try:
            return kernel.run_in_namespace(namespace, spawn)
        except OSError as exc:
            raise BackendError(f"cannot start service {service.name} in {namespace}: {exc}") from None


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(
    namespace: str,
    service: Service,
    process: subprocess.Popen[bytes],
    log_path: Path,
    clock: Clock,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Block until the readiness check passes (a command check sees `extra_env`); BackendError
    when the process exits or the check times out on `clock` (with the end of its log)."""
    ready = service.ready
    if ready is None:
        return
    deadline = clock.now_s() + ready.timeout_s
    while True:
        if process.poll() is not None:
            raise BackendError(
                f"service {service.name} in {namespace} exited with status {process.returncode} before it was ready:\n{_tail(log_path)}"
            )
        if _check_once(namespace, service, extra_env):
            return
        if clock.now_s() > deadline:
            raise BackendError(
                f"service {service.name} in {namespace} not ready after {ready.timeout_s:g} s; log ends:\n{_tail(log_path)}"
            )
        clock.sleep_until(clock.now_s() + READY_POLL_S)


def wait_settled(namespace: str, service: Service, clock: Clock, extra_env: Mapping[str, str] | None = None) -> None:
    """Block until `service.settled` passes (deploy calls it once every node's services run);
    BackendError after its timeout on `clock`."""
    settled = service.settled
    if settled is None:
        return
    check = replace(service, ready=settled)
    deadline = clock.now_s() + settled.timeout_s
    while not _check_once(namespace, check, extra_env):
        if clock.now_s() > deadline:
            raise BackendError(
                f"service {service.name} in {namespace}: `{settled.command}` did not pass within {settled.timeout_s:g} s "
                "of every service running (the network did not settle: see the daemons' logs in the run directory)"
            )
        clock.sleep_until(clock.now_s() + READY_POLL_S)


def _check_once(namespace: str, service: Service, extra_env: Mapping[str, str] | None = None) -> bool:
    ready = service.ready
    assert ready is not None
    if ready.tcp_port is not None:
        port = ready.tcp_port

        def probe() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.2)
                return sock.connect_ex(("127.0.0.1", port)) == 0

        return kernel.run_in_namespace(namespace, probe)
    assert ready.command is not None
    try:
        result = run_shell(namespace, ready.command, ready.timeout_s, extra_env)
    except subprocess.TimeoutExpired:
        return False  # a check that hangs is a check that did not pass; wait_ready's deadline decides
    return result.returncode == 0


def run_shell(
    namespace: str,
    command: str,
    timeout_s: float,
    extra_env: Mapping[str, str] | None = None,
    on_started: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `/bin/sh -c command` inside `namespace`, output captured, `extra_env` added to the
    environment; TimeoutExpired after `timeout_s` (the child is killed). `on_started()` is
    called once the shell runs (Popen returns when the child's exec succeeded), before the
    wait for its exit."""
    env = {**os.environ, **extra_env} if extra_env else None

    def run() -> subprocess.CompletedProcess[str]:
        argv = ["/bin/sh", "-c", command]
        pipe = subprocess.PIPE
        # On the drill clock (an exec fault), started real-time, ordinary from its first act.
        with realtime.starting(argv) as started:
            child = subprocess.Popen(started, stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe, text=True, env=env)
        with child:
            if on_started is not None:
                on_started()
            try:
                stdout, stderr = child.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()  # not its pipes: a grandchild may hold them open (as subprocess.run does)
                raise
        return subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)

    return kernel.run_in_namespace(namespace, run)


# A stopped process is polled for from 0.1 ms on, the interval doubling up to 20 ms: one that
# exits at once is seen within a fraction of a millisecond (a service-stop's window was the
# fixed 20 ms poll), one that takes its grace period costs no more polls than before.
FIRST_POLL_S = 0.0001
LAST_POLL_S = 0.02


def stop_processes(
    processes: Sequence[tuple[int, int | None]],
    clock: Clock | None = None,
    on_gone: Callable[[float], None] | None = None,
    *,
    resume: bool = False,
) -> list[int]:
    """Stop journaled processes (pid, start ticks): SIGTERM to each process group, then SIGKILL
    after a grace period (timed on `clock`: the drill's during a drill, the system's at
    teardown). A pid whose start time differs, or is unknown, is not known to be ours and is
    left alone. Returns the pids still alive at the end. `on_gone(instant)` gets when the last
    of them was seen gone (none left alive). `resume`: the groups were stopped (SIGSTOP) first,
    and get SIGCONT after the SIGTERM, so each process acts on it as it would have."""
    clock = clock or SystemClock()
    ours = [pid for pid, ticks in processes if ticks is not None and kernel.process_start_ticks(pid) == ticks]
    with _Exits(ours) as exits:  # opened before the signal: the pid cannot be reused under it
        for pid in ours:
            _signal_group(pid, signal.SIGTERM)
            if resume:
                _signal_group(pid, signal.SIGCONT)
        deadline_s = clock.now_s() + STOP_GRACE_S
        alive = ours
        poll_s = FIRST_POLL_S
        while alive and clock.now_s() < deadline_s:
            exits.wait(clock, poll_s)
            poll_s = min(2 * poll_s, LAST_POLL_S)
            alive = [pid for pid in alive if _alive(pid)]
        gone_s = clock.now_s()
    for pid in alive:
        _signal_group(pid, signal.SIGKILL)
    survivors = kill_and_wait(alive, clock=clock) if alive else []
    if on_gone is not None and not survivors:
        on_gone(gone_s if not alive else clock.now_s())
    return survivors


class _Exits:
    """A wait that ends when one of `pids` exits (a pidfd per process turns readable then), so
    an exit is seen within the scheduler's wake-up, not at the next poll; where pidfds are not
    available (Linux < 5.3), a plain wait of the poll interval."""

    def __init__(self, pids: Sequence[int]) -> None:
        self._poller = select.poll()
        self._fds: list[int] = []
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except OSError:  # gone already, or no pidfds here: the poll finds it
                continue
            self._fds.append(fd)
            self._poller.register(fd, select.POLLIN)

    def wait(self, clock: Clock, timeout_s: float) -> None:
        start_s = clock.now_s()
        if self._fds and self._poller.poll(max(1, round(timeout_s * 1000))):
            return  # an exit: look now
        clock.sleep_until(start_s + timeout_s)  # the rest of the interval (on a fake clock: all of it)

    def __enter__(self) -> _Exits:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds:
            os.close(fd)


def kill_and_wait(pids: list[int], timeout_s: float = 5.0, clock: Clock | None = None) -> list[int]:
    """SIGKILL `pids` and wait until they are gone (timed on `clock`, the system's by default);
    returns any that survive."""
    clock = clock or SystemClock()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline_s = clock.now_s() + timeout_s
    alive = [pid for pid in pids if _alive(pid)]
    poll_s = FIRST_POLL_S
    while alive and clock.now_s() < deadline_s:
        clock.sleep_until(clock.now_s() + poll_s)
        poll_s = min(2 * poll_s, LAST_POLL_S)
        alive = [pid for pid in alive if _alive(pid)]
    return alive


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _alive(pid: int) -> bool:
    """True while `pid` runs; reaps it when it is our own child (a zombie is not alive)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"

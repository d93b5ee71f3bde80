"""Processes of a namespace node as /proc shows them, and signals to them: the one module of the
namespace backend that reads /proc for node faults and calls `os.kill` for them.

Which processes a node has is read from /proc (every process whose network namespace is the
node's); which processes a service has, from the run's journal, and a journaled pid counts as
the service's only while its start time still matches, so a reused pid is never touched. Every
deadline and poll is on the clock handed in (the drill's), never on `time.monotonic` itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from drills.clock import Clock
from drills.errors import BackendError
from drills.netns import kernel
from drills.runs import Run

POLL_S = 0.002  # the time to confirm is part of an event's accuracy: poll tight
# The signalled processes themselves are watched this often (one /proc read each) for up to
# POLL_S before the namespace is scanned again: the kernel acts on a signal when the process next
# runs, usually within tens of microseconds, and a fixed 2 ms sleep was most of node-freeze's window.
WATCH_POLL_S = 0.0001
GONE_TIMEOUT_S = 5.0  # for SIGKILLed processes to disappear from the namespace
STATE_TIMEOUT_S = 2.0  # for signalled processes to show the stopped (or running) state

STOPPED = frozenset("Tt")  # stopped by a signal ('t': stopped while being traced)
DEAD = frozenset("ZX")  # exited: a zombie waiting for its parent, or being reaped

Journaled = list[tuple[int, int | None]]  # (pid, start ticks) as the journal has them
# (pid, pidfd) of a process seen in a namespace before the clock (`open_members`): the pidfd
# names that process and no other, so a signal through it never reaches a reused pid.
Member = tuple[int, int]


def stat(pid: int) -> tuple[str, int] | None:
    """State letter and process group of `pid` (/proc/PID/stat), or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def state(pid: int) -> str | None:
    """The state letter of `pid` as ps shows it, None once it is gone."""
    found = stat(pid)
    return None if found is None else found[0]


def _state_or_dead(pid: int) -> str:
    return state(pid) or "X"


def namespace_pids(namespace: str) -> list[int]:
    """Processes living in `namespace` now (a zombie has left it: its namespaces are released)."""
    return kernel.pids_in_namespaces([namespace]).get(namespace, [])


def _net_link(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def open_members(namespace: str, pids: Sequence[int] | None = None) -> list[Member]:
    """A pidfd for each of `pids` (default: every process living in `namespace` now; off the
    clock: the scan of every host process that finds them costs about 10 us a process). Each is
    checked in the namespace after its pidfd is open, so a pid reused meanwhile is dropped."""
    inode = kernel.namespace_inode(namespace)
    if inode is None:
        return []
    link = f"net:[{inode[1]}]"
    members: list[Member] = []
    for pid in namespace_pids(namespace) if pids is None else pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # gone meanwhile
        if _net_link(pid) == link:
            members.append((pid, fd))
        else:
            os.close(fd)
    return members


def close_members(members: Iterable[Member]) -> None:
    """Close the pidfds `open_members` opened."""
    for _, fd in members:
        with contextlib.suppress(OSError):
            os.close(fd)


def _signal_members(namespace: str, members: Sequence[Member], sig: signal.Signals) -> list[int]:
    """`sig` (SIGSTOP or SIGCONT), through its pidfd, to each member still in `namespace` and not
    in that state yet; returns their pids. A member that died is skipped (its pidfd cannot reach
    a reused pid); one that left the namespace is not touched."""
    inode = kernel.namespace_inode(namespace)
    link = None if inode is None else f"net:[{inode[1]}]"
    stopping = sig == signal.SIGSTOP
    signalled: list[int] = []
    for pid, fd in members:
        # While the pidfd's process lives, /proc/PID is that process: the check is of it.
        if link is None or _net_link(pid) != link:
            continue
        now = _state_or_dead(pid)
        if (now in STOPPED | DEAD) if stopping else (now not in STOPPED):
            continue
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            continue
        signalled.append(pid)
    return signalled


def send(pids: Iterable[int], sig: signal.Signals) -> None:
    """Signal each pid; one gone meanwhile is not an error."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def journaled(run: Run, namespace: str, service: str) -> Journaled:
    """(pid, start ticks) of every process journaled for `service` in `namespace`, oldest first,
    whether it still runs or not."""
    return [
        (int(e["pid"]), e.get("start"))
        for e in run.journal.entries()
        if e.get("op") == "process" and e.get("ns") == namespace and e.get("service") == service
    ]


def live(processes: Sequence[tuple[int, int | None]]) -> Journaled:
    """The journaled processes that still run: same pid *and* same start time, not exited."""
    return [
        (pid, ticks)
        for pid, ticks in processes
        if ticks is not None and kernel.process_start_ticks(pid) == ticks and _state_or_dead(pid) not in DEAD
    ]


def group_members(namespace: str, leaders: set[int]) -> list[int]:
    """Processes of `namespace` whose process group is led by one of `leaders`."""
    return [pid for pid in namespace_pids(namespace) if (found := stat(pid)) is not None and found[1] in leaders]


def _watch(pids: Sequence[int], states: frozenset[str] | None, clock: Clock) -> bool:
    """Wait until every one of `pids` shows one of `states` (None: any but stopped), or POLL_S
    passed; the caller then scans the namespace again, which confirms (and catches a process
    forked meanwhile). True when every one showed it."""

    def settled(pid: int) -> bool:
        now = _state_or_dead(pid)
        return now not in STOPPED if states is None else now in states

    until_s = clock.now_s() + POLL_S
    while not (done := all(settled(pid) for pid in pids)) and clock.now_s() < until_s:
        clock.sleep_until(clock.now_s() + WATCH_POLL_S)
    return done


def freeze_groups(leaders: Sequence[int], clock: Clock) -> float | None:
    """SIGSTOP the process group of each of `leaders` (a service's journaled processes), then
    watch the leaders until each shows stopped (or gone); the instant they all did, None when
    the watch gave up first. A stop cannot be caught, ignored or handled: each process stops
    acting when the kernel next runs it, microseconds later, whatever its own shutdown would
    take (a Python service's exit alone takes 1-3 ms), and the group's members get the signal
    in the same call as their leader. A process that leads no group is stopped alone, and then
    no instant is told: a child of it, outside the signal, may still be serving."""
    grouped = True
    for pid in leaders:
        try:
            os.killpg(pid, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError):  # not a group leader (or gone): the process itself
            send([pid], signal.SIGSTOP)
            grouped = False
    return clock.now_s() if _watch(leaders, STOPPED | DEAD, clock) and grouped else None


def kill_everything(namespace: str, what: str, clock: Clock) -> int:
    """SIGKILL every process in `namespace` until /proc shows none there (a process forked
    meanwhile is caught by the next scan); returns how many were killed. Polls every 2 ms rather
    than `services.kill_and_wait`'s 10 ms: the time to confirm is part of the event's accuracy."""
    killed: set[int] = set()
    deadline_s = clock.now_s() + GONE_TIMEOUT_S
    while pids := namespace_pids(namespace):
        if clock.now_s() > deadline_s:
            raise BackendError(f"{what}: processes {sorted(pids)} still run in {namespace} after SIGKILL")
        send([pid for pid in pids if pid not in killed], signal.SIGKILL)
        killed.update(pids)
        _watch(pids, DEAD, clock)
    for pid in killed:  # a service is this process's child: reap it rather than leave a zombie
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return len(killed)


def stop_everything(
    namespace: str,
    what: str,
    clock: Clock,
    on_stopped: Callable[[float], None] | None = None,
    armed: Sequence[Member] = (),
) -> list[int]:
    """SIGSTOP every process in `namespace` until each shows the stopped state; returns them.
    `on_stopped(instant)` gets when the last signalled processes were seen stopped: the scan
    after that, finding none running, only proves that none was missed (a stopped process
    forks nothing). `armed` (from `open_members`, before the clock): those are stopped first,
    with no scan of /proc before them; one started since is found by the scan that follows,
    stopped in a further round, and the instant is then that round's."""
    deadline_s = clock.now_s() + STATE_TIMEOUT_S
    stopped_s: float | None = None
    if armed and (signalled := _signal_members(namespace, armed, signal.SIGSTOP)):
        stopped_s = clock.now_s() if _watch(signalled, STOPPED | DEAD, clock) else None
    while True:
        pids = namespace_pids(namespace)
        # The kernel stops a process when it next runs, not when the signal is sent: poll.
        running = [pid for pid in pids if _state_or_dead(pid) not in STOPPED | DEAD]
        if not running:
            if on_stopped is not None and stopped_s is not None:
                on_stopped(stopped_s)
            return pids
        if clock.now_s() > deadline_s:
            raise BackendError(f"{what}: processes {sorted(running)} in {namespace} are not stopped after SIGSTOP")
        send(running, signal.SIGSTOP)
        # When every one signalled shows stopped; if the watch gave up first, no instant is known
        # but the next confirmation.
        stopped_s = clock.now_s() if _watch(running, STOPPED | DEAD, clock) else None


def continue_everything(
    namespace: str,
    what: str,
    clock: Clock,
    on_continued: Callable[[float], None] | None = None,
    frozen: Sequence[Member] = (),
) -> None:
    """SIGCONT every stopped process in `namespace` until none shows the stopped state.
    `frozen` (pidfds of what `stop_everything` stopped): those are continued first, with no scan
    of /proc before them; `on_continued(instant)` gets when the last signalled were seen
    running, the scan after that only proving none was left stopped."""
    deadline_s = clock.now_s() + STATE_TIMEOUT_S
    continued_s: float | None = None
    if frozen and (signalled := _signal_members(namespace, frozen, signal.SIGCONT)):
        continued_s = clock.now_s() if _watch(signalled, None, clock) else None
    while stopped := [pid for pid in namespace_pids(namespace) if _state_or_dead(pid) in STOPPED]:
        if clock.now_s() > deadline_s:
            raise BackendError(f"{what}: processes {sorted(stopped)} in {namespace} are still stopped after SIGCONT")
        send(stopped, signal.SIGCONT)
        continued_s = clock.now_s() if _watch(stopped, None, clock) else None
    if on_continued is not None and continued_s is not None:
        on_continued(continued_s)

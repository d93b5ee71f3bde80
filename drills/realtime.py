"""Real-time scheduling for the probe senders: a packet due at a fault's edge leaves on time.

A sender is due to send at the very instants a fault is applied, when a small machine's CPUs are
busiest: the controller's thread applying it, and the kernel's work it sets off (processes
exiting, links going down). An ordinary thread that wakes then waits for the scheduler, 1-2 ms
at a fault's edge on a quiet 2-CPU machine (bench/fault_accuracy.py), and that lateness widens
the figures' accuracy (drills.measure.send_resolution_s). Under SCHED_FIFO at the lowest
real-time priority the sender runs the moment it wakes, ahead of every ordinary task. It runs
for one `sendto` per due packet and then blocks again, so what it takes from the nodes' daemons
is that; the kernel's real-time throttling (95 % of each CPU by default) bounds the worst case.
Only threads are raised, never the process: the probes' senders, receivers and echoes, and the
controller's thread while the drill clock runs (`controlling`; higher while it applies or
reverts a fault, `applying`); everything else stays ordinary, and so does every thread or
process they start (a process started on the clock runs ordinary from its first act: `starting`).

Where the kernel refuses (no CAP_SYS_NICE, a container with no real-time budget), the sender
runs as before, and its record says so (`StreamRecord.sender_scheduling`, in results.json's
`method.sender_scheduling`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator, Sequence

# The lowest real-time priorities: above every ordinary task, below the kernel's own threads.
FIFO_PRIORITY = 2  # probe senders
# Probe receivers and echoes, below the senders. They share the senders' GIL: an ordinary one
# preempted while holding it would hold up a real-time sender behind it (priority inversion).
RECEIVER_PRIORITY = 1
# The controller's thread while it applies or reverts a fault (`applying`), above the senders.
# On a kernel without full preemption (PREEMPT_NONE, this machine's), a sender woken on the CPU
# where the apply is inside a syscall waits for that syscall to end when it outranks the apply
# (the kernel keeps it there to preempt), but is placed on another CPU at once when it does not:
# with the apply below the senders, the packets at a fault's edge left up to 3 ms late under
# load, above them 0.03-0.15 ms (bench/fault_accuracy.py --load 2, 2026-12-04).
APPLY_PRIORITY = 3
# A sender this far behind its schedule cannot keep up (its rate is more than the machine can
# send): it goes back to ordinary scheduling for the rest of the run, so that catching up never
# keeps a CPU from the nodes' daemons and the receivers.
BEHIND_S = 0.050
# False: senders stay ordinary threads (bench/fault_accuracy.py compares both in one run).
ENABLED = True


def raise_this_thread(priority: int = FIFO_PRIORITY) -> str:
    """Put the calling thread (a probe sender; a receiver or echo at RECEIVER_PRIORITY) under
    SCHED_FIFO; on refusal it stays as it was. Returns how it is scheduled, for the record:
    "SCHED_FIFO 2", or "ordinary (why)"."""
    if not ENABLED:
        return "ordinary (real-time senders disabled)"
    why = _try_fifo(priority)
    return f"SCHED_FIFO {priority}" if why is None else f"ordinary (SCHED_FIFO refused: {why})"


def _try_fifo(priority: int) -> str | None:
    """Put the calling thread under SCHED_FIFO at `priority`; None, or why the kernel refused."""
    try:
        # pid 0: the calling thread only (Linux schedules threads, not processes).
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    return None


# Where a stream's sender lanes run (drills.probes.udp_stream): each held to its own CPU, so that
# a CPU the hypervisor stops running (bench/vcpu_pause.py: 1.5-8.5 ms, one vCPU at a time) or a
# fault's apply keeps busy leaves the other lane sending. Successive streams start at different
# CPUs, so that several streams' lanes spread over a larger machine.
_lane_rotation = itertools.count()


def lane_cpus(lanes: int) -> list[int]:
    """Distinct CPUs this process may run on for a stream's `lanes` sender lanes, at most one
    per CPU; empty where it may run on only one (a single lane then, held to nothing)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (OSError, AttributeError):
        return []
    if lanes < 2 or len(allowed) < 2:
        return []
    first = next(_lane_rotation)  # the first lanes (which send unless late) spread too
    return [allowed[(first + k) % len(allowed)] for k in range(min(lanes, len(allowed)))]


def hold_this_thread_to(cpu: int) -> bool:
    """Run the calling thread on `cpu` only; False (it runs anywhere, as before) where the
    kernel refuses, e.g. a CPU taken out of this process's cpuset meanwhile."""
    try:
        os.sched_setaffinity(0, {cpu})  # pid 0: the calling thread only
    except (OSError, AttributeError):
        return False
    return True


def lower_this_thread(behind_s: float) -> str:
    """Put the calling thread (a sender `behind_s` late) back under ordinary scheduling."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError as exc:  # never expected: lowering needs no privilege
        return f"SCHED_FIFO {FIFO_PRIORITY} (could not lower it when {behind_s * 1e3:.0f} ms behind: {exc.strerror or exc})"
    return f"SCHED_FIFO {FIFO_PRIORITY}, then ordinary: {behind_s * 1e3:.0f} ms behind its schedule (it could not keep up)"


# The controller's thread while the drill clock runs, between its applies: at the receivers'
# priority, for the same reason. It holds the GIL whenever it runs Python (stamping a step,
# logging, waiting for the next); preempted by an ordinary task then, it held a sender waiting for
# the GIL until the scheduler gave it a CPU again: 4.4 ms under load, traced
# (bench/vcpu_pause.py, 2026-12-05).
CONTROLLER_PRIORITY = RECEIVER_PRIORITY


@contextlib.contextmanager
def controlling() -> Iterator[None]:
    """The calling thread (the controller's, while the drill clock runs) under SCHED_FIFO at
    CONTROLLER_PRIORITY, then as it was. It sleeps between events and blocks while it waits, so
    it holds a CPU only for its own short work (and its last 0.3 ms spin before an instant,
    drills.clock.SystemClock). What it starts begins ordinary (SCHED_RESET_ON_FORK, see
    `applying`)."""
    with _fifo(CONTROLLER_PRIORITY):
        yield


@contextlib.contextmanager
def applying() -> Iterator[None]:
    """The calling thread (the controller's, applying or reverting a fault) under SCHED_FIFO
    for the duration, then as it was: the fault's window (issued -> in force) is then not
    stretched by ordinary tasks taking its CPU. It blocks while it waits (a kernel's answer, a
    process's exit), so it holds a CPU only for the fault's own work.

    With SCHED_RESET_ON_FORK: a thread or process it starts (a service restarted on a revert,
    an exec's command) begins ordinary, as Linux would otherwise have it inherit the real-time
    priority for its whole life (a daemon above the probe senders). A helper thread that does
    the apply's own work takes the priority on explicitly (`current`, `adopt`)."""
    with _fifo(APPLY_PRIORITY):
        yield


@contextlib.contextmanager
def _fifo(priority: int) -> Iterator[None]:
    """The calling thread under SCHED_FIFO at `priority`, nothing it starts inheriting it,
    for the duration; then as it was. A refusal leaves it as it is."""
    before: tuple[int, os.sched_param] | None = None
    if ENABLED:
        try:
            before = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
        except (OSError, AttributeError):
            before = None  # refused: it runs as an ordinary thread, as it did before
    try:
        yield
    finally:
        if before is not None:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, before[0], before[1])


# A process started on the drill clock (a service restarted on a revert, an exec's command)
# would begin ordinary (SCHED_RESET_ON_FORK), and an ordinary child waits behind busy processes
# for a CPU before its exec, which the event's window (to the exec) counted: 1.7 ms for an exec
# and 2.8 ms for a service's restart under two busy processes (bench/fault_accuracy.py). So it
# starts real-time at the receivers' priority (below the senders) and is `chrt --other 0`
# first, which puts it under ordinary scheduling before it executes the command.
CHRT = "/usr/bin/chrt"
STARTING_PRIORITY = RECEIVER_PRIORITY


@contextlib.contextmanager
def starting(argv: Sequence[str]) -> Iterator[list[str]]:
    """The argv to start a command with from the calling thread, and the thread ready to start
    it (see CHRT above): a real-time thread's child inherits STARTING_PRIORITY until its first
    act, chrt's, puts it under ordinary scheduling; the thread is back as it was afterwards. An
    ordinary thread, or a host without chrt: `argv` as it is, started ordinary."""
    before = current()
    if before is None or not ENABLED or not os.access(CHRT, os.X_OK):
        yield list(argv)
        return
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(STARTING_PRIORITY))  # inherited: no reset flag
    except OSError:
        yield list(argv)
        return
    try:
        yield [CHRT, "--other", "0", *argv]
    finally:
        adopt(before)


def current() -> tuple[int, int] | None:
    """The calling thread's real-time scheduling (policy with its flags, priority), for a helper
    thread doing its work to take on (`adopt`); None when it is ordinary."""
    try:
        policy = os.sched_getscheduler(0)
        if policy & ~os.SCHED_RESET_ON_FORK not in (os.SCHED_FIFO, os.SCHED_RR):
            return None
        return policy, os.sched_getparam(0).sched_priority
    except (OSError, AttributeError):
        return None


def adopt(scheduling: tuple[int, int] | None) -> None:
    """Put the calling thread under `scheduling` (from `current` in the thread it works for);
    None or a refusal leaves it as it is."""
    if scheduling is not None:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, scheduling[0], os.sched_param(scheduling[1]))


def refusal() -> str | None:
    """Why this host refuses SCHED_FIFO threads (None: it allows them), tried in a throwaway
    thread: the same answer a sender would get (tests and `drill doctor` ask)."""
    found: list[str | None] = []
    thread = threading.Thread(target=lambda: found.append(_try_fifo(FIFO_PRIORITY)), name="drills-realtime-check")
    thread.start()
    thread.join()
    return found[0]


# A virtual machine's CPUs can be taken away by its host: a vCPU not running delivers no timer,
# so a sender due then leaves late however it is scheduled (bench/results/vcpu-pause.md traced one:
# 8.5 ms with no interrupt on that CPU, not even its tick, while the other CPU's came on time).
# The kernel counts that time as "steal" (/proc/stat, in clock ticks: 10 ms resolution).
PROC_STAT = "/proc/stat"


def steal_s(path: str = PROC_STAT) -> float | None:
    """CPU time the host has taken from this machine's CPUs since boot, all CPUs together
    (/proc/stat's steal); None where the kernel does not say (no such field, no /proc)."""
    try:
        with open(path, "rb") as stat:
            first = stat.readline(512)  # "cpu  user nice system idle iowait irq softirq steal ..."
        fields = first.split()
        if len(fields) < 9 or fields[0] != b"cpu":
            return None
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def steal_between(before_s: float | None, after_s: float | None) -> float | None:
    """Steal time taken between two readings of `steal_s` (None when either is unknown)."""
    if before_s is None or after_s is None:
        return None
    return max(0.0, after_s - before_s)

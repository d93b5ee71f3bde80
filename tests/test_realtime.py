"""Probe senders under SCHED_FIFO (drills.realtime): the thread only, never the process."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from drills import clock as clock_module
from drills import realtime
from drills.clock import SystemClock
from drills.netns import kernel

T = TypeVar("T")


def _in_thread(work: Callable[[], T]) -> T:
    """`work`'s answer, run in a thread of its own (scheduling and affinity are a thread's: the caller keeps its own)."""
    answers: list[T] = []
    thread = threading.Thread(target=lambda: answers.append(work()))
    thread.start()
    thread.join()
    return answers[0]


def _in_a_thread() -> tuple[str, int]:
    return _in_thread(lambda: (realtime.raise_this_thread(), os.sched_getscheduler(0)))


def test_a_sender_thread_runs_under_sched_fifo_where_allowed_and_the_process_does_not() -> None:
    said, policy = _in_a_thread()
    why = realtime.refusal()
    if why is None:  # root with CAP_SYS_NICE and a real-time budget: the sender is real-time
        assert (said, policy) == (f"SCHED_FIFO {realtime.FIFO_PRIORITY}", os.SCHED_FIFO)
    else:  # refused (no privilege, a container without a budget): ordinary, and its record says why
        assert (said, policy) == (f"ordinary (SCHED_FIFO refused: {why})", os.SCHED_OTHER)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # this (main) thread is untouched


def test_disabled_senders_stay_ordinary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime, "ENABLED", False)
    said, policy = _in_a_thread()
    assert said.startswith("ordinary") and policy == os.SCHED_OTHER


def test_a_refusal_leaves_the_sender_ordinary_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    said, policy = _in_a_thread()
    assert said == "ordinary (SCHED_FIFO refused: Operation not permitted)" and policy == os.SCHED_OTHER


@pytest.mark.skipif(realtime.refusal() is not None, reason="this host refuses SCHED_FIFO threads")
def test_a_sender_that_cannot_keep_up_goes_back_to_ordinary_scheduling() -> None:
    seen: list[tuple[str, int]] = []

    def sender() -> None:
        realtime.raise_this_thread()
        said = realtime.lower_this_thread(0.080)
        seen.append((said, os.sched_getscheduler(0)))

    thread = threading.Thread(target=sender)
    thread.start()
    thread.join()
    assert seen == [(f"SCHED_FIFO {realtime.FIFO_PRIORITY}, then ordinary: 80 ms behind its schedule (it could not keep up)", os.SCHED_OTHER)]


@pytest.mark.skipif(realtime.refusal() is not None, reason="this host refuses SCHED_FIFO threads")
def test_a_fault_is_applied_under_sched_fifo_above_the_senders_and_the_thread_is_restored() -> None:
    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    with realtime.applying():
        policy = os.sched_getscheduler(0)
        assert (policy & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(0).sched_priority) == (os.SCHED_FIFO, realtime.APPLY_PRIORITY)
        assert policy & os.SCHED_RESET_ON_FORK  # what it starts begins ordinary (below)
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    # Above the senders: a sender woken beside a syscall of the apply goes to another CPU at
    # once, rather than wait for the syscall (a kernel without full preemption); receivers below.
    assert realtime.RECEIVER_PRIORITY < realtime.FIFO_PRIORITY < realtime.APPLY_PRIORITY
    with pytest.raises(RuntimeError), realtime.applying():  # restored when the fault raises, too
        raise RuntimeError("refused")
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before


def test_disabled_applying_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime, "ENABLED", False)
    with realtime.applying():
        assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_steal_time_is_read_from_proc_stat_and_is_none_where_the_kernel_does_not_say(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    stat.write_text(f"cpu  10 0 5 900 1 0 2 {3 * ticks} 0 0\ncpu0 5 0 2 450 0 0 1 {ticks} 0 0\n")
    assert realtime.steal_s(str(stat)) == 3.0  # all CPUs together, in seconds
    for bad in ("cpu  10 0 5 900\n", "intr 1 2 3 4 5 6 7 8 9\n", "cpu  a b c d e f g h\n", ""):
        stat.write_text(bad)
        assert realtime.steal_s(str(stat)) is None, bad
    assert realtime.steal_s(str(tmp_path / "absent")) is None
    stat.write_text("cpu  " + "9" * 600 + "\n")  # one bounded line: a huge one is not a number
    assert realtime.steal_s(str(stat)) is None
    assert realtime.steal_between(1.0, 1.25) == 0.25
    assert realtime.steal_between(None, 1.0) is None and realtime.steal_between(1.0, None) is None
    assert realtime.steal_between(2.0, 1.0) == 0.0  # never negative
    here = realtime.steal_s()
    assert here is None or here >= 0.0


@pytest.mark.skipif(realtime.refusal() is not None, reason="this host refuses SCHED_FIFO threads")
def test_what_an_apply_starts_begins_ordinary_and_its_namespace_worker_keeps_the_apply_priority() -> None:
    # A service restarted on a revert, or an exec's command, must not run real-time for its whole
    # life (above the probe senders); the worker thread that does the apply's work in a
    # namespace keeps the apply's priority, and what it starts begins ordinary too.
    def child_scheduling() -> tuple[int, int]:
        child = subprocess.Popen(["sleep", "5"])
        try:
            return os.sched_getscheduler(child.pid), os.sched_getparam(child.pid).sched_priority
        finally:
            child.kill()
            child.wait()

    def thread_scheduling() -> tuple[int, int]:
        return os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(0).sched_priority

    with realtime.applying():
        assert child_scheduling() == (os.SCHED_OTHER, 0)
        plain: list[tuple[int, int]] = []
        thread = threading.Thread(target=lambda: plain.append(thread_scheduling()))
        thread.start()
        thread.join()
        assert plain == [(os.SCHED_OTHER, 0)]  # a thread it starts, too
        assert kernel._in_thread(thread_scheduling) == (os.SCHED_FIFO, realtime.APPLY_PRIORITY)
        assert kernel._in_thread(child_scheduling) == (os.SCHED_OTHER, 0)
    assert realtime.current() is None  # the caller is ordinary again
    assert kernel._in_thread(thread_scheduling) == (os.SCHED_OTHER, 0)  # an ordinary caller's worker too


@pytest.mark.skipif(realtime.refusal() is not None, reason="this host refuses SCHED_FIFO threads")
def test_a_command_started_on_the_clock_starts_real_time_below_the_senders_and_runs_ordinary() -> None:
    # Started from a real-time thread (an exec fault, a service restarted on a revert), a child
    # does not wait behind busy processes for a CPU before its exec: it is created at the
    # receivers' priority, below the senders, and its first act (chrt) makes it ordinary; the
    # command itself runs ordinary. The thread is as it was afterwards; an ordinary thread's
    # command is started as it is.
    probe = ["/bin/sh", "-c", "grep -E '^policy|^prio' /proc/self/sched | tr -s ' '"]

    def run(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout

    def started() -> tuple[list[str], str, tuple[int, int] | None]:
        with realtime.starting(probe) as argv:
            during = realtime.current()
            inherited = subprocess.Popen(["sleep", "5"])  # what a child of the thread starts as, now
        try:
            created = (os.sched_getscheduler(inherited.pid), os.sched_getparam(inherited.pid).sched_priority)
        finally:
            inherited.kill()
            inherited.wait()
        assert during is None or created == (os.SCHED_FIFO, realtime.STARTING_PRIORITY), created
        return argv, run(argv), realtime.current()

    with realtime.applying():
        argv, seen, after = started()
        assert after == (os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, realtime.APPLY_PRIORITY)  # as it was
    assert argv == [realtime.CHRT, "--other", "0", *probe]
    assert "policy : 0\n" in seen and "prio : 120\n" in seen, seen  # SCHED_OTHER, nice 0
    argv, seen, after = started()
    assert argv == probe and after is None and "policy : 0\n" in seen


@pytest.mark.skipif(realtime.refusal() is not None, reason="this host refuses SCHED_FIFO threads")
def test_the_controller_runs_real_time_while_the_clock_runs_and_its_applies_above_it() -> None:
    def scheduling() -> tuple[int, int]:
        return os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(0).sched_priority

    before = scheduling()
    with realtime.controlling():
        # Never preempted by an ordinary task while it holds the GIL that the senders wait for;
        # below them, as the receivers are.
        assert scheduling() == (os.SCHED_FIFO, realtime.CONTROLLER_PRIORITY) and realtime.CONTROLLER_PRIORITY < realtime.FIFO_PRIORITY
        with realtime.applying():
            assert scheduling() == (os.SCHED_FIFO, realtime.APPLY_PRIORITY)
        assert scheduling() == (os.SCHED_FIFO, realtime.CONTROLLER_PRIORITY)
        assert kernel._in_thread(scheduling) == (os.SCHED_FIFO, realtime.CONTROLLER_PRIORITY)
    assert scheduling() == before


class _FakeTime:
    """time.monotonic and time.sleep on a counter: every sleep is recorded and moves it on."""

    def __init__(self) -> None:
        self.now_s = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += max(seconds, 0.0001)  # a yield (sleep(0)) still lets time pass


@pytest.mark.parametrize(("scheduling", "spin_s"), [(None, SystemClock.SPIN_S), ((os.SCHED_FIFO, 1), SystemClock.REALTIME_SPIN_S)])
def test_a_precise_wait_spins_its_last_stretch_and_a_real_time_thread_only_a_short_one(
    monkeypatch: pytest.MonkeyPatch, scheduling: tuple[int, int] | None, spin_s: float
) -> None:
    # A real-time thread is woken on time: a 2 ms spin at its priority would only keep the
    # ordinary tasks on its CPU (the nodes' daemons, deferred packet processing) waiting.
    fake = _FakeTime()
    monkeypatch.setattr(clock_module, "time", fake)
    monkeypatch.setattr(realtime, "current", lambda: scheduling)
    assert SystemClock().sleep_until(fake.now_s + 0.01, precise=True)
    assert fake.sleeps[0] == pytest.approx(0.01 - spin_s) and all(s == 0 for s in fake.sleeps[1:])
    fake.sleeps.clear()
    assert SystemClock().sleep_until(fake.now_s + 0.01)  # not precise: one sleep, no spin
    assert fake.sleeps == [pytest.approx(0.01)]


def test_sender_lanes_get_distinct_cpus_rotating_and_none_where_one_cpu_is_allowed() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    firsts = set()
    for _ in range(2 * len(allowed)):
        cpus = realtime.lane_cpus(2)
        if len(allowed) < 2:
            assert cpus == []
            continue
        assert len(cpus) == 2 and len(set(cpus)) == 2 and set(cpus) <= set(allowed)
        firsts.add(cpus[0])
    if len(allowed) >= 2:
        assert firsts == set(allowed)  # every CPU takes its turn at the first lane, which sends
    assert realtime.lane_cpus(1) == []
    # A thread that may run on one CPU only gets one lane, held to nothing.
    assert _in_thread(lambda: (os.sched_setaffinity(0, {allowed[0]}), realtime.lane_cpus(2))[1]) == []


def test_a_lane_is_held_to_its_cpu_and_a_cpu_it_may_not_use_leaves_it_unheld() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    held = _in_thread(lambda: (realtime.hold_this_thread_to(allowed[-1]), os.sched_getaffinity(0)))
    assert held == (True, {allowed[-1]})
    assert os.sched_getaffinity(0) == set(allowed)  # this thread is untouched
    beyond = max(allowed) + 4096  # no such CPU
    assert _in_thread(lambda: (realtime.hold_this_thread_to(beyond), os.sched_getaffinity(0))) == (False, set(allowed))

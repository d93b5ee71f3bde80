"""Probe senders under SCHED_FIFO (drills.realtime): the thread only, never the process."""

from __future__ import annotations

import os
import threading

import pytest

from drills import realtime


def _in_a_thread() -> tuple[str, int]:
    seen: list[tuple[str, int]] = []

    def sender() -> None:
        said = realtime.raise_this_thread()
        seen.append((said, os.sched_getscheduler(0)))

    thread = threading.Thread(target=sender)
    thread.start()
    thread.join()
    return seen[0]


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
        assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == (os.SCHED_FIFO, realtime.APPLY_PRIORITY)
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

"""The live view of `drill run`: frames drawn from fake events on a fake clock (unit), probe
health read from records, and the real CLI under a pseudo-terminal (integration)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from drills.clock import FakeClock
from drills.engine.progress import ClockStarted, ClockStopped, ProbeHealth, Scheduled, StepDone
from drills.live import GUARD_S, REFRESH_S, LiveView
from drills.measure_samples import app_health, stream_health
from drills.records import ProbeRecord, Sample, StreamRecord

T0 = 1000.0
SCHEDULE = (
    Scheduled(5.0, "apply", "fibre-cut", "link-down", "link fibre: cp:fibre0, eoc:fibre0 down"),
    Scheduled(10.0, "revert", "fibre-cut", "link-down", "link fibre: cp:fibre0, eoc:fibre0 up again"),
)
HEALTH = [
    ProbeHealth("voice", "udp-stream", 6250, 5100, 1.0, None, "down"),
    ProbeHealth("web", "http", 60, 58, 0.0, 0.0042, "ok"),
]


def started(snapshot: list[ProbeHealth] | None = None) -> ClockStarted:
    return ClockStarted("quickstart", "31dd9f", T0, 15.0, SCHEDULE, lambda: list(snapshot or HEALTH))


def frame(view: LiveView, now_s: float) -> str:
    console = Console(width=120, record=True, file=open(os.devnull, "w"), color_system=None)  # noqa: SIM115
    console.print(view.render(now_s))
    return console.export_text()


def test_before_the_clock_starts_the_view_says_deploying_and_shows_the_last_lines() -> None:
    view = LiveView(Console(), clock=FakeClock(T0), wall=lambda: "10:00:00")
    for n in range(8):
        view.log(f"line {n}")
    text = frame(view, T0)
    assert "deploying" in text
    assert "10:00:00 line 7" in text and "line 2" not in text  # only the last five


def test_a_frame_shows_clock_current_and_next_fault_and_probe_health() -> None:
    view = LiveView(Console(), clock=FakeClock(T0), wall=lambda: "10:00:05")
    view.event(started())
    view.event(StepDone(5.0, "apply", "fibre-cut", "link-down", "link fibre: cp:fibre0, eoc:fibre0 down", 5.0001, 5.00044))
    view.log("T+005.00 apply fibre-cut: link fibre: cp:fibre0, eoc:fibre0 down (confirmed +0.44 ms)")
    text = frame(view, T0 + 6.25)
    assert "drill quickstart  run 31dd9f  T+06.2 of 15.0 s" in text
    assert "now:  fibre-cut: link fibre: cp:fibre0, eoc:fibre0 down (since T+5.00, confirmed +0.44 ms)" in text
    assert "next: T+10.00 revert fibre-cut: link fibre: cp:fibre0, eoc:fibre0 up again  in 3.8 s" in text
    assert re.search(r"voice\s+udp-stream\s+6250\s+5100\s+100.0 %\s+-\s+down", text)
    assert re.search(r"web\s+http\s+60\s+58\s+0.0 %\s+4.20 ms\s+ok", text)
    assert "10:00:05 T+005.00 apply fibre-cut" in text


def test_after_the_revert_no_fault_is_in_force_and_nothing_is_next() -> None:
    view = LiveView(Console(), clock=FakeClock(T0))
    view.event(started())
    view.event(StepDone(5.0, "apply", "fibre-cut", "link-down", "down", 5.0, 5.0004))
    view.event(StepDone(10.0, "revert", "fibre-cut", "link-down", "up again", 10.0, 10.007))
    view.event(ClockStopped(15.0))
    text = frame(view, T0 + 99.0)
    assert "T+15.0 of 15.0 s" in text  # the clock stops at the drill's end
    assert "no fault applied" in text and "nothing more scheduled" in text
    assert "timeline over" in text


def test_the_view_keeps_quiet_around_each_fault_instant() -> None:
    view = LiveView(Console(), clock=FakeClock(T0))
    assert view.wait_s(T0) == 0.0  # before the clock: draw
    view.event(started())
    assert view.wait_s(T0 + 1.0) == 0.0
    assert view.next_frame_s(T0 + 1.0) == REFRESH_S
    # The next frame is cut short so that it never starts inside the guard before 5 s...
    assert view.next_frame_s(T0 + 4.8) == pytest.approx(5.0 - GUARD_S - 4.8)
    # ...and inside the guard, until the engine reports the action done, it waits.
    assert view.wait_s(T0 + 5.0 - GUARD_S / 2) > 0
    assert view.wait_s(T0 + 5.3) > 0
    view.event(StepDone(5.0, "apply", "fibre-cut", "link-down", "down", 5.0, 5.0004))
    assert view.wait_s(T0 + 5.3) == 0.0


def test_stream_health_reads_the_last_settled_second() -> None:
    record = StreamRecord("voice", 1000, 200)
    for seq in range(3000):  # 3 s at 1000 packets/s from t=0; lost from 2.0 s on
        record.sent.append(seq / 1000)
        if seq < 2000:
            record.received[seq] = seq / 1000 + 0.0005
    healthy = stream_health(record, 2.0)  # judges [0.8, 1.8): all answered
    assert (healthy.sent, healthy.received, healthy.state) == (3000, 2000, "ok")
    assert healthy.loss_last == 0.0 and healthy.latency_s == pytest.approx(0.0005)
    half = stream_health(record, 2.7)  # [1.5, 2.5): half lost
    assert half.state == "impaired" and half.loss_last == pytest.approx(0.5)
    assert stream_health(record, 3.2).state == "down"  # [2.0, 3.0): all lost
    assert stream_health(StreamRecord("x", 10, 10), 5.0).state == "idle"


def test_app_health_counts_samples() -> None:
    record = ProbeRecord("web", "http", 0.1, 0.2)
    record.samples += [Sample(i / 10, True, 0.003, "") for i in range(20)]  # 0.0 .. 1.9 s answered
    ok = app_health(record, 2.0)
    assert ok.state == "ok" and ok.latency_s == pytest.approx(0.003)
    record.samples += [Sample(i / 10, False, None, "timeout") for i in range(20, 30)]  # 2.0 .. 2.9 s failed
    impaired = app_health(record, 3.0)  # samples since 1.8 s: 2 answered, 10 failed
    assert impaired.state == "impaired" and impaired.loss_last == pytest.approx(10 / 12)
    down = app_health(record, 3.3)
    assert (down.sent, down.received) == (30, 20) and down.state == "down"
    record.error = "socket broke"
    assert app_health(record, 3.0).state == "broken"


# --------------------------------------------------------------------------- the CLI, on a pty

SCENARIO = """
version: 1
name: live-view
topology:
  nodes:
    a: {routes: [{to: b, via: b:e1}]}
    b: {routes: [{to: a, via: a:e1}]}
  links: [{name: wire, endpoints: [a:e1, b:e1]}]
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 500}
timeline:
  - {id: cut, at: 1500ms, fault: link-down, link: wire, for: 500ms}
expect:
  - {probe: stream, step: cut, max_recovery: 2s}
duration: 3500ms
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run_on_pty(argv: list[str], timeout_s: float) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as stdin, stdout and stderr; its exit code and output."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(argv, stdin=secondary, stdout=secondary, stderr=secondary, env=env, close_fds=True)
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    data = os.read(primary, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    return code, ANSI.sub("", b"".join(chunks).decode(errors="replace"))


@pytest.mark.netns
def test_drill_run_on_a_terminal_shows_the_live_view(tmp_path: Path, state_dir: Path, host_snapshot: object) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(SCENARIO)
    out = tmp_path / "out"
    drill = [sys.executable, "-m", "drills", "--state-dir", str(state_dir), "run", str(path), "--out", str(out)]
    code, text = _run_on_pty(drill, timeout_s=60)
    assert code == 0, text
    assert "drill live-view  run " in text and " of 3.5 s" in text  # the view's header
    assert "next: T+1.50 apply cut: link wire: a:e1, b:e1 down" in text
    assert re.search(r"stream\s+udp-stream\s+\d+\s+\d+", text)  # a probe row
    assert "now:  cut: link wire: a:e1, b:e1 down (since T+1.50" in text
    # After the view: the same plain lines as without a terminal, then the recovery table.
    assert re.search(r"\d\d:\d\d:\d\d T\+001\.50 apply cut: link wire", text)
    assert "recovery" in text and "drill passed" in text
    assert (out / "results.json").exists()
    assert not any(state_dir.glob("runs/*"))
    # --no-live: plain lines only, even on a terminal.
    code, plain = _run_on_pty([*drill[:-2], "--out", str(tmp_path / "out2"), "--no-live"], timeout_s=60)
    assert code == 0, plain
    assert "next: " not in plain and "drill passed" in plain
    assert not any(state_dir.glob("runs/*"))

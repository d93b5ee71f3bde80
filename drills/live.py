"""The live terminal view of `drill run` (rich): exercise clock, faults, probe health, last lines.

The engine calls `log` and `event` on its own threads; both only append to a list and return.
Everything else happens on the view's one thread: it draws a few times a second, and keeps
quiet from `GUARD_S` before each action is due until the engine reports it done, so no frame
is being rendered while a fault is applied on the precise clock. Probe health comes from the
engine's snapshot function, which reads counters without locks (drills.measure_samples).

Used only when stdout is a terminal; otherwise the CLI prints plain lines. The view is
transient: when it closes, the log lines it showed are handed back to be printed as plain lines,
so the terminal's scrollback holds the same record as a CI log.

Scenario text (names, labels, notes, log lines) is appended to `Text` as plain text (never
markup) and through `visible(..., one_line=True)`: a control character shows as its escape and
a newline in a note cannot break the frame's lines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from drills.clock import Clock, SystemClock
from drills.engine.progress import ClockStarted, ClockStopped, Event, Scheduled, StepDone
from drills.records import ProbeHealth
from drills.textsafe import visible

REFRESH_S = 0.25  # four frames a second
# No frame starts this close before an action is due (nor until the engine reports it done);
# widened to a few times the last frame's drawing time when drawing is slow (a loaded machine).
GUARD_S = 0.1
GUARD_FRAMES = 3
STUCK_S = 5.0  # an action not reported this long after it was due: draw again anyway
LOG_LINES = 5
_STATE_STYLE = {"ok": "green", "impaired": "yellow", "down": "bold red", "idle": "dim", "broken": "bold red"}

Line = tuple[str, str]  # (wall-clock HH:MM:SS, message)


class LiveView:
    """`with LiveView(console) as view: run_drill(..., log=view.log, progress=view.event)`;
    afterwards `view.lines` holds every log line, for printing as plain lines."""

    def __init__(
        self,
        console: Console,
        clock: Clock | None = None,
        wall: Callable[[], str] = lambda: time.strftime("%H:%M:%S"),
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._console = console
        self._clock = clock or SystemClock()
        self._wall = wall
        self._refresh_s = refresh_s
        self.lines: list[Line] = []
        self._events: list[Event] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="live-view", daemon=True)
        self._live: Live | None = None
        self.frames = 0
        self._frame_s = 0.0  # how long the last frame took to draw (wall time)

    # ------------------------------------------------------------------ engine side: append only

    def log(self, message: str) -> None:
        self.lines.append((self._wall(), message))

    def event(self, event: Event) -> None:
        self._events.append(event)

    # ------------------------------------------------------------------ view side

    def __enter__(self) -> LiveView:
        self._live = Live(console=self._console, auto_refresh=False, transient=True)
        self._live.start()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(2.0)
        if self._live is not None:
            self._live.stop()

    def _next_due_s(self) -> float | None:
        """When the next action not yet reported done is due (clock seconds); None: no more."""
        events = list(self._events)
        started = next((e for e in events if isinstance(e, ClockStarted)), None)
        if started is None:
            return None
        done = sum(1 for e in events if isinstance(e, StepDone))
        return started.t0_s + started.schedule[done].at_s if done < len(started.schedule) else None

    @property
    def guard_s(self) -> float:
        return max(GUARD_S, GUARD_FRAMES * self._frame_s)

    def wait_s(self, now_s: float) -> float:
        """0: the view may draw now; else how long to wait before asking again. Quiet from
        `guard_s` before the next action is due until the engine reports it done."""
        due_s = self._next_due_s()
        if due_s is not None and due_s - self.guard_s <= now_s < due_s + STUCK_S:
            return 0.005
        return 0.0

    def next_frame_s(self, now_s: float) -> float:
        """After a frame: the usual period, cut short so that no frame starts inside a guard."""
        due_s = self._next_due_s()
        if due_s is None:
            return self._refresh_s
        until_guard_s = due_s - self.guard_s - now_s
        return min(self._refresh_s, until_guard_s) if until_guard_s > 0 else 0.005

    def _loop(self) -> None:
        delay_s = 0.0
        while not self._stop.wait(delay_s):
            now_s = self._clock.now_s()
            delay_s = self.wait_s(now_s)
            if delay_s > 0:
                continue
            assert self._live is not None
            self._live.update(self.render(now_s), refresh=True)
            self.frames += 1
            after_s = self._clock.now_s()
            self._frame_s = after_s - now_s
            delay_s = self.next_frame_s(after_s)

    def render(self, now_s: float) -> RenderableType:
        """One frame, from the events and lines received so far (no I/O: unit-testable).

        One Text of pre-formatted lines, not a Table: laying a table out costs ten times more,
        and every millisecond this thread holds the interpreter is a millisecond a probe
        thread may wait for it (bench/probes.py measures the difference in sender lateness)."""
        events = list(self._events)
        started = next((e for e in events if isinstance(e, ClockStarted)), None)
        frame = Text(overflow="ellipsis", no_wrap=True)
        if started is None:
            frame.append("drill: deploying the testbed...\n", style="bold")
        else:
            done = [e for e in events if isinstance(e, StepDone)]
            elapsed_s = min(max(0.0, now_s - started.t0_s), started.duration_s)
            frame.append(f"drill {_line(started.scenario)}", style="bold")
            frame.append(f"  run {_line(started.run_id)}  ")
            frame.append(f"T+{elapsed_s:04.1f}", style="bold cyan")
            frame.append(f" of {started.duration_s:.1f} s")
            if any(isinstance(e, ClockStopped) for e in events):
                frame.append("  timeline over: measuring, then tearing down", style="bold")
            frame.append("\n")
            _faults(frame, started.schedule, done, elapsed_s)
            _probes(frame, started.snapshot())
        for stamp, message in self.lines[-LOG_LINES:]:
            frame.append(f"{stamp} {_line(message)}\n", style="dim")
        frame.rstrip()
        return frame


def _line(text: str) -> str:
    return visible(text, one_line=True)


def _faults(frame: Text, schedule: tuple[Scheduled, ...], done: list[StepDone], elapsed_s: float) -> None:
    """Faults in force now (applied, not yet reverted) and the next action with its countdown."""
    applied: dict[str, StepDone] = {}
    for step in done:
        if step.fault in ("note", "exec"):
            continue
        if step.kind == "apply":
            applied[step.label] = step
        else:
            applied.pop(step.label, None)
    if applied:
        for step in applied.values():
            frame.append("now:  ", style="bold")
            frame.append(f"{_line(step.label)}: {_line(step.detail)}", style="yellow")
            frame.append(f" (since T+{step.at_s:.2f}, confirmed +{step.lag_s * 1e3:.2f} ms)\n")
    else:
        frame.append("now:  ", style="bold")
        frame.append("no fault applied\n", style="green")
    upcoming = schedule[len(done)] if len(done) < len(schedule) else None
    frame.append("next: ", style="bold")
    if upcoming is None:
        frame.append("nothing more scheduled\n")
    else:
        frame.append(f"T+{upcoming.at_s:.2f} {upcoming.kind} {_line(upcoming.label)}: {_line(upcoming.describe)}")
        frame.append(f"  in {max(0.0, upcoming.at_s - elapsed_s):.1f} s\n", style="bold cyan")


def _probes(frame: Text, health: list[ProbeHealth]) -> None:
    rows = [
        (
            _line(h.name), h.kind, str(h.sent), str(h.received),
            "-" if h.loss_last is None else f"{h.loss_last * 100:.1f} %",
            "-" if h.latency_s is None else f"{h.latency_s * 1e3:.2f} ms",
        )
        for h in health
    ]  # fmt: skip
    header = ("probe", "type", "sent", "received", "loss (last s)", "RTT p50")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        left = [cells[i].ljust(widths[i]) for i in (0, 1)]
        right = [cells[i].rjust(widths[i]) for i in range(2, len(cells))]
        return "  ".join(left + right)

    frame.append(line(header) + "  state\n", style="bold")
    for h, row in zip(health, rows, strict=True):
        frame.append(line(row) + "  ")
        frame.append(h.state + "\n", style=_STATE_STYLE.get(h.state, ""))

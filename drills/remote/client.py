"""The controller's side of one agent: a child process (`ssh HOST drill agent`, or locally
`python -m drills agent`) spoken to in frames (drills.remote.protocol).

One reader thread hands each answer to the caller waiting for its request id; any number of
threads may call at once (the drill thread's faults, the live view's health reads). `call` waits
for the answer; `send` returns a `Pending` at once (the agent answers one lane's requests in the
order sent, so a later call's answer implies the earlier ones' were given). A heartbeat
thread sends a frame every `HEARTBEAT_S`, which is what keeps the agent's dead-man switch from
firing. The agent's stderr is its log: each line goes to `log`, prefixed with the host.

Failures, and which error each is:
- an error answer: the agent's error class again (drills.errors), the message prefixed with
  the host ("h2: ..."): a bad input on a host still exits 2, a backend failure 3;
- the channel lost (the agent exited, end of file, a bad frame, a broken pipe): `ChannelLost`
  (a BackendError), for this call and every later one;
- no answer within `timeout_s`: `AgentTimeout` (a BackendError); the channel stays open and a
  late answer is dropped. No call ever waits longer than its `timeout_s`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from drills.clock import Clock, SystemClock
from drills.errors import BackendError, DrillError
from drills.remote import codec, protocol
from drills.remote.frames import BadFrame, ChannelLost, FrameReader, FrameWriter
from drills.textsafe import visible

Log = Callable[[str], None]
DEFAULT_TIMEOUT_S = 30.0
EXIT_WAIT_S = 5.0  # after bye (and its teardown), for the agent process to exit before it is killed
MAX_LOG_LINE_BYTES = 4096  # a longer stderr line is cut into pieces of this size
STDERR_TAIL_LINES = 3  # of the agent's log, quoted when its channel is lost (ssh's own errors too)
WRITE_STALL_S = 10.0  # a request the agent takes nothing of for this long: the channel is lost


class AgentTimeout(BackendError):
    """An agent did not answer a request in time (the request may still have run there)."""


@dataclass
class _Slot:
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None


class Pending:
    """A request sent to an agent, its answer not yet taken (AgentClient.send)."""

    def __init__(self, client: AgentClient, ident: int, method: str, slot: _Slot) -> None:
        self._client = client
        self._ident = ident
        self.method = method
        self._slot = slot

    @property
    def answered(self) -> bool:
        """Whether the answer (or the channel's loss) has arrived."""
        return self._slot.done.is_set()

    @property
    def ran(self) -> tuple[float, float] | None:
        """When the agent began and finished the request, on its own clock (protocol: "ran");
        None before the answer, or for an answer without a well-formed pair."""
        answer = self._slot.answer
        stamps = answer.get("ran") if answer is not None else None
        if not isinstance(stamps, list) or len(stamps) != 2:
            return None
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in stamps):
            return None
        start_s, end_s = float(stamps[0]), float(stamps[1])
        return (start_s, end_s) if start_s <= end_s else None

    def result(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
        """The answer's result, or its error raised (see the module docstring); waits at most
        `timeout_s` (AgentTimeout after it; a late answer is then dropped)."""
        host, method, slot = self._client.host, self.method, self._slot
        try:
            if not slot.done.wait(timeout_s):
                raise AgentTimeout(f"{host}: no answer to {method} within {timeout_s:g} s")
        finally:
            self._client._forget(self._ident)
        answer = slot.answer
        if answer is None:
            raise ChannelLost(f"{host}: the agent's channel was lost during {method} ({self._client.lost})")
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            raise protocol.error_from(host, error.get("kind"), error.get("message"))
        try:
            return codec.decode(answer.get("result"))
        except BadFrame as exc:
            raise BadFrame(f"{host}: {method}'s answer: {exc}") from None


class AgentClient:
    """One agent process and its channel. Thread-safe."""

    def __init__(
        self,
        host_name: str,
        argv: Sequence[str],
        log: Log,
        *,
        clock: Clock | None = None,
        heartbeat_s: float = protocol.HEARTBEAT_S,
    ) -> None:
        self.host = host_name
        self.clock = clock or SystemClock()  # the controller's: the clock offset is measured against it
        self._log = log
        self._heartbeat_s = heartbeat_s
        self._ids = itertools.count(1)
        self._pending: dict[int, _Slot] = {}
        self._lock = threading.Lock()
        self._lost: str | None = None
        self._closing = False
        self._stop = threading.Event()
        try:
            # Its own session: a Ctrl-C at the controller's terminal reaches the controller, which
            # tears down in order; the agent hears of it through its channel, not a signal.
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,
            )
        except OSError as exc:
            raise BackendError(f"{host_name}: cannot start the agent ({argv[0]}): {exc.strerror}") from None
        assert self.process.stdin and self.process.stdout and self.process.stderr
        self._writer = FrameWriter(self.process.stdin.fileno(), stall_s=WRITE_STALL_S)
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._reader = FrameReader(self.process.stdout.fileno())
        self._threads = [
            threading.Thread(target=self._read, name=f"agent-{host_name}-frames", daemon=True),
            threading.Thread(target=self._forward_log, args=(self.process.stderr,), name=f"agent-{host_name}-log", daemon=True),
            threading.Thread(target=self._heartbeat, name=f"agent-{host_name}-heartbeat", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def lost(self) -> str | None:
        """Why the channel is lost, or None while it works."""
        return self._lost

    def call(self, method: str, *args: Any, timeout_s: float = DEFAULT_TIMEOUT_S, **kwargs: Any) -> Any:
        """Run `method` on the agent and return its result (see the module docstring for errors)."""
        return self.send(method, *args, **kwargs).result(timeout_s)

    def send(self, method: str, *args: Any, at_s: float | None = None, **kwargs: Any) -> Pending:
        """Issue a request and return at once; `Pending.result` waits for its answer. The agent
        runs requests of one lane in the order sent (probe requests in theirs, every other in
        the main one), so a request sent after this one is answered after it. `at_s`: an
        instant of the AGENT's clock before which it does not run it (protocol: "at")."""
        ident = next(self._ids)
        slot = _Slot()
        with self._lock:
            if self._lost is not None:
                raise ChannelLost(f"{self.host}: the agent's channel is lost ({self._lost})")
            self._pending[ident] = slot
        try:
            request = {"id": ident, "method": method, "args": codec.encode(list(args)), "kwargs": codec.encode(kwargs)}
            if at_s is not None:
                request["at"] = at_s
            self._writer.write(request)
        except ChannelLost as exc:  # an agent that died: its exit status says more than EPIPE
            self._set_lost(self._exit_reason(str(exc)))
        except BaseException:
            self._forget(ident)
            raise
        return Pending(self, ident, method, slot)

    def _forget(self, ident: int) -> None:
        with self._lock:
            self._pending.pop(ident, None)

    def close(self, keep: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S) -> int | None:
        """End the channel in order: `bye` (the agent tears its part down unless `keep`), wait
        for the agent to exit, kill it after `EXIT_WAIT_S`. Idempotent; returns its exit code."""
        if self._closing and self.process.returncode is not None:
            return self.process.returncode  # closed already: never a second bye
        self._closing = True
        if self._lost is None:
            try:
                self.call("bye", keep, timeout_s=timeout_s)
            except DrillError as exc:
                self._log(f"{self.host}: bye: {exc}")
        self._stop.set()
        self._threads[2].join(EXIT_WAIT_S)  # the heartbeat: never a write to a closed descriptor
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # end of file: an agent that missed bye is lost
        try:
            code = self.process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self._log(f"{self.host}: the agent did not exit within {EXIT_WAIT_S:g} s: killed")
            self.process.kill()
            code = self.process.wait(EXIT_WAIT_S)
        for thread in self._threads:
            thread.join(EXIT_WAIT_S)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code

    # ------------------------------------------------------------------ threads

    def _set_lost(self, reason: str) -> None:
        with self._lock:
            if self._lost is None:
                self._lost = reason
                if not self._closing:
                    self._log(f"{self.host}: agent channel lost: {reason}")
            pending = list(self._pending.values())
        for slot in pending:
            slot.done.set()  # with no answer: the caller raises ChannelLost

    def _read(self) -> None:
        try:
            while (message := self._reader.read()) is not None:
                ident = message.get("id")
                with self._lock:
                    slot = self._pending.get(ident) if isinstance(ident, int) else None
                if slot is not None:
                    slot.answer = message
                    slot.done.set()
            self._set_lost(self._exit_reason("the agent closed its channel but still runs"))
        except (BadFrame, ChannelLost) as exc:
            self._set_lost(str(exc))
            self.process.kill()  # out of step: nothing it says can be trusted; its dead-man switch cleans up

    def _exit_reason(self, running: str) -> str:
        """Why the agent's channel ended: its exit status and last log lines (an ssh that could
        not connect, a host without drills, says so there); `running` if it has not exited."""
        try:
            code = self.process.wait(1.0)
        except subprocess.TimeoutExpired:
            return running
        self._threads[1].join(1.0)  # the last log lines
        tail = " / ".join(self._stderr_tail)
        return f"the agent exited with status {code}" + (f": {tail}" if tail else "")

    def _forward_log(self, stream: IO[bytes]) -> None:
        for raw in iter(lambda: stream.readline(MAX_LOG_LINE_BYTES), b""):
            line = visible(raw.decode("utf-8", "replace").rstrip(), one_line=True)
            self._stderr_tail.append(line[:300])
            self._log(f"{self.host}: {line}")

    def _heartbeat(self) -> None:
        for beat in itertools.count():
            if self._stop.wait(self._heartbeat_s) or self._lost is not None:
                return
            try:
                self._writer.write({"hb": beat})
            except ChannelLost:
                return  # the reader reports the loss

"""The seam's node operations (drills.backend.NodeOps) for the nodes one agent holds, by RPC.

Each method is one `op` request; the agent runs it on its host's NetnsOps and reads the new state
back there before it answers, so a mutating call returns, as locally, once the change is
confirmed. `open_socket` and `run_in_node` hand back live objects a channel cannot carry: probes
on another host run in that host's probe service (drills.remote.probe_service) instead.
"""

from __future__ import annotations

import math
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from drills.backend import ExecResult, Impairment, LinkState, OpsSpan
from drills.errors import BackendError, DrillError

if TYPE_CHECKING:
    from drills.rules import Table
    from drills.scenario.resolved import Route, Service

T = TypeVar("T")
EXEC_MARGIN_S = 5.0  # an exec's answer may come this long after its own timeout
# A step's operations leave this long before its instant, plus four times the clock offset's
# bound (twice the channel's quickest round trip): the agent holds them until the instant, so
# they are there in time unless the channel stalls for that long.
LEAD_S = 0.020


class Answer(Protocol):
    def result(self, timeout_s: float = ...) -> Any: ...

    @property
    def ran(self) -> tuple[float, float] | None:
        """When the agent ran it, on the agent's clock (None: not stamped)."""


class HostClock(Protocol):
    """The agent's clock against the drill's (drills.remote.backend.ClockInfo)."""

    @property
    def offset_s(self) -> float:
        """Agent instant - offset = drill instant ..."""

    @property
    def bound_s(self) -> float:
        """... within +/- this."""


@dataclass
class _Span:
    """The operations one thread had run on this host since its last `take_span`."""

    start_s: float = math.inf  # drill clock, the clock bound subtracted
    end_s: float = -math.inf  # drill clock, the clock bound added
    first_change_s: float = math.inf  # the first change made (set_link, far_end; read back): drill clock, bound added
    unstamped: int = 0  # answers without a "ran" pair: the span cannot place them


@dataclass
class _Thread:
    """What one calling thread has in flight with this agent."""

    unsettled: list[Answer] = field(default_factory=list)  # set_link/far_end answers not yet taken
    span: _Span = field(default_factory=_Span)
    readings: dict[tuple[str, str], LinkState] = field(default_factory=dict)  # read back by those answers
    due: float | None = None  # the agent's clock: this thread's requests are held until then


class Caller(Protocol):
    @property
    def host(self) -> str: ...

    def send(self, method: str, *args: Any, at_s: float | None = None, **kwargs: Any) -> Answer: ...


class AgentOps:
    """NodeOps of one agent's nodes (drills.remote.client.AgentClient or any `Caller`)."""

    def __init__(self, client: Caller, timeout_s: float = 30.0, clock: HostClock | None = None) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._clock = clock  # None: the agent's instants cannot be placed, `take_span` gives None
        self._local = threading.local()

    def _mine(self) -> _Thread:
        """The calling thread's state with this agent."""
        mine: _Thread | None = getattr(self._local, "state", None)
        if mine is None:
            mine = self._local.state = _Thread()
        return mine

    def _ran(self, answer: Answer, changed_s: float | None = None) -> None:
        """Widen this thread's span by when `answer`'s request ran on the agent; `changed_s`,
        when the agent's kernel had made a change its read-back confirmed (set_link,
        far_end), may be the span's first change."""
        span, ran = self._mine().span, answer.ran
        if ran is None or self._clock is None:
            span.unstamped += 1
            return
        offset_s, bound_s = self._clock.offset_s, self._clock.bound_s
        span.start_s = min(span.start_s, ran[0] - offset_s - bound_s)
        span.end_s = max(span.end_s, ran[1] - offset_s + bound_s)
        if changed_s is not None:
            span.first_change_s = min(span.first_change_s, changed_s - offset_s + bound_s)

    def _settle(self) -> None:
        """Take the answers of this thread's set_link and far_end requests, keeping the link
        states they read back: the first error is raised."""
        mine = self._mine()
        answers, mine.unsettled = mine.unsettled, []
        first: DrillError | None = None
        readings = mine.readings
        for answer in answers:
            try:
                changed_s, ends = answer.result(self._timeout_s)
                for node, ifname, state in ends:
                    readings[(node, ifname)] = LinkState(*state)
            except DrillError as exc:
                first = first or exc
                self._ran(answer)  # a failed change confirmed nothing
                continue
            self._ran(answer, None if changed_s is None else float(changed_s))
        if first is not None:
            raise first

    def _send(self, method: str, *args: Any) -> Answer:
        """A request, held by the agent until this thread's due instant, if any (`due_at`)."""
        return self._client.send(method, *args, at_s=self._mine().due)

    def lead_s(self) -> float:
        """How long before a step's instant to send its operations; 0 without the agent's clock."""
        return 0.0 if self._clock is None else LEAD_S + 4 * self._clock.bound_s

    def due_at(self, instant_s: float | None) -> None:
        """This thread's requests from now on run at drill instant `instant_s` on the agent
        (its clock: the offset applied); None, or no clock known: at once."""
        self._mine().due = None if instant_s is None or self._clock is None else instant_s + self._clock.offset_s

    def _op(self, name: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        answer = self._send("op", name, list(args), kwargs)
        try:
            result = answer.result(timeout_s or self._timeout_s)
        except DrillError:
            self._settle()  # an earlier set_link's error is the cause: raised before this one
            raise
        self._settle()  # answered before this call was: no wait
        self._ran(answer)
        if name != "link_state":
            self._mine().readings.clear()  # what set_links read back came before this operation
        return result

    def take_span(self) -> OpsSpan | None:
        """When this thread's operations since the last call ran on the agent's host, on the
        drill clock: (no earlier than, finished by, first change confirmed by), each widened by
        the clock offset's bound. Settles this thread's requests first. None when there were
        none; the whole line (-inf, inf, inf) when one cannot be placed (no clock, an answer
        without its instants), which places nothing."""
        mine = self._mine()
        try:
            self._settle()
        finally:
            span, mine.span = mine.span, _Span()
            mine.readings.clear()  # the next action reads afresh
        if span.unstamped:
            return OpsSpan(-math.inf, math.inf, math.inf)
        if span.start_s > span.end_s:
            return None
        return OpsSpan(span.start_s, span.end_s, span.first_change_s)

    # links
    def set_link(self, node: str, ifname: str, *, up: bool) -> None:
        """Sent, not awaited (the seam's contract for set_link): its answer is taken with this
        thread's next operation, which the agent runs and answers after it (one lane, in
        order); an error of it is raised there. The agent reads the link's ends on its host
        back at once and answers with them; `link_state` serves those readings, so a
        link-down and its confirmation cost one round trip in all, on every host at once."""
        self._mine().unsettled.append(self._send("set_link", node, ifname, up))

    def set_far_end(self, link: str, up: bool) -> None:
        """The carrier of this agent's node on a cross-host link (the hidden end of its veth, or TAP):
        sent, not awaited, like `set_link`, its node's interface read back likewise."""
        self._mine().unsettled.append(self._send("far_end", link, up))

    def link_state(self, node: str, ifname: str) -> LinkState:
        """The interface's state: as the agent read it back right after this thread's last
        set_link or far_end (once; any other operation, or `take_span`, drops such readings),
        else read now."""
        mine = self._mine()
        readings = mine.readings
        if (node, ifname) not in readings and mine.unsettled:
            self._settle()
        reading = readings.pop((node, ifname), None)
        if reading is not None:
            return reading
        state: LinkState = self._op("link_state", node, ifname)
        return state

    def replace_address(self, node: str, ifname: str, address: IPv4Interface | IPv6Interface) -> None:
        self._op("replace_address", node, ifname, address)

    def replace_routes(self, node: str, routes: Sequence[Route]) -> None:
        self._op("replace_routes", node, tuple(routes))

    # impairments
    def impair(self, changes: Sequence[Impairment]) -> None:
        self._op("impair", tuple(changes))

    def link_engine(self, link: str) -> str:
        return str(self._op("link_engine", link))

    # packet filters
    def arm_rules(self, tables: Sequence[Table]) -> None:
        self._op("arm_rules", tuple(tables))

    def apply_rules(self, tables: Sequence[Table], on_applied: Callable[[], None] | None = None) -> None:
        # `on_applied` is not called: the agent's answer comes after its read-back.
        self._op("apply_rules", tuple(tables))

    def remove_rules(self, tables: Sequence[Table]) -> None:
        self._op("remove_rules", tuple(tables))

    # processes
    def processes(self, node: str) -> list[int]:
        return list(self._op("processes", node))

    def signal(self, node: str, pids: Sequence[int], sig: signal.Signals) -> None:
        self._op("signal", node, tuple(pids), sig)

    def process_state(self, node: str, pid: int) -> str | None:
        state: str | None = self._op("process_state", node, pid)
        return state

    def kill_all(self, node: str) -> int:
        return int(self._op("kill_all", node))

    def stop_all(self, node: str, on_stopped: Callable[[float], None] | None = None) -> int:
        return int(self._op("stop_all", node))  # the agent's answer is the confirmation

    def continue_all(self, node: str, on_continued: Callable[[float], None] | None = None) -> None:
        self._op("continue_all", node)  # the agent's answer is the confirmation

    def boot(self, node: str) -> bool:
        return bool(self._op("boot", node))

    # services and exec
    def start_service(self, node: str, service: Service, on_started: Callable[[float], None] | None = None) -> int:
        timeout_s = self._timeout_s + (service.ready.timeout_s if service.ready else 0.0)
        return int(self._op("start_service", node, service, timeout_s=timeout_s))

    def stop_service(self, node: str, service: str, on_stopped: Callable[[float], None] | None = None) -> None:
        self._op("stop_service", node, service)  # the agent's answer is the confirmation

    def service_running(self, node: str, service: str) -> bool:
        return bool(self._op("service_running", node, service))

    def exec(self, node: str, command: str, timeout_s: float, on_started: Callable[[float], None] | None = None) -> ExecResult:
        # The agent's span of the operation places the step (`TimedOps`): no start is told here.
        result: ExecResult = self._op("exec", node, command, timeout_s, timeout_s=timeout_s + EXEC_MARGIN_S)
        return result

    # sockets: not across a channel
    def open_socket(self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0) -> socket.socket:
        raise BackendError(f"{self._client.host}: node {node}: a socket cannot cross the agent's channel; probes on this host run in its probe service")

    def run_in_node(self, node: str, fn: Callable[[], T]) -> T:
        raise BackendError(f"{self._client.host}: node {node}: code cannot run in a node of another host; probes there run in its probe service")

    def warm(self) -> None:
        self._op("warm")

    def close(self) -> None:
        """Release the agent's handles (idempotent; nothing to do when the channel is gone)."""
        if getattr(self._client, "lost", None) is None:
            self._op("close")
        else:
            self._mine().unsettled.clear()

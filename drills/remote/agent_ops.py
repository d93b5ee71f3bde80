"""The seam's node operations (drills.backend.NodeOps) for the nodes one agent holds, by RPC.

Each method is one `op` request; the agent runs it on its host's NetnsOps and reads the new state
back there before it answers, so a mutating call returns, as locally, once the change is
confirmed. `open_socket` and `run_in_node` hand back live objects a channel cannot carry: probes
on another host run in that host's probe service (drills.remote.probe_service) instead.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Sequence
from ipaddress import IPv4Interface, IPv6Interface
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from drills.backend import ExecResult, Impairment, LinkState
from drills.errors import BackendError, DrillError

if TYPE_CHECKING:
    from drills.rules import Table
    from drills.scenario.resolved import Route, Service

T = TypeVar("T")
EXEC_MARGIN_S = 5.0  # an exec's answer may come this long after its own timeout


class Answer(Protocol):
    def result(self, timeout_s: float = ...) -> Any: ...


class Caller(Protocol):
    @property
    def host(self) -> str: ...

    def call(self, method: str, *args: Any, timeout_s: float = ..., **kwargs: Any) -> Any: ...

    def send(self, method: str, *args: Any, **kwargs: Any) -> Answer: ...


class AgentOps:
    """NodeOps of one agent's nodes (drills.remote.client.AgentClient or any `Caller`)."""

    def __init__(self, client: Caller, timeout_s: float = 30.0) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._sent = threading.local()  # per calling thread: its set_link requests not yet settled

    def _unsettled(self) -> list[Answer]:
        sent: list[Answer] | None = getattr(self._sent, "answers", None)
        if sent is None:
            sent = self._sent.answers = []
        return sent

    def _settle(self) -> None:
        """Take the answers of this thread's set_link requests: the first error is raised."""
        sent = self._unsettled()
        answers, sent[:] = list(sent), []
        first: DrillError | None = None
        for answer in answers:
            try:
                answer.result(self._timeout_s)
            except DrillError as exc:
                first = first or exc
        if first is not None:
            raise first

    def _op(self, name: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        try:
            result = self._client.call("op", name, list(args), kwargs, timeout_s=timeout_s or self._timeout_s)
        except DrillError:
            self._settle()  # an earlier set_link's error is the cause: raised before this one
            raise
        self._settle()  # answered before this call was: no wait
        return result

    # links
    def set_link(self, node: str, ifname: str, *, up: bool) -> None:
        """Sent, not awaited (the seam's contract for set_link): its answer is taken with this
        thread's next operation, which the agent runs and answers after it (one lane, in
        order); an error of it is raised there. A link-down of both ends then costs one round
        trip for the two set_links and the first read-back together, not three."""
        self._unsettled().append(self._client.send("op", "set_link", [node, ifname], {"up": up}))

    def set_far_end(self, link: str, up: bool) -> None:
        """The carrier of this agent's node on a cross-host link (the hidden end of its veth):
        sent, not awaited, like `set_link`, and settled by this thread's next operation here."""
        self._unsettled().append(self._client.send("far_end", link, up))

    def link_state(self, node: str, ifname: str) -> LinkState:
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
    def apply_rules(self, tables: Sequence[Table]) -> None:
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

    def stop_all(self, node: str) -> int:
        return int(self._op("stop_all", node))

    def continue_all(self, node: str) -> None:
        self._op("continue_all", node)

    def boot(self, node: str) -> bool:
        return bool(self._op("boot", node))

    # services and exec
    def start_service(self, node: str, service: Service) -> int:
        timeout_s = self._timeout_s + (service.ready.timeout_s if service.ready else 0.0)
        return int(self._op("start_service", node, service, timeout_s=timeout_s))

    def stop_service(self, node: str, service: str) -> None:
        self._op("stop_service", node, service)

    def service_running(self, node: str, service: str) -> bool:
        return bool(self._op("service_running", node, service))

    def exec(self, node: str, command: str, timeout_s: float) -> ExecResult:
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
            self._unsettled().clear()

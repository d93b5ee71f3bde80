"""`drill agent`: the resident agent on one host of a run spread over several.

The controller starts it over SSH (no listening port: SSH authenticates) for the length of a
run and speaks frames on its stdin/stdout (drills.remote.protocol). The first thing it does is
move those two descriptors aside: frames go through private duplicates, fd 1 becomes stderr and
fd 0 /dev/null, so no stray print, and no child process (a service, an exec), can write into
or read from the channel.

Threads: the main one reads frames (and answers `time` itself, so a clock reading is never
queued behind an operation); two lanes run requests in order: probe requests in one, everything
else in the other (a fault's operation is never queued behind a probe's health read, nor the
reverse); the dead-man switch (drills.remote.deadman) tears the host's part down when the
controller is gone, unless the run is `drill up`'s.

Everything the agent creates is journaled in its host's run directory before it exists
(NetnsBackend does that), so `drill clean` on the host finishes whatever a SIGKILL interrupted.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from drills import __version__, realtime
from drills.backend import HostPart, LinkState, NodeOps, TeardownReport
from drills.clock import Clock, SystemClock
from drills.errors import BadInput, DrillError, EnvironmentProblem
from drills.netns.backend import NetnsBackend, host_capabilities, namespace_name
from drills.netns.part import PartOps, deploy_part, part_ops
from drills.remote import codec, protocol
from drills.remote.deadman import BUSY_WAIT_S, DEPLOY_WAIT_S, DeadMan
from drills.remote.frames import BadFrame, ChannelLost, FrameReader, FrameWriter
from drills.remote.probe_service import METHODS as PROBE_METHODS
from drills.remote.probe_service import ProbeService
from drills.runs import STATUS_RUNNING, STATUS_UP, Run, RunStore, check_run_id, state_dir_from_env
from drills.scenario.resolved import Topology

MODES = ("run", "up")
EXIT_LOST = 3  # the controller was lost: the part was torn down (or left, for `up`)
WRITE_STALL_S = 10.0  # a controller that takes no answer for this long is lost too
HOLD_SPIN_S = 0.0005  # a held request's last stretch, spun (see _hold)


@dataclass
class _Request:
    id: int
    method: str
    args: list[Any]
    kwargs: dict[str, Any]
    at_s: float | None = None  # this host's clock: not run before (protocol "at")


class Agent:
    """One agent: its channel, its host's run, backend, node operations and probe service."""

    def __init__(
        self, reader: FrameReader, writer: FrameWriter, clock: Clock | None = None, state_dir: Path | None = None
    ) -> None:
        self.reader = reader
        self.state_dir = state_dir  # `drill --state-dir D agent`; hello may name another
        self.writer = writer
        self.clock = clock or SystemClock()
        self.run: Run | None = None
        self.host = ""
        self.mode = "run"
        self.backend: NetnsBackend | None = None
        self.ops: NodeOps | None = None
        self.part_ops: PartOps | None = None  # the same object as `ops`, with the wire's far ends
        self.probes: ProbeService | None = None
        # (node, interface) -> the ends of its link on this host (both, or its own for a cross
        # link); cross link -> this host's end of it: what set_link and far_end read back.
        self.link_ends: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
        self.cross_end: dict[str, tuple[str, str]] = {}
        self.deployed = False
        self.exit_code: int | None = None
        self.done = threading.Event()
        self.busy = threading.Lock()  # held by the main lane while it acts (probe requests: their own lane)
        self.current = ""  # the main lane's request in progress ("" when idle)
        self.dying = threading.Event()
        self.deadman = DeadMan(protocol.DEADMAN_S, self._abandon, self.clock)
        self._lanes = {"main": queue.SimpleQueue[_Request | None](), "probe": queue.SimpleQueue[_Request | None]()}

    # ------------------------------------------------------------------ loop

    def serve(self) -> int:
        """Read frames until the controller says bye or is lost; the exit code."""
        for name, lane in self._lanes.items():
            lock = self.busy if name == "main" else threading.Lock()
            threading.Thread(target=self._lane, args=(lane, lock), name=f"lane-{name}", daemon=True).start()
        self.deadman.start()
        threading.Thread(target=self._read, name="frames", daemon=True).start()
        self.done.wait()
        return self.exit_code or 0

    def _read(self) -> None:
        try:
            while True:
                message = self.reader.read()
                if message is None:
                    self.deadman.lost("the controller's channel reached end of file")
                    return
                self.deadman.heard()
                if "hb" in message:
                    continue
                self._dispatch(message)
        except (BadFrame, ChannelLost) as exc:
            self.deadman.lost(f"the controller's channel broke: {exc}")

    def _dispatch(self, message: dict[str, Any]) -> None:
        received_s = self.clock.now_s()
        ident = message.get("id")
        if not isinstance(ident, int):
            log(f"a frame without a request id, ignored: {sorted(message)[:5]}")
            return
        method = str(message.get("method"))
        if method == "time":  # answered here: (received, sent) on this host's clock, never queued
            self._answer(ident, {"result": [received_s, self.clock.now_s()]})
            return
        try:
            args = codec.decode(message.get("args", []))
            kwargs = codec.decode(message.get("kwargs", {}))
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise BadFrame("a request's args are not a list, or its kwargs not an object")
        except BadFrame as exc:
            self._answer(ident, {"error": {"kind": "BackendError", "message": str(exc)}})
            return
        at = message.get("at")
        # Held at most MAX_HOLD_S past its arrival, whatever it asks: a request never blocks
        # its lane (nor the dead-man switch's wait for it) for long.
        at_s = min(float(at), received_s + protocol.MAX_HOLD_S) if isinstance(at, int | float) and math.isfinite(at) else None
        lane = "probe" if method == "probe" else "main"
        self._lanes[lane].put(_Request(ident, method, args, kwargs, at_s))

    def _lane(self, lane: queue.SimpleQueue[_Request | None], lock: threading.Lock) -> None:
        while (request := lane.get()) is not None:
            with lock:
                if self.dying.is_set():  # checked under the lock: the dead-man switch sets it under it too
                    answer: dict[str, Any] = {"error": {"kind": "BackendError", "message": "the agent is shutting down"}}
                else:
                    main = lock is self.busy
                    if main:
                        self.current = request.method
                    if request.at_s is not None:  # sent ahead: this host times it
                        _hold(self.clock, request.at_s)
                    started_s = self.clock.now_s()
                    # A timed change runs as the controller runs its own (above this host's
                    # probe senders); never the hold before it, which yields the processor.
                    with realtime.applying() if request.at_s is not None else contextlib.nullcontext():
                        answer = self._handle(request)
                    # When it ran on this host's clock: the controller places a fault's change
                    # by it (within the clock offset's bound), not by its own send and answer,
                    # which add the channel's round trip (protocol: "ran").
                    answer["ran"] = [started_s, self.clock.now_s()]
                    if main:
                        self.current = ""
            self._answer(request.id, answer)
            if request.method == "bye":  # whether its teardown worked or not: the channel ends
                self._finish(0 if "result" in answer else 1)

    def _handle(self, request: _Request) -> dict[str, Any]:
        handler: Callable[..., Any] | None = getattr(self, f"do_{request.method}", None)
        if handler is None:
            return {"error": {"kind": "BadInput", "message": f"no method {request.method!r}"}}
        try:
            return {"result": codec.encode(handler(*request.args, **request.kwargs))}
        except DrillError as exc:
            return {"error": {"kind": protocol.error_kind(exc), "message": str(exc)}}
        except Exception as exc:  # a bug: logged here, answered, and the loop goes on
            log(f"internal error in {request.method}:\n{traceback.format_exc()}")
            return {"error": {"kind": protocol.INTERNAL, "message": f"{type(exc).__name__}: {exc}"}}

    def _answer(self, ident: int, body: dict[str, Any]) -> None:
        try:
            self.writer.write({"id": ident, **body})
        except ChannelLost as exc:
            self.deadman.lost(f"cannot answer the controller: {exc}")

    def _finish(self, code: int) -> None:
        self.exit_code = code
        for lane in self._lanes.values():
            lane.put(None)
        self.done.set()

    # ------------------------------------------------------------------ requests

    def do_hello(self, run_id: str, host: str, mode: str, state_dir: str | None = None, **meta: Any) -> dict[str, Any]:
        """Open this host's run (the controller's run id), locked by the agent."""
        if os.geteuid() != 0:
            raise EnvironmentProblem(f"the agent on {host} runs as uid {os.geteuid()}, not root: become root (ansible_become)")
        if mode not in MODES:
            raise BadInput(f"mode {mode!r}: the agent runs for {' or '.join(MODES)}")
        if meta.get("version", protocol.VERSION) != protocol.VERSION:
            raise BadInput(f"the controller speaks protocol {meta['version']}, this agent {protocol.VERSION}: install the same drills")
        if self.run is not None:
            raise BadInput(f"hello twice: this agent serves run {self.run.run_id}")
        store = RunStore(Path(state_dir) if state_dir else state_dir_from_env(self.state_dir))
        scenario = str(meta.get("scenario", f"part of a run on {host}"))
        self.run = store.create(scenario, Path(str(meta.get("scenario_path", "-"))), run_id=check_run_id(run_id))
        self.host, self.mode = host, mode
        return {"version": __version__, "protocol": protocol.VERSION, "pid": os.getpid(), "capabilities": dict(host_capabilities())}

    def do_check(self) -> dict[str, Any]:
        """What `drill doctor --inventory` asks of a host: version, root, capabilities (no run)."""
        return {"version": __version__, "root": os.geteuid() == 0, "capabilities": dict(host_capabilities())}

    def do_deploy(self, topology: Topology, part: HostPart, seed: int | None = None) -> dict[str, str]:
        """Deploy this host's part; the engine serving each of its links."""
        run = self._run()
        if self.backend is not None:
            raise BadInput("deploy twice: tear down first")
        self.backend = NetnsBackend(log, run.dir, seed=seed, clock=self.clock)
        meta = run.meta()
        meta.nodes = {node: namespace_name(run.run_id, node) for node in part.nodes}
        run.write_meta(meta)
        deploy_part(self.backend, topology, part, run, log=log)
        self.ops = self.part_ops = part_ops(self.backend, topology, part, run, self.clock, log)
        self.link_ends, self.cross_end = _ends_here(topology, part)
        self.probes = ProbeService(self.ops, self.clock)
        self.deployed = True
        run.set_status(STATUS_RUNNING)
        return dict(self.backend.engines)

    def do_op(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """One NodeOps method (protocol.OP_METHODS) on the deployed part's NetnsOps."""
        return _call_allowed(self.ops, protocol.OP_METHODS, "node operation", name, args, kwargs)

    def do_probe(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """One ProbeService method (drills.remote.probe_service.METHODS)."""
        return _call_allowed(self.probes, PROBE_METHODS, "probe method", name, args, kwargs)

    def do_set_link(self, node: str, ifname: str, up: bool) -> tuple[float | None, list[tuple[str, str, LinkState]]]:
        """NodeOps.set_link, then the state of its link's ends on this host read back at once:
        the controller confirms the change from these readings, with no round trip more
        (drills.remote.agent_ops). A reading not yet settled (a relay's carrier follows late)
        makes the controller poll, as on one machine. Answered with when the kernel had made
        the change (its netlink acknowledgement, on this host's clock), if the reading of the
        interface set confirms it, else None."""
        if self.ops is None:
            raise BadInput("no part deployed on this host: deploy first")
        self.ops.set_link(node, ifname, up=up)
        changed_s = self.clock.now_s()
        ends = self.link_ends.get((node, ifname), ((node, ifname),))
        readings = [(n, i, self.ops.link_state(n, i)) for n, i in ends]
        shown = any((n, i) == (node, ifname) and state.admin_up == up for n, i, state in readings)
        return (changed_s if shown else None), readings

    def do_far_end(self, link: str, up: bool) -> tuple[float | None, list[tuple[str, str, LinkState]]]:
        """Set the hidden end of a cross link's veth (or TAP) on this host: the carrier of this host's
        node on that link (the other host cut, or restored, its own end); that node's interface
        read back, and when the change was made if that reading shows it, as for set_link."""
        if self.part_ops is None:
            raise BadInput("no part deployed on this host: deploy first")
        self.part_ops.set_far_end(link, up)
        changed_s = self.clock.now_s()
        end = self.cross_end.get(link)
        if end is None:
            return None, []
        state = self.part_ops.link_state(*end)
        return (changed_s if state.carrier == up else None), [(end[0], end[1], state)]

    def do_clean(self, run_id: str, state_dir: str | None = None) -> TeardownReport:
        """Tear down what run `run_id` left on this host, from its journal here (the controller
        cleaning after a crash: this agent was started for that alone). Nothing there: an empty
        report. A run still locked by a live agent is left to that agent."""
        store = RunStore(Path(state_dir) if state_dir else state_dir_from_env(self.state_dir))
        found = [run for run in store.runs() if run.run_id == check_run_id(run_id)]
        if not found:
            return TeardownReport()
        run = found[0]
        if not run.try_lock():
            raise EnvironmentProblem(f"run {run_id} on this host is in use by a live agent; it tears its part down itself")
        report = NetnsBackend(log).teardown(run)
        if report.clean:
            run.remove()
        else:
            run.unlock()
        return report

    def do_teardown(self) -> TeardownReport:
        """Stop the probes and remove everything the host's run journal lists; the run
        directory goes too when nothing was left."""
        run = self._run()
        report = self._teardown(run)
        if report.clean:
            self.run = None
        return report

    def do_bye(self, keep: bool = False) -> None:
        """The end of the channel: keep the part up (`drill up`: unlocked, status up) or tear it
        down (when the controller did not already)."""
        self.deadman.disarm()
        if self.run is None:
            return
        if keep:
            self.run.set_status(STATUS_UP)
            self.run.unlock()
        else:
            self._teardown(self.run)

    # ------------------------------------------------------------------ helpers

    def _run(self) -> Run:
        if self.run is None:
            raise BadInput("no run on this host: hello first")
        return self.run

    def _teardown(self, run: Run, remove: bool = True) -> TeardownReport:
        # Stopping probes and closing handles may fail; the teardown must happen regardless.
        for what, release in (("stopping the probes", self.probes and self.probes.stop_all), ("closing the node handles", self.ops and self.ops.close)):
            try:
                if release:
                    release()
            except Exception:
                log(f"{what} failed (tearing down anyway):\n{traceback.format_exc()}")
        self.ops = self.part_ops = self.probes = None
        report = (self.backend or NetnsBackend(log)).teardown(run)
        self.backend = None
        if report.clean and remove:
            run.remove()
        else:
            run.unlock()  # `drill clean` on the host finishes it
            for left in report.left:
                log(f"left behind: {left}")
        return report

    def _abandon(self, reason: str) -> None:
        """The dead-man switch fired: tear the part down (or leave it, for `drill up`), exit."""
        log(f"controller lost ({reason})")
        self.dying.set()
        acquired = self.busy.acquire(timeout=BUSY_WAIT_S)
        if not acquired and self.current == "deploy":
            # Tearing down under a deploy would miss what it creates next: let it end first.
            log(f"a deploy is in progress: waiting for it (at most {DEPLOY_WAIT_S:g} s)")
            acquired = self.busy.acquire(timeout=DEPLOY_WAIT_S)
        if not acquired:
            log(f"request {self.current or '?'} still runs: tearing down under it")
        try:
            run = self.run
            if run is not None and self.mode == "up" and self.deployed:
                run.set_status(STATUS_UP)
                run.unlock()
                log(f"run {run.run_id} is `drill up`'s: its part stays up (drill down / drill clean --all)")
            elif run is not None:
                # Under a request still running, keep the run directory even when clean: what it
                # journals next must stay findable by `drill clean`.
                report = self._teardown(run, remove=acquired)
                log(f"run {run.run_id}: part torn down ({len(report.removed)} objects removed, {len(report.left)} left)")
        except Exception:  # whatever happens, exit: a later `drill clean` finishes from the journal
            log(f"tearing down after the loss failed:\n{traceback.format_exc()}")
        finally:
            if acquired:
                self.busy.release()
        self._finish(EXIT_LOST)


def _hold(clock: Clock, instant_s: float) -> None:
    """Wait for a held request's instant: asleep until HOLD_SPIN_S before it, then yielding
    the processor in a loop. Shorter than the clock's own precise wait (2 ms): two agents
    spinning at once on a small machine took the processor from their hosts' probes, and the
    sender's lateness is part of every figure's accuracy."""
    remaining_s = instant_s - clock.now_s()
    if remaining_s > HOLD_SPIN_S:
        clock.sleep_until(instant_s - HOLD_SPIN_S)
    clock.sleep_until(instant_s, precise=True)


def _ends_here(
    topology: Topology, part: HostPart
) -> tuple[dict[tuple[str, str], tuple[tuple[str, str], ...]], dict[str, tuple[str, str]]]:
    """Per interface of this host's nodes, the ends of its link here; per cross link, its end
    here."""
    here = set(part.nodes)
    ends: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
    for link in topology.links:
        mine = tuple((end.node, end.name) for end in (link.a, link.b) if end.node in here)
        ends.update(dict.fromkeys(mine, mine))
    return ends, {end.link: (end.node, end.ifname) for end in part.cross}


def _call_allowed(target: object, allowed: frozenset[str], what: str, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if name not in allowed:
        raise BadInput(f"{what} {name!r} is not one the agent performs")
    if target is None:
        raise BadInput("no part deployed on this host: deploy first")
    return getattr(target, name)(*args, **kwargs)


def log(message: str) -> None:
    """The agent's log: its stderr, which the controller forwards prefixed with the host. Never
    raises: once the controller is gone its stderr is a broken pipe, and the dead-man switch
    must still run to the end."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


def serve(state_dir: Path | None = None) -> int:
    """`drill agent`: take the channel off fds 0 and 1 first, then serve it. `state_dir`: where
    the host's run directories go when hello names none (default: $DRILLS_STATE_DIR or
    /var/lib/drills, as for every drill command)."""
    # As the drill's own process does while its clock runs (drills.engine.drill): a request
    # handed from the frame reader to a lane, and a probe's sender, wait for the interpreter
    # lock at most this long instead of the default 5 ms.
    sys.setswitchinterval(0.0002)
    frames_in, frames_out = os.dup(0), os.dup(1)  # non-inheritable: children never get them
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    agent = Agent(FrameReader(frames_in), FrameWriter(frames_out, stall_s=WRITE_STALL_S), state_dir=state_dir)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        agent.deadman.lost(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    return agent.serve()


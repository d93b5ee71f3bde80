"""`drill agent` against a real kernel, started locally as the controller would over SSH: its node
operations through AgentOps, its clock offset, its error answers; and its dead-man switch (the
channel closed, the channel silent, the controller SIGKILLed): the host's part is gone, run
directory and all, within the stated 5 s (polled with a 10 s cap; the figure itself is not
asserted), except for `drill up`, whose part stays until `drill down`."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from drills import lifecycle
from drills.backend import HostPart, LinkState, NodeOps
from drills.errors import BackendError, BadInput, EnvironmentProblem
from drills.remote import codec, protocol
from drills.remote.agent import EXIT_LOST
from drills.remote.agent_ops import AgentOps
from drills.remote.client import AgentClient, AgentTimeout
from drills.remote.frames import ChannelLost, FrameReader, FrameWriter
from drills.remote.offset import estimate
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.scenario.resolved import Topology

pytestmark = pytest.mark.netns

AGENT = [sys.executable, "-m", "drills", "agent"]
GONE_CAP_S = 10.0  # the stated bound is 5 s; the poll gives a loaded machine twice that
RUN_ID = "a9e000"


def two_nodes(tmp_path: Path) -> Topology:
    path = tmp_path / "pair.yaml"
    topology = {"nodes": {"a": {}, "b": {}}, "links": [{"name": "ab", "endpoints": ["a:e1", "b:e1"]}]}
    path.write_text(yaml.safe_dump({"version": 1, "name": "pair", "topology": topology}))
    return load_scenario(path).topology


def namespaces(run_id: str) -> list[str]:
    netns = Path("/run/netns")
    return sorted(n for n in os.listdir(netns) if n.startswith(f"drill-{run_id}-")) if netns.is_dir() else []


def wait_until(condition: Any, cap_s: float = GONE_CAP_S) -> bool:
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


class RawController:
    """The controller's end spoken by hand, its heartbeats stopped at will (`go_silent`): what a
    hung or dying controller leaves. (Heartbeats until then: hello alone may take 2 s here.)"""

    def __init__(self) -> None:
        self.process = subprocess.Popen(AGENT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        assert self.process.stdin and self.process.stdout
        self.writer = FrameWriter(self.process.stdin.fileno())
        self.reader = FrameReader(self.process.stdout.fileno())
        self.ids = 0
        self._silent = threading.Event()
        self._beats = threading.Thread(target=self._beat, daemon=True)
        self._beats.start()

    def _beat(self) -> None:
        while not self._silent.wait(protocol.HEARTBEAT_S):
            try:
                self.writer.write({"hb": 0})
            except ChannelLost:
                return  # the agent is gone: the test reports why

    def go_silent(self) -> None:
        self._silent.set()
        self._beats.join(10)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.ids += 1
        self.writer.write({"id": self.ids, "method": method, "args": codec.encode(list(args)), "kwargs": codec.encode(kwargs)})
        while True:
            answer = self.reader.read()
            assert answer is not None, "the agent closed its channel"
            if answer.get("id") == self.ids:
                assert "error" not in answer, answer
                return codec.decode(answer["result"])

    def kill(self) -> None:
        self.go_silent()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def deploy(controller: Any, tmp_path: Path, state_dir: Path, hello: bool = True) -> None:
    if hello:
        controller.call("hello", RUN_ID, "h1", "run", str(state_dir))
    engines = controller.call("deploy", two_nodes(tmp_path), HostPart("h1", ("a", "b")), 7)
    assert engines == {"ab": "kernel"}
    assert namespaces(RUN_ID) == [f"drill-{RUN_ID}-a", f"drill-{RUN_ID}-b"]


def test_agent_ops_through_a_local_agent(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    lines: list[str] = []
    client = AgentClient("h1", AGENT, lines.append)
    try:
        hello = client.call("hello", RUN_ID, "h1", "run", str(state_dir))
        assert hello["pid"] == client.process.pid and hello["capabilities"]["network namespaces"]
        deploy(client, tmp_path, state_dir, hello=False)
        ops: NodeOps = AgentOps(client)
        ops.warm()
        assert ops.link_state("a", "e1") == LinkState(True, True)
        ops.set_link("a", "e1", up=False)
        assert wait_until(lambda: ops.link_state("b", "e1") == LinkState(True, False), 5.0)
        assert ops.link_state("a", "e1").admin_up is False
        ops.set_link("a", "e1", up=True)
        assert wait_until(lambda: ops.link_state("b", "e1") == LinkState(True, True), 5.0)
        result = ops.exec("a", "ip -br link show e1; echo err >&2; exit 3", 10.0)
        assert result.returncode == 3 and "e1" in result.stdout and result.stderr == "err\n"
        assert ops.link_engine("ab") == "kernel"
        assert ops.processes("a") == []
        # set_link is sent, not awaited: its error comes with the thread's next operation
        ops.set_link("a", "nope", up=False)
        with pytest.raises(BackendError, match=r"^h1: .*nope"):
            ops.link_state("a", "e1")
        assert ops.link_state("a", "e1") == LinkState(True, True)
        # errors come back as the error tree's classes, prefixed with the host
        with pytest.raises(BackendError, match=r"^h1: "):
            ops.link_state("a", "nope")
        with pytest.raises(BadInput, match=r"^h1: node operation 'open_socket' is not one the agent performs"):
            client.call("op", "open_socket", ["a", 2, 2], {})
        with pytest.raises(BadInput, match=r"^h1: no method 'frobnicate'"):
            client.call("frobnicate")
        # a bug in the agent (here: a call with missing arguments) is answered, logged with its
        # traceback on the host, and the loop goes on
        with pytest.raises(BackendError, match=r"^h1: internal error in the agent: TypeError"):
            client.call("op", "link_state", [], {})
        assert wait_until(lambda: any("h1: internal error in op" in line for line in lines), 5.0)
        assert ops.link_state("a", "e1").admin_up
        with pytest.raises(BackendError, match="cannot cross"):
            ops.open_socket("a", __import__("socket").AF_INET, __import__("socket").SOCK_DGRAM)
        offset = estimate(client, rounds=16)
        assert abs(offset.offset_s) <= offset.bound_s + 1e-6  # one machine, one monotonic clock
        assert offset.bound_s < 0.05
        # The agent stamps when it ran each operation; with its clock known, a thread's
        # operations are placed on the drill clock within the offset's bound: never before they
        # were sent nor after they were answered, give or take that bound twice (the stamp's
        # own error and the bound added to it).
        timed = AgentOps(client, clock=offset)
        assert timed.take_span() is None  # nothing ran yet
        before_s = client.clock.now_s()
        timed.set_link("a", "e1", up=False)
        assert timed.link_state("b", "e1") == LinkState(True, False)
        after_s = client.clock.now_s()
        span = timed.take_span()
        assert span is not None
        assert before_s - 2 * offset.bound_s <= span.start_s <= span.first_change_s <= span.end_s <= after_s + 2 * offset.bound_s, (before_s, span, after_s)
        assert timed.take_span() is None  # taken: the next action starts afresh
        # Without its clock the agent's instants place nothing: the whole line.
        untimed = AgentOps(client)
        untimed.set_link("a", "e1", up=True)
        assert untimed.link_state("b", "e1") == LinkState(True, True)
        assert untimed.take_span() == (-math.inf, math.inf, math.inf)
        ops.close()
        report = client.call("teardown")
        assert report.clean and f"namespace drill-{RUN_ID}-a" in report.removed
        assert not (state_dir / "runs" / RUN_ID).exists()
    finally:
        code = client.close()
    assert code == 0
    assert namespaces(RUN_ID) == []
    with pytest.raises(BackendError, match="h1: the agent's channel is lost"):
        client.call("time")


def test_calls_from_many_threads_timeouts_and_a_late_answer(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    client = AgentClient("h1", AGENT, lambda _line: None)
    try:
        deploy(client, tmp_path, state_dir)
        ops = AgentOps(client)
        failures: list[BaseException] = []

        def hammer(node: str) -> None:
            try:
                for _ in range(40):
                    assert ops.link_state(node, "e1") == LinkState(True, True)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        threads = [threading.Thread(target=hammer, args=(node,)) for node in ("a", "b", "a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not failures
        # probe requests have their own lane: answered while a long operation holds the main one
        # (false failure only if the agent takes over 3 s to answer `health`)
        slow = client.send("op", "exec", ["a", "sleep 3", 10.0], {})
        assert client.call("probe", "health", [0.0], {}, timeout_s=10) == []
        assert client.call("time", timeout_s=10)  # and the clock is read at once too
        assert not slow.answered
        assert slow.result(timeout_s=15).returncode == 0
        with pytest.raises(AgentTimeout, match=r"^h1: no answer to op within 0.2 s"):
            client.call("op", "exec", ["a", "sleep 1", 5.0], {}, timeout_s=0.2)
        # the channel still works; the late answer (after the exec) is dropped
        assert client.call("op", "link_state", ["a", "e1"], {}, timeout_s=10) == LinkState(True, True)
        assert client.call("teardown").clean
    finally:
        assert client.close() == 0


def test_an_agent_that_cannot_start_is_a_lost_channel_with_its_reason() -> None:
    lines: list[str] = []
    client = AgentClient("h3", [sys.executable, "-c", "import sys; sys.stderr.write('ssh: connect to host h3 port 22: Connection refused\\n'); sys.exit(255)"], lines.append)
    with pytest.raises(BackendError, match=r"^h3: the agent's channel .*status 255: ssh: connect to host h3 port 22: Connection refused"):
        client.call("hello", RUN_ID, "h3", "run", None)
    assert client.close() == 255
    assert "h3: ssh: connect to host h3 port 22: Connection refused" in lines
    with pytest.raises(BackendError, match="cannot start the agent"):
        AgentClient("h4", ["/nonexistent/drill", "agent"], lines.append)


def test_heartbeats_keep_an_idle_agent_alive(state_dir: Path) -> None:
    """Idle for 1.5 dead-man windows: the client's heartbeats alone keep the agent serving.
    (And hello naming no state directory: the agent's --state-dir is used.)"""
    client = AgentClient("h1", [*AGENT, "--state-dir", str(state_dir)], lambda _line: None)
    try:
        client.call("hello", RUN_ID, "h1", "up", None)
        assert (state_dir / "runs" / RUN_ID).is_dir()
        time.sleep(protocol.DEADMAN_S * 1.5)
        assert client.process.poll() is None and client.lost is None
        assert len(client.call("time")) == 2
        client.call("teardown")
    finally:
        assert client.close() == 0
    assert not (state_dir / "runs" / RUN_ID).exists()


def test_hello_is_checked(state_dir: Path) -> None:
    with AgentClient("h1", AGENT, lambda _line: None) as client:
        with pytest.raises(BadInput, match=r"h1: .*not a run id"):
            client.call("hello", "../etc", "h1", "run", str(state_dir))
        with pytest.raises(BadInput, match="h1: mode 'walk'"):
            client.call("hello", RUN_ID, "h1", "walk", str(state_dir))
        with pytest.raises(BadInput, match="h1: no run on this host: hello first"):
            client.call("deploy", None, HostPart("h1", ()), None)
        with pytest.raises(BadInput, match="no part deployed"):
            client.call("op", "link_state", ["a", "e1"], {})
    assert client.process.returncode == 0


def test_an_agent_not_running_as_root_refuses_hello(state_dir: Path) -> None:
    client = AgentClient("h2", ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *AGENT], lambda _line: None)
    try:
        with pytest.raises(EnvironmentProblem, match=r"^h2: the agent on h2 runs as uid 65534, not root"):
            client.call("hello", RUN_ID, "h2", "run", str(state_dir))
        assert not (state_dir / "runs").exists()
    finally:
        assert client.close() == 0


def test_stray_output_never_reaches_the_channel(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """The agent's fd 0 is /dev/null and its fd 1 its stderr (what a print, or a child that
    inherits them, would use): the frames travel on private duplicates."""
    client = AgentClient("h1", AGENT, lambda _line: None)
    try:
        deploy(client, tmp_path, state_dir)
        fds = Path(f"/proc/{client.process.pid}/fd")
        assert os.readlink(fds / "0") == "/dev/null"
        assert os.readlink(fds / "1") == os.readlink(fds / "2")
        result = AgentOps(client).exec("a", "echo to-stdout; echo to-stderr >&2", 5.0)
        assert (result.stdout, result.stderr) == ("to-stdout\n", "to-stderr\n")
        assert client.call("time") and client.call("teardown").clean
    finally:
        assert client.close() == 0


def assert_torn_down(state_dir: Path) -> None:
    assert wait_until(lambda: namespaces(RUN_ID) == []), f"namespaces remain after {GONE_CAP_S} s: {namespaces(RUN_ID)}"
    assert wait_until(lambda: not (state_dir / "runs" / RUN_ID).exists()), "the run directory remains"


@pytest.mark.parametrize("how", ["close", "silence", "sigterm"])
def test_dead_man_switch_tears_the_part_down(how: str, tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    controller = RawController()
    try:
        deploy(controller, tmp_path, state_dir)
        controller.go_silent()
        if how == "close":  # both pipes closed: the agent reads end of file at once
            assert controller.process.stdin and controller.process.stdout
            controller.process.stdin.close()
            controller.process.stdout.close()
        elif how == "sigterm":
            controller.process.terminate()
        # "silence": the pipes stay open, no heartbeat comes: the agent gives up after 2 s
        assert_torn_down(state_dir)
        assert controller.process.wait(GONE_CAP_S) == EXIT_LOST
    finally:
        controller.kill()


def test_a_controller_lost_during_a_deploy_leaves_nothing(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """The loss arrives while the part deploys (or before it starts: the agent then refuses it):
    either way nothing the deploy creates outlives the agent."""
    path = tmp_path / "ring.yaml"
    ring = {"nodes": {f"n{i}": {} for i in range(20)}, "links": [{"endpoints": [f"n{i}:r", f"n{(i + 1) % 20}:l"]} for i in range(20)]}
    path.write_text(yaml.safe_dump({"version": 1, "name": "ring", "topology": ring}))
    topology = load_scenario(path).topology
    controller = RawController()
    try:
        controller.call("hello", RUN_ID, "h1", "run", str(state_dir))
        part = HostPart("h1", tuple(node.name for node in topology.nodes))
        controller.writer.write({"id": 99, "method": "deploy", "args": codec.encode([topology, part, 1]), "kwargs": {}})
        controller.go_silent()
        assert controller.process.stdin and controller.process.stdout
        controller.process.stdin.close()
        controller.process.stdout.close()
        assert controller.process.wait(60) == EXIT_LOST
        assert_torn_down(state_dir)
    finally:
        controller.kill()


CONTROLLER = """
import sys, time
from pathlib import Path
from drills.backend import HostPart
from drills.remote.client import AgentClient, AgentTimeout
from drills.scenario import load_scenario
client = AgentClient("h1", [sys.executable, "-m", "drills", "agent"], lambda line: None)
client.call("hello", sys.argv[1], "h1", sys.argv[2], sys.argv[3])
client.call("deploy", load_scenario(Path(sys.argv[4])).topology, HostPart("h1", ("a", "b")), 1)
print("deployed", client.process.pid, flush=True)
time.sleep(600)
"""


def controller_with_agent(tmp_path: Path, state_dir: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    two_nodes(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, RUN_ID, mode, str(state_dir), str(tmp_path / "pair.yaml")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded by the deploy's own timeouts in the controller
    assert line.startswith("deployed"), line
    return proc, int(line.split()[1])


def test_sigkill_of_the_controller_tears_the_part_down(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    proc, agent_pid = controller_with_agent(tmp_path, state_dir, "run")
    try:
        assert namespaces(RUN_ID)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert_torn_down(state_dir)
        assert wait_until(lambda: not Path(f"/proc/{agent_pid}").exists() or _zombie(agent_pid)), "the agent still runs"
    finally:
        reap(proc)


def reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_drill_clean_finishes_after_the_agent_itself_is_killed(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """SIGKILL of the agent (no dead-man switch can run): its journal is on the host, its lock
    died with it, and `drill clean` there removes the part."""
    client = AgentClient("h1", AGENT, lambda _line: None)
    try:
        deploy(client, tmp_path, state_dir)
        assert lifecycle.clean(state_dir).skipped == {RUN_ID: f"in use by live process {client.process.pid}"}
        client.process.kill()
        client.process.wait(10)
    finally:
        client.close()
    assert namespaces(RUN_ID)
    report = lifecycle.clean(state_dir)
    assert report.clean and RUN_ID in report.cleaned
    assert namespaces(RUN_ID) == [] and not (state_dir / "runs" / RUN_ID).exists()


def assert_left_up(state_dir: Path) -> None:
    assert namespaces(RUN_ID) == [f"drill-{RUN_ID}-a", f"drill-{RUN_ID}-b"]
    run = RunStore(state_dir).get(RUN_ID)
    meta = run.meta()
    assert meta.status == "up" and meta.nodes == {"a": f"drill-{RUN_ID}-a", "b": f"drill-{RUN_ID}-b"}
    assert run.try_lock(), "the agent left the run locked"
    run.unlock()


def test_a_drill_up_part_survives_its_controller(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    proc, agent_pid = controller_with_agent(tmp_path, state_dir, "up")
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_until(lambda: not Path(f"/proc/{agent_pid}").exists() or _zombie(agent_pid)), "the agent still runs"
        assert_left_up(state_dir)
    finally:
        reap(proc)
        lifecycle.down(state_dir, RUN_ID)
    assert namespaces(RUN_ID) == []


def test_bye_keep_leaves_a_drill_up_part_for_drill_down(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    try:
        with AgentClient("h1", AGENT, lambda _line: None) as client:
            client.call("hello", RUN_ID, "h1", "up", str(state_dir))
            client.call("deploy", two_nodes(tmp_path), HostPart("h1", ("a", "b")), 7)
            assert client.close(keep=True) == 0
        assert_left_up(state_dir)
        assert [view.meta.run_id for view in lifecycle.list_runs(state_dir)] == [RUN_ID]
    finally:
        lifecycle.down(state_dir, RUN_ID)
    assert namespaces(RUN_ID) == []

"""The namespace backend's impairment operation on a userspace link: through the relay's control
channel (here a real control socket served in-process by a stand-in relay), a ramp put in at its
start, no impairment meaning pass-through; one connection per thread, a dead thread's closed
when the next thread connects, all closed by `close`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_relay_protocol import Bench, FakeRelay

from drills.backend import Impairment
from drills.clock import FakeClock
from drills.impairment import Settings
from drills.netns.ops import NetnsOps
from drills.scenario import load_scenario, model
from drills.scenario.resolved import Scenario
from drills.userspace.impair import Impairments

SCENARIO = """version: 1
name: ops-impair
topology:
  nodes: {a: {}, b: {}}
  links: [{name: wire, endpoints: [a:e1, b:e1], engine: userspace}]
"""


class ServedRelay:
    """A stand-in relay's control socket for link `wire`, pumped by a thread until `stop`."""

    def __init__(self, run_dir: Path) -> None:
        self.bench = Bench(run_dir)
        self.server = self.bench.server
        self.relay = self.server.relay
        assert isinstance(self.relay, FakeRelay)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.bench.pump(1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.server.close()


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[tuple[Scenario, NetnsOps, ServedRelay]]:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    sc = load_scenario(path)
    served = ServedRelay(tmp_path)
    run: Any = SimpleNamespace(dir=tmp_path)  # the operation needs only the run's directory
    namespaces = {"a": "drilltest-none-a", "b": "drilltest-none-b"}  # never entered: no kernel path here
    ops = NetnsOps(run, sc.topology, namespaces, {"wire": "userspace"}, FakeClock(), lambda _m: None, None)  # type: ignore[arg-type]
    try:
        yield sc, ops, served
    finally:
        ops.close()
        served.stop()


def test_the_relay_gets_a_ramp_at_its_start_and_none_as_pass_through(
    bed: tuple[Scenario, NetnsOps, ServedRelay],
) -> None:
    sc, ops, served = bed
    wire = sc.topology.link("wire")
    ramp = model.Ramp.model_validate({"from": "10ms", "to": "600ms", "over": "30s"})
    ops.impair([Impairment(wire, "a-to-b", Settings(delay_s=0.3, loss_pct=1.0, ramp=ramp))])
    assert served.relay.params["a-to-b"] == Impairments(delay_s=0.01, loss_pct=1.0)
    ops.impair([Impairment(wire, "a-to-b", None), Impairment(wire, "b-to-a", Settings(rate_bps=1_000_000))])
    assert served.relay.params == {"a-to-b": Impairments(), "b-to-a": Impairments(rate_bps=1_000_000)}


def test_each_thread_its_own_connection_and_none_left_after_close(bed: tuple[Scenario, NetnsOps, ServedRelay]) -> None:
    sc, ops, served = bed
    wire = sc.topology.link("wire")

    def change(delay_s: float) -> None:
        ops.impair([Impairment(wire, "a-to-b", Settings(delay_s=delay_s), in_place=True)])

    change(0.001)
    for delay_s in (0.002, 0.003):  # two driver threads, one after the other
        thread = threading.Thread(target=change, args=(delay_s,))
        thread.start()
        thread.join(5.0)
    assert served.relay.params["a-to-b"] == Impairments(delay_s=0.003)
    assert served.server.counters.accepted == 3
    # The first driver's connection was closed when the second connected; this thread's stays.
    registry = ops._relay_registry()
    assert len(registry) == 2 and registry[0][0] is threading.current_thread()
    ops.close()
    assert ops._relay_registry() == []
    change(0.004)  # a fresh connection after close
    assert served.relay.params["a-to-b"] == Impairments(delay_s=0.004)

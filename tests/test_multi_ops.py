"""MultiHostOps's dispatch by node and its far-end cuts, against recording fakes of each host's
operations (the real path, over SSH to real agents, is tests/test_hosts_drills.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drills.backend import LinkState, OpsSpan
from drills.remote.multi_ops import MultiHostOps
from drills.scenario import load_scenario

HOST_OF = {"a": "h1", "c": "h1", "b": "h2"}


class Recorder:
    """A host's operations: records every call as (host, method, args)."""

    def __init__(self, host: str, calls: list[tuple[Any, ...]]) -> None:
        self.host, self.calls = host, calls

    def set_link(self, node: str, ifname: str, *, up: bool) -> None:
        self.calls.append((self.host, "set_link", node, ifname, up))

    def link_state(self, node: str, ifname: str) -> LinkState:
        self.calls.append((self.host, "link_state", node, ifname))
        return LinkState(True, True)


@pytest.fixture
def ops(tmp_path: Path) -> tuple[MultiHostOps, list[tuple[Any, ...]]]:
    path = tmp_path / "s.yaml"
    topology = {
        "nodes": {"a": {}, "b": {}, "c": {}},
        "links": [{"name": "ab", "endpoints": ["a:e1", "b:e1"]}, {"name": "ac", "endpoints": ["a:e2", "c:e2"]}],
    }
    path.write_text(yaml.safe_dump({"version": 1, "name": "t", "topology": topology}))
    calls: list[tuple[Any, ...]] = []
    hosts = {host: Recorder(host, calls) for host in ("h1", "h2")}

    def far_end(host: str, link: str, up: bool) -> None:
        calls.append((host, "far_end", link, up))

    multi = MultiHostOps(load_scenario(path).topology, HOST_OF, hosts, ["ab"], far_end, {"ab": "kernel", "ac": "kernel"})  # type: ignore[arg-type]
    return multi, calls


def test_cutting_one_end_cuts_the_far_nodes_carrier_once_the_thread_goes_on(ops: tuple[MultiHostOps, list[tuple[Any, ...]]]) -> None:
    multi, calls = ops
    multi.set_link("a", "e1", up=False)
    assert calls == [("h1", "set_link", "a", "e1", False)]  # the far end waits for the next operation
    multi.link_state("b", "e1")
    assert calls[1:] == [("h2", "far_end", "ab", False), ("h2", "link_state", "b", "e1")]
    calls.clear()
    multi.set_link("a", "e1", up=True)
    multi.take_span()
    assert calls == [("h1", "set_link", "a", "e1", True), ("h2", "far_end", "ab", True)]


def test_a_cut_of_both_ends_leaves_the_far_ends_alone(ops: tuple[MultiHostOps, list[tuple[Any, ...]]]) -> None:
    # Each end is down on its own host: each node already shows no carrier; closing the hidden
    # ends too would only cost kernel time. Restored likewise: they were never cut.
    multi, calls = ops
    multi.set_link("a", "e1", up=False)
    multi.set_link("b", "e1", up=False)
    multi.link_state("a", "e1")
    multi.set_link("a", "e1", up=True)
    multi.set_link("b", "e1", up=True)
    multi.link_state("a", "e1")
    assert [c for c in calls if c[1] == "far_end"] == []
    assert [c[:2] for c in calls] == [("h1", "set_link"), ("h2", "set_link"), ("h1", "link_state"), ("h1", "set_link"), ("h2", "set_link"), ("h1", "link_state")]


def test_a_link_on_one_host_has_no_far_end(ops: tuple[MultiHostOps, list[tuple[Any, ...]]]) -> None:
    multi, calls = ops
    multi.set_link("a", "e2", up=False)
    multi.set_link("a", "e2", up=True)
    multi.take_span()
    assert calls == [("h1", "set_link", "a", "e2", False), ("h1", "set_link", "a", "e2", True)]


def test_the_far_end_goes_out_before_the_due_instant_changes(ops: tuple[MultiHostOps, list[tuple[Any, ...]]]) -> None:
    multi, calls = ops
    multi.set_link("b", "e1", up=False)
    multi.due_at(None)
    assert calls == [("h2", "set_link", "b", "e1", False), ("h1", "far_end", "ab", False)]


class _Timed(Recorder):
    """A host's operations with its agent's stamps (drills.backend.TimedOps): a preset span."""

    def __init__(self, host: str, calls: list[tuple[Any, ...]], span: OpsSpan) -> None:
        super().__init__(host, calls)
        self.span = span

    def lead_s(self) -> float:
        return 0.02

    def due_at(self, instant_s: float | None) -> None:
        pass

    def take_span(self) -> OpsSpan | None:
        return self.span


def test_the_span_over_hosts_is_the_earliest_start_the_latest_end_and_the_earliest_first_change(tmp_path: Path) -> None:
    # h1 ran late (its host busy): the cut took effect when h2 confirmed its end, 1.5 ms in,
    # though the last read-back, h1's, came at 4 ms.
    path = tmp_path / "s.yaml"
    topology = {"nodes": {"a": {}, "b": {}}, "links": [{"name": "ab", "endpoints": ["a:e1", "b:e1"]}]}
    path.write_text(yaml.safe_dump({"version": 1, "name": "t", "topology": topology}))
    calls: list[tuple[Any, ...]] = []
    hosts = {"h1": _Timed("h1", calls, OpsSpan(1.002, 1.004, 1.003)), "h2": _Timed("h2", calls, OpsSpan(1.0, 1.002, 1.0015))}
    multi = MultiHostOps(load_scenario(path).topology, HOST_OF, hosts, ["ab"], lambda *_: None, {"ab": "kernel"})  # type: ignore[arg-type]
    assert multi.take_span() == OpsSpan(1.0, 1.004, 1.0015)

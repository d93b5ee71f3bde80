"""What the agent deploys of a topology when its host holds only some nodes (no kernel): its
nodes and the links with both ends among them; a link half here with no cross end, or a node the
topology lacks, is refused before anything is created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from drills.backend import CrossEnd, HostPart
from drills.errors import BackendError, BadInput
from drills.remote.agent import Agent, deploy_part, local_part
from drills.remote.frames import FrameReader, FrameWriter
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.scenario.resolved import Topology


def line(tmp_path: Path) -> Topology:
    path = tmp_path / "line.yaml"
    topology = {
        "nodes": {"a": {}, "b": {}, "c": {}},
        "links": [{"name": "ab", "endpoints": ["a:e1", "b:e1"]}, {"name": "bc", "endpoints": ["b:e2", "c:e1"]}],
    }
    path.write_text(yaml.safe_dump({"version": 1, "name": "line", "topology": topology}))
    return load_scenario(path).topology


def test_local_part_keeps_its_nodes_and_their_local_links(tmp_path: Path) -> None:
    topology = line(tmp_path)
    part = local_part(topology, HostPart("h1", ("a", "b"), (CrossEnd("bc", "b", "e2", 2, "10.0.0.1", "10.0.0.2", 14789, 1450),)))
    assert [node.name for node in part.nodes] == ["a", "b"]
    assert [link.name for link in part.links] == ["ab"]
    assert part.node("b") == topology.node("b")  # addresses and routes as resolved for the whole
    assert local_part(topology, HostPart("h1", ("a", "b", "c"))) == topology


def test_a_part_that_disagrees_with_the_topology_is_refused(tmp_path: Path) -> None:
    topology = line(tmp_path)
    with pytest.raises(BadInput, match="part of host h1: link bc has one end here and no cross end"):
        local_part(topology, HostPart("h1", ("a", "b")))
    with pytest.raises(BadInput, match="part of host h1: no node x, y in the topology"):
        local_part(topology, HostPart("h1", ("a", "x", "y")))
    with pytest.raises(BackendError, match="host h1: cross-host links are not in this build"):
        deploy_part(None, topology, HostPart("h1", ("b",), (CrossEnd("ab", "b", "e1", 1, "1.1.1.1", "2.2.2.2", 14789, 1450),)), None)  # type: ignore[arg-type]


def test_a_probe_service_that_fails_to_stop_never_prevents_the_teardown(tmp_path: Path) -> None:
    class Broken:
        def stop_all(self) -> None:
            raise RuntimeError("stuck")

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    run = RunStore(state).create("part", tmp_path, run_id="ab0001")
    read_fd, write_fd = os.pipe()
    try:
        agent = Agent(FrameReader(read_fd), FrameWriter(write_fd))
        agent.run, agent.probes = run, Broken()  # type: ignore[assignment]
        report = agent.do_teardown()
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert report.clean and agent.run is None and agent.probes is None
    assert not run.dir.exists()

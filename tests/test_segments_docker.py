"""A LAN segment with container members and a namespace member in one testbed: containers get
their segment ports as veth ends moved in, like their links; a member port down cuts only that
container; a container's node-loss takes its port down and its restore brings the port into the
container's new namespace, addressed again."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from docker_testing import containerise, docker_engine_fixture, docker_leftovers_fixture, write  # noqa: F401

from drills import lifecycle
from drills.clock import SystemClock
from drills.docker.backend import DockerBackend
from drills.docker.ops import DockerOps
from drills.engine.fault import FaultContext
from drills.engine.link_faults import link_down
from drills.engine.node_faults import NodeLoss
from drills.netns.segments import segment_namespace, segment_namespaces
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.scenario.steps import NodeLossStep, SegmentDownStep

pytestmark = [pytest.mark.docker, pytest.mark.netns, pytest.mark.usefixtures("docker_leftovers")]

NETNS_DIR = Path("/run/netns")


def lan() -> dict[str, Any]:
    return {
        "version": 1,
        "name": "lan-containers",
        "topology": {
            "nodes": {"gw1": {}, "gw2": {}, "pc": {"loopback": "none"}},
            "segments": [{"name": "lan", "members": ["gw1:lan0", "gw2:lan0", "pc:eth0"], "subnet": "198.18.70.0/24"}],
        },
        "timeline": [
            {"id": "port", "at": "1s", "fault": "link-down", "link": "gw1:lan0", "for": "1s"},
            {"id": "crash", "at": "3s", "fault": "node-loss", "node": "gw1", "for": "1s"},
        ],
    }


def ping(namespace: str, address: str) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, "ping", "-c", "1", "-W", "1", address], capture_output=True, timeout=10
    )
    return done.returncode == 0


def test_containers_and_a_namespace_node_on_one_segment(tmp_path: Path, state_dir: Path, docker_engine: Any) -> None:
    path = write(tmp_path, "lan.yaml", containerise(lan(), ["gw1", "gw2"]))
    up = lifecycle.up(path, state_dir)
    ns = up.meta.nodes
    run = RunStore(state_dir).get(up.meta.run_id)
    backend = DockerBackend()
    clock = SystemClock()
    namespaces = {**ns, **segment_namespaces(run.run_id, up.topology)}
    ops = DockerOps(run, up.topology, namespaces, {}, clock, lambda _m: None, backend.start_service, backend.docker)
    ctx = FaultContext(ops, clock, lambda _m: None, random.Random(1))
    steps = {s.name: s for s in load_scenario(path).steps}
    gw1, gw2, pc = "198.18.70.1", "198.18.70.2", "198.18.70.3"  # in member order
    try:
        assert (NETNS_DIR / segment_namespace(run.run_id, "lan")).exists()
        code, output, _ = docker_engine.exec(ns["gw1"], ["ip", "-o", "-4", "addr", "show", "lan0"])
        assert code == 0 and f"{gw1}/24" in output  # the port moved into the container, addressed
        assert ping(ns["pc"], gw1) and ping(ns["pc"], gw2) and ping(ns["gw1"], gw2)

        port = steps["port"]
        assert isinstance(port, SegmentDownStep)
        fault = link_down(port)
        fault.apply(ctx)
        assert not ops.link_state("gw1", "lan0").carrier and ops.link_state("gw2", "lan0").carrier
        assert not ping(ns["pc"], gw1) and ping(ns["pc"], gw2)  # only gw1 is cut
        fault.revert(ctx)
        assert ping(ns["pc"], gw1)

        crash = steps["crash"]
        assert isinstance(crash, NodeLossStep)
        before = docker_engine.state(ns["gw1"])
        loss = NodeLoss.from_step(crash)
        loss.apply(ctx)
        assert not ping(ns["pc"], gw1) and ping(ns["pc"], gw2)
        loss.revert(ctx)
        after = docker_engine.state(ns["gw1"])
        assert after is not None and after.running and after.pid != before.pid
        code, output, _ = docker_engine.exec(ns["gw1"], ["ip", "-o", "-4", "addr", "show", "lan0"])
        assert code == 0 and f"{gw1}/24" in output  # its segment port followed it to the new namespace
        assert ping(ns["pc"], gw1) and ping(ns["gw2"], gw1) and ping(ns["gw1"], pc)
    finally:
        ops.close()
        lifecycle.down(state_dir, up.meta.run_id)
    assert not (NETNS_DIR / segment_namespace(run.run_id, "lan")).exists()
    assert not list(docker_engine.find({"drills.run": run.run_id}))

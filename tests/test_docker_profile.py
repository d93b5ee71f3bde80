"""Link profiles on container links: the container backend runs the namespace backend's deploy
pipeline, so a kernel-engine profile is installed on a container's links exactly as on a
namespace's. (It once kept a copy of the pipeline, which had drifted and skipped this phase.)"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from docker_testing import containerise, docker_engine_fixture, docker_leftovers_fixture, write  # noqa: F401

from drills import lifecycle

pytestmark = [pytest.mark.docker, pytest.mark.netns, pytest.mark.usefixtures("docker_leftovers")]


def test_container_links_get_their_kernel_link_profile(tmp_path: Path, state_dir: Path, docker_engine: Any) -> None:
    """Our tbf (root handle d511:) at the profile's rate on each end of two profiled links, one
    between two containers and one between a container and a namespace node, read from inside
    each node. Rate only, so a tbf: no sch_netem needed on this host."""
    scenario = {
        "version": 1,
        "name": "container-profile",
        "profiles": {"capped": {"description": "a 10 Mb/s access link", "rate": "10mbit"}},
        "topology": {
            "nodes": {"a": {}, "b": {}, "n": {}},
            "links": [
                {"name": "boxes", "endpoints": ["a:b0", "b:a0"], "profile": "capped", "engine": "kernel"},
                {"name": "mixed", "endpoints": ["n:a0", "a:n0"], "profile": "capped", "engine": "kernel"},
            ],
        },
    }
    up = lifecycle.up(write(tmp_path, "profile.yaml", containerise(scenario, ["a", "b"])), state_dir)
    try:
        ns = up.meta.nodes
        for container, ifname in (("a", "b0"), ("b", "a0"), ("a", "n0")):
            code, shown, _ = docker_engine.exec(ns[container], ["tc", "qdisc", "show", "dev", ifname])
            assert code == 0 and "qdisc tbf d511: root" in shown and "rate 10Mbit" in shown, (container, ifname, shown)
        shown = subprocess.run(
            ["tc", "-n", ns["n"], "qdisc", "show", "dev", "a0"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        assert "qdisc tbf d511: root" in shown and "rate 10Mbit" in shown, shown
    finally:
        lifecycle.down(state_dir, up.meta.run_id)

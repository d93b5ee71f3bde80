"""containerlab labs: `drill import` (unit tests on the real lab files), the frr01 lab deployed on
the Docker backend with its OSPF reroute measured, and attaching to a lab deployed by someone
else (containerlab itself cannot be installed here: the test deploys the lab the way containerlab
does, labelled containers wired by veth pairs, and checks drills leaves it as it found it)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker_testing import IMAGE, docker_engine_fixture, docker_leftovers_fixture  # noqa: F401

from drills.containerlab import import_lab, parse_image_map, topology_data_containers
from drills.errors import BadInput
from drills.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
# containerlab's own lab examples (BSD 3-Clause), vendored so a fresh clone has them.
LABS = ROOT / "testbed" / "containerlab"
FRR01 = LABS / "frr01" / "frr01.clab.yml"



# --------------------------------------------------------------------------- import (no Docker)


def test_frr01_imports_nodes_addresses_routes_and_binds(tmp_path: Path) -> None:
    out = tmp_path / "frr01.yaml"
    topo = import_lab(FRR01, out)
    nodes = topo["nodes"]
    assert set(nodes) == {"router1", "router2", "router3", "PC1", "PC2", "PC3"}
    r1 = nodes["router1"]
    assert r1["image"] == IMAGE and r1["command"] == "frr-start" and "SYS_ADMIN" in r1["capabilities"]
    # frr.conf gives the interface addresses and the loopback, as FRR will set them.
    assert r1["interfaces"] == {"eth1": {"ipv4": "192.168.1.1/24"}, "eth2": {"ipv4": "192.168.2.1/24"}, "eth3": {"ipv4": "192.168.11.1/24"}}
    assert r1["loopback"] == "10.10.10.1/32"
    assert "Full" in r1["ready"]["command"] and "192.168.13.0/24" in r1["ready"]["command"]
    for volume in r1["volumes"]:  # binds, rewritten relative to the written file
        host, inside = volume.split(":")
        assert (tmp_path / host).resolve().is_file() and inside.startswith("/etc/frr/")
    # PCs' exec lines became declarations; nothing is left to exec.
    pc1 = nodes["PC1"]
    assert pc1["interfaces"] == {"eth1": {"ipv4": "192.168.11.2/24"}} and pc1["loopback"] == "none"
    assert {"to": "192.168.0.0/16", "via": "192.168.11.1", "dev": "eth1"} in pc1["routes"]
    assert "exec" not in pc1 and "ready" not in pc1
    assert [link["name"] for link in topo["links"]][:3] == ["router1-router2", "router1-router3", "router2-router3"]
    # The written file is a valid drills topology.
    scenario = tmp_path / "s.yaml"
    scenario.write_text("version: 1\nname: s\ntopology: frr01.yaml\n")
    loaded = load_scenario(scenario)
    assert loaded.topology.node("PC2").primary_address.exploded == "192.168.12.2"  # type: ignore[union-attr]


def test_committed_frr01_topology_is_what_the_importer_writes(tmp_path: Path) -> None:
    committed = ROOT / "testbed" / "topologies" / "frr01.yaml"
    fresh = tmp_path / "frr01.yaml"
    import_lab(FRR01, committed.parent / ".frr01-check.yaml")
    try:
        fresh.write_text((committed.parent / ".frr01-check.yaml").read_text())
    finally:
        (committed.parent / ".frr01-check.yaml").unlink()
    assert fresh.read_text() == committed.read_text(), "re-run: drill import testbed/containerlab/frr01/frr01.clab.yml -o testbed/topologies/frr01.yaml"
    load_scenario(ROOT / "scenarios" / "frr01-ospf-reroute.yaml")


def test_vendor_kinds_need_an_image_mapping(tmp_path: Path) -> None:
    clos = LABS / "clos01.clab.yml"
    with pytest.raises(BadInput, match=r"nokia_srlinux.*--image ghcr.io/nokia/srlinux=LOCAL_IMAGE"):
        import_lab(clos, tmp_path / "clos.yaml")
    topo = import_lab(clos, tmp_path / "clos.yaml", parse_image_map(["ghcr.io/nokia/srlinux=drills-node:latest"]))
    assert topo["nodes"]["leaf1"]["image"] == "drills-node:latest"
    assert topo["nodes"]["client1"]["image"] == IMAGE  # kind linux: the local node image
    assert len(topo["links"]) == 4


def test_exec_lines_translation_and_bad_maps(tmp_path: Path) -> None:
    lab = tmp_path / "x.clab.yml"
    lab.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "topology": {
                    "kinds": {"linux": {"image": "alpine:3"}},
                    "nodes": {
                        "h": {"kind": "linux", "exec": ["ip link set eth1 up", "ip addr add 198.18.7.1/30 dev eth1", "ip route add default via 198.18.7.2", "sysctl -w net.ipv4.ip_forward=1"]},
                        "g": {"kind": "linux", "env": {"A": "1"}, "cmd": "sleep 1000"},
                    },
                    "links": [{"endpoints": ["h:eth1", "g:eth1"]}],
                },
            }
        )
    )
    topo = import_lab(lab, tmp_path / "x.yaml")
    h = topo["nodes"]["h"]
    assert h["interfaces"] == {"eth1": {"ipv4": "198.18.7.1/30"}}
    assert h["routes"] == [{"to": "default", "via": "198.18.7.2"}]
    assert h["exec"] == ["sysctl -w net.ipv4.ip_forward=1"]
    assert topo["nodes"]["g"]["environment"] == {"A": "1"} and topo["nodes"]["g"]["command"] == "sleep 1000"
    with pytest.raises(BadInput, match="LAB_IMAGE=LOCAL_IMAGE"):
        parse_image_map(["no-equals-sign"])


def test_attach_names_containers_from_topology_data(tmp_path: Path) -> None:
    data = tmp_path / "topology-data.json"
    nodes = ("router1", "router2", "router3", "PC1", "PC2", "PC3")
    data.write_text(json.dumps({"name": "frr01", "nodes": {n: {"longname": f"lab-{n}", "kind": "linux"} for n in nodes}}))
    topo = import_lab(FRR01, tmp_path / "a.yaml", attach=True, containers=topology_data_containers(data))
    assert topo["nodes"]["router1"]["attach"] == "lab-router1"
    assert "image" not in topo["nodes"]["router1"] and "volumes" not in topo["nodes"]["router1"]
    assert topo["nodes"]["router1"]["interfaces"]["eth1"] == {"ipv4": "192.168.1.1/24"}  # known, not set
    data.write_text("{}")
    with pytest.raises(BadInput, match=r"not a containerlab topology-data\.json"):
        topology_data_containers(data)


# --------------------------------------------------------------------------- on Docker


def _results(drill: Any, scenario: Path, out: Path, timeout_s: float) -> dict[str, Any]:
    done = drill("run", str(scenario), "--out", str(out), "--no-live", timeout_s=timeout_s)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.docker
@pytest.mark.netns
@pytest.mark.usefixtures("docker_leftovers")
def test_frr01_ospf_reroute_drill(tmp_path: Path, drill: Any) -> None:
    """The real lab deploys from the local image, OSPF converges (deploy waits for it), and the
    drill measures the reroute when the router1-router2 link is cut, and the way back."""
    results = _results(drill, ROOT / "scenarios" / "frr01-ospf-reroute.yaml", tmp_path / "out", timeout_s=400)
    assert results["outcome"] == "passed", json.dumps(results["verdicts"], indent=1)
    cut = next(m for m in results["metrics"] if m["event"] == "cut" and m["kind"] == "apply" and m["probe"] == "pc1-pc2")
    assert cut["recovered_during_event"]  # rerouted through router3 while the link was still cut


# --------------------------------------------------------------------------- attach


LAB = "drlab"
FAKE_LAB = {
    "name": LAB,
    "topology": {
        "kinds": {"linux": {"image": "ghcr.io/hellt/network-multitool"}},
        "nodes": {
            "h1": {"kind": "linux", "exec": ["ip addr add 198.18.50.1/30 dev eth1", "ip route add 198.18.50.4/30 via 198.18.50.2"]},
            "r": {"kind": "linux", "exec": ["ip addr add 198.18.50.2/30 dev eth1", "ip addr add 198.18.50.5/30 dev eth2"]},
            "h2": {"kind": "linux", "exec": ["ip addr add 198.18.50.6/30 dev eth1", "ip route add 198.18.50.0/30 via 198.18.50.5"]},
        },
        "links": [{"endpoints": ["h1:eth1", "r:eth1"]}, {"endpoints": ["r:eth2", "h2:eth1"]}],
    },
}


@pytest.fixture
def fake_lab(docker_engine: Any) -> Iterator[dict[str, str]]:
    """The lab deployed as containerlab would: containers clab-LAB-NODE labelled `containerlab`
    and `clab-node-name`, no network of Docker's, veth pairs between their namespaces, the exec
    lines run. Removed afterwards (it is this test's, not a run's)."""
    from drills.docker.api import ContainerSpec

    names = {node: f"clab-{LAB}-{node}" for node in FAKE_LAB["topology"]["nodes"]}  # type: ignore[index]
    pids = {}
    try:
        for node, name in names.items():
            spec = ContainerSpec(name, IMAGE, None, (), (), ("NET_ADMIN",), False, node, (("containerlab", LAB), ("clab-node-name", node)))
            pids[node] = docker_engine.create_and_start(spec).pid
        for link in FAKE_LAB["topology"]["links"]:  # type: ignore[index]
            (a, ai), (b, bi) = (e.split(":") for e in link["endpoints"])
            subprocess.run(
                ["ip", "link", "add", ai, "netns", str(pids[a]), "type", "veth", "peer", "name", bi, "netns", str(pids[b])],
                check=True, timeout=10,
            )  # fmt: skip
        for node, spec in FAKE_LAB["topology"]["nodes"].items():  # type: ignore[index]
            for line in ["ip link set eth1 up", "ip link set eth2 up 2>/dev/null || true", *spec["exec"]]:
                code, output, _ = docker_engine.exec(names[node], ["/bin/sh", "-c", line])
                assert code == 0, output
        code, _, _ = docker_engine.exec(names["r"], ["/bin/sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
        yield names
    finally:
        for name in names.values():
            docker_engine.remove(name)


@pytest.mark.docker
@pytest.mark.netns
@pytest.mark.usefixtures("docker_leftovers")
def test_attach_to_a_running_lab(tmp_path: Path, drill: Any, fake_lab: dict[str, str], docker_engine: Any) -> None:
    """`drill import --attach` finds the lab's containers by their labels; a drill cuts one of
    its links and measures the outage, and leaves the lab running with its links, addresses and
    routes as they were."""
    lab_file = tmp_path / "drlab.clab.yml"
    lab_file.write_text(yaml.safe_dump(FAKE_LAB))
    imported = drill("import", str(lab_file), "-o", str(tmp_path / "drlab.yaml"), "--attach")
    assert imported.returncode == 0, imported.stderr
    topo = yaml.safe_load((tmp_path / "drlab.yaml").read_text())
    assert {n: spec["attach"] for n, spec in topo["nodes"].items()} == fake_lab
    scenario = {
        "version": 1,
        "name": "attach",
        "topology": "drlab.yaml",
        "probes": [{"name": "s", "type": "udp-stream", "from": "h1", "to": "h2", "rate_pps": 200}],
        "timeline": [{"id": "cut", "at": "3s", "fault": "link-down", "link": "r-h2", "for": "1s"}],
        "duration": "7s",
    }
    (tmp_path / "attach.yaml").write_text(yaml.safe_dump(scenario))
    before = {name: docker_engine.exec(name, ["/bin/sh", "-c", "ip -o -4 addr; ip -4 route"])[1] for name in fake_lab.values()}
    results = _results(drill, tmp_path / "attach.yaml", tmp_path / "out", timeout_s=120)
    cut = next(m for m in results["metrics"] if m["event"] == "cut" and m["kind"] == "apply")
    assert abs(cut["outage_s"] - 1.0) <= 0.1 + cut["accuracy_s"]  # no backup path: the whole cut
    for name in fake_lab.values():  # the lab lives on, as it was
        state = docker_engine.state(name)
        assert state is not None and state.running
        after = docker_engine.exec(name, ["/bin/sh", "-c", "ip -o -4 addr; ip -4 route"])[1]
        # The kernel dropped the lab's route through the cut interface; the revert put it back
        # (as `proto static`, drills' marker): the same route.
        assert sorted(after.replace(" proto static", "").split("\n")) == sorted(before[name].split("\n"))


@pytest.mark.docker
@pytest.mark.netns
@pytest.mark.usefixtures("docker_leftovers")
def test_profiles_on_links_to_a_lab(tmp_path: Path, state_dir: Path, fake_lab: dict[str, str], docker_engine: Any) -> None:
    """A profiled link the run creates into an attached container gets its qdiscs on both ends;
    a profiled link of the lab's own (between two attached containers) is left as the lab set it:
    a qdisc there would outlive the run, which removes only what it created."""
    from drills import lifecycle

    scenario = {
        "version": 1,
        "name": "lab-profiles",
        "profiles": {"capped": {"description": "a 10 Mb/s access link", "rate": "10mbit"}},
        "topology": {
            "nodes": {
                "h1": {"kind": "container", "attach": fake_lab["h1"]},
                "r": {"kind": "container", "attach": fake_lab["r"]},
                "x": {"kind": "container", "image": IMAGE},
            },
            "links": [
                {"name": "lab", "endpoints": ["h1:eth1", "r:eth1"], "profile": "capped", "engine": "kernel"},
                {"name": "ours", "endpoints": ["r:x0", "x:r0"], "profile": "capped", "engine": "kernel"},
            ],
        },
    }
    (tmp_path / "lab-profiles.yaml").write_text(yaml.safe_dump(scenario))

    def qdisc(container: str, ifname: str) -> str:
        code, shown, _ = docker_engine.exec(container, ["tc", "qdisc", "show", "dev", ifname])
        assert code == 0, shown
        return str(shown)

    up = lifecycle.up(tmp_path / "lab-profiles.yaml", state_dir)
    try:
        for container, ifname in ((fake_lab["r"], "x0"), (up.meta.nodes["x"], "r0")):
            shown = qdisc(container, ifname)
            assert "qdisc tbf d511: root" in shown and "rate 10Mbit" in shown, (container, ifname, shown)
        for container in (fake_lab["h1"], fake_lab["r"]):
            assert "d511:" not in qdisc(container, "eth1")
    finally:
        lifecycle.down(state_dir, up.meta.run_id)
    assert "d511:" not in qdisc(fake_lab["r"], "eth1")

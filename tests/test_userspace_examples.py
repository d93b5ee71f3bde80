"""The satellite and radio examples run end to end here, through the engine this host selects
(the userspace engine on a kernel without netem), and the lifecycle of userspace links: `drill
validate` refuses `engine: kernel` without netem, teardown and `drill down` stop relays, a
SIGKILLed relay leaves no device, link-down on a TAP link loses carrier like a veth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from drills import doctor
from drills.results import results_schema
from drills.scenario import load_scenario
from drills.userspace import select
from drills.userspace.deploy import labelled_relays

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parent.parent


def _run(drill: Any, scenario: Path, out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    proc = drill("run", str(scenario), "--out", str(out), timeout_s=120)
    data: dict[str, object] = json.loads((out / "results.json").read_text())
    return proc, data


def _expected_engines(scenario: Path) -> dict[str, str]:
    links = load_scenario(scenario).topology.links
    return select.engines(links, doctor.kernel_capabilities)


def _phase(data: dict[str, object], probe: str, name: str) -> dict[str, float]:
    phases = data["phases"]
    assert isinstance(phases, dict)
    return next(p for p in phases[probe] if p["phase"] == name)


def test_satellite_backhaul_fails_over_to_a_600_ms_satellite(
    tmp_path: Path, drill: Any, host_snapshot: object
) -> None:
    scenario = REPO / "scenarios" / "satellite-backhaul.yaml"
    proc, data = _run(drill, scenario, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jsonschema.Draft202012Validator(results_schema()).validate(data)
    engines = _expected_engines(scenario)
    assert data["link_engines"] == engines
    assert engines["fibre"] == "kernel"  # never impaired: a veth pair whatever the kernel
    fault = _phase(data, "voice", "fault")
    # The satellite profile's 300 ms each way, applied from deploy on: a ~600 ms round trip.
    assert 0.58 <= fault["rtt_p50_s"] <= 0.66
    assert _phase(data, "voice", "baseline")["rtt_p50_s"] < 0.05  # the fibre carries the baseline
    report = (tmp_path / "out" / "report.md").read_text()
    assert ("Userspace link emulation" in report) == (engines["vsat"] == "userspace")
    assert labelled_relays(str(data["run_id"])) == []


def test_tactical_radio_jamming_and_recovery(tmp_path: Path, drill: Any, host_snapshot: object) -> None:
    scenario = REPO / "scenarios" / "tactical-radio.yaml"
    proc, data = _run(drill, scenario, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert data["link_engines"] == _expected_engines(scenario)
    baseline = _phase(data, "c2", "baseline")
    # The radio profile: 20 ms each way from deploy on; jamming adds loss bursts and jitter.
    assert 0.035 <= baseline["rtt_p50_s"] <= 0.06
    metrics = data["metrics"]
    assert isinstance(metrics, list)
    jammed = next(m for m in metrics if m["event"] == "jamming" and m["kind"] == "apply")
    assert jammed["lost"] > 0
    assert labelled_relays(str(data["run_id"])) == []


KERNEL_ONLY = """
version: 1
name: kernel-only
topology:
  nodes: {a: {}, b: {}}
  links: [{name: wire, endpoints: [a:e1, b:e1], engine: kernel}]
timeline:
  - {at: 1s, fault: degrade, link: wire, delay: 20ms}
"""


@pytest.mark.skipif(doctor.kernel_capabilities().get(doctor.NETEM, False), reason="this kernel has netem")
def test_validate_refuses_the_kernel_engine_without_netem(tmp_path: Path, drill: Any) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(KERNEL_ONLY)
    proc = drill("validate", str(path))
    assert proc.returncode == 2
    assert f"{path}:8:5: timeline[0]: delay needs the netem qdisc, and this kernel has no sch_netem" in proc.stderr
    assert "link wire asks for `engine: kernel`; the userspace engine" in proc.stderr
    assert "Traceback" not in proc.stderr
    userspace = tmp_path / "u.yaml"
    userspace.write_text(KERNEL_ONLY.replace("engine: kernel", "engine: userspace"))
    ok = drill("validate", str(userspace))
    assert ok.returncode == 0, ok.stderr


TWO = """
version: 1
name: tap-pair
topology:
  nodes:
    a: {routes: [{to: b, via: b:e1}]}
    b: {routes: [{to: a, via: a:e1}]}
  links: [{name: wire, endpoints: [a:e1, b:e1], engine: userspace}]
"""


def _ip(namespace: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", namespace, *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout


def _carrier(namespace: str, ifname: str) -> bool:
    return "LOWER_UP" in _ip(namespace, "link", "show", ifname) and "NO-CARRIER" not in _ip(
        namespace, "link", "show", ifname
    )


def _wait(predicate: object, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_tap_link_carrier_follows_veth_semantics_and_down_stops_the_relay(
    tmp_path: Path, state_dir: Path, drill: Any, host_snapshot: object
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO)
    up = drill("up", str(path))
    assert up.returncode == 0, up.stderr
    (run_dir,) = (state_dir / "runs").iterdir()
    run_id = run_dir.name
    ns_a, ns_b = f"drill-{run_id}-a", f"drill-{run_id}-b"
    try:
        assert "tun type tap" in _ip(ns_a, "-d", "link", "show", "e1")
        (relay,) = labelled_relays(run_id)
        assert _carrier(ns_a, "e1") and _carrier(ns_b, "e1")
        _ip(ns_a, "link", "set", "e1", "down")  # one end down: the far end loses carrier, as a veth's
        assert _wait(lambda: not _carrier(ns_b, "e1"))
        _ip(ns_a, "link", "set", "e1", "up")
        assert _wait(lambda: _carrier(ns_b, "e1") and _carrier(ns_a, "e1"))
        ping = subprocess.run(
            ["ip", "netns", "exec", ns_a, "ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.0.2"],
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip
        assert ping.returncode == 0, ping.stderr  # the connected subnet: `ip link set down` took the routes
    finally:
        down = drill("down", run_id)
    assert down.returncode == 0, down.stderr
    assert labelled_relays(run_id) == []
    assert _gone(*relay)


def _gone(pid: int, start_ticks: int | None) -> bool:
    """The process is dead: no such pid, another process under it, or a zombie awaiting its reaper."""
    from drills.netns.kernel import process_start_ticks

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return process_start_ticks(pid) != start_ticks or stat[stat.rindex(")") + 2] == "Z"


def test_a_sigkilled_relay_leaves_no_device_and_clean_finishes(
    tmp_path: Path, state_dir: Path, drill: Any, host_snapshot: object
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO)
    up = drill("up", str(path))
    assert up.returncode == 0, up.stderr
    (run_dir,) = (state_dir / "runs").iterdir()
    run_id = run_dir.name
    (relay,) = labelled_relays(run_id)
    os.kill(relay[0], signal.SIGKILL)
    # Non-persistent TAPs go with the relay's descriptors.
    assert _wait(lambda: "e1" not in _ip(f"drill-{run_id}-a", "link", "show"))
    clean = drill("clean", "--all")
    assert clean.returncode == 0, clean.stderr
    assert not (state_dir / "runs" / run_id).exists()

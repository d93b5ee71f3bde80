"""`degrade`: parameters merged from a profile, its `reverse` and the step; the kernel's integers;
`requirements` with injected capabilities; the fault against fake node operations (the exact
`impair` calls, a ramp on the fake clock); the namespace backend's qdisc logic against a fake
netlink handle (the netem path included); and, on real namespaces, a rate limit measured by UDP
traffic inside the testbed, qdiscs we did not create left alone, and the netem path as far as
this kernel allows."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import rx_stamps

from drills import doctor, lifecycle
from drills.backend import NAMESPACES, NETEM, TBF, Impairment
from drills.clock import FakeClock, SystemClock
from drills.engine import degrade_checks
from drills.engine.degrade import requirements
from drills.engine.faults import FaultContext, build, supported_kinds
from drills.errors import BackendError, BadInput
from drills.impairment import Settings
from drills.lifecycle import run as run_drill
from drills.netns import kernel, probe_caps, tc
from drills.netns.ops import NetnsOps
from drills.netns.ops_impair import ImpairmentOpsMixin
from drills.netns.qdisc import (
    CHILD_HANDLE,
    CHILD_PARENT,
    HANDLE,
    TC_H_ROOT,
    netem_limit_packets,
    netem_spec,
    tbf_spec,
)
from drills.netns.rtnl import rta
from drills.runs import RunStore
from drills.scenario import load_scenario, model
from drills.scenario.resolved import Scenario
from drills.scenario.steps import DegradeStep

TbfSpec = tc.Tbf

HEAD = """version: 1
name: deg
topology:
  nodes:
    a: {}
    b: {}
  links:
    - {name: wire, endpoints: [a:e1, b:e1]}
    - {name: spare, endpoints: [a:e2, b:e2]}
"""


def scenario(tmp_path: Path, *steps: str, extra: str = "") -> Scenario:
    """A two-node scenario whose timeline is `steps` (one flow mapping each); timeline[0] is on line 11."""
    timeline = "timeline:\n" + "".join(f"  - {s}\n" for s in steps)
    path = tmp_path / "deg.yaml"
    path.write_text(HEAD + extra + timeline)
    return load_scenario(path)


def caps(netem: bool, tbf: bool = True, namespaces: bool = True) -> Any:
    return lambda: {NETEM: netem, TBF: tbf, NAMESPACES: namespaces}


def never() -> Mapping[str, bool]:
    raise AssertionError("capabilities looked up, though nothing needed them")


def resolved(sc: Scenario, index: int = 0) -> DegradeStep:
    step = sc.steps[index]
    assert isinstance(step, DegradeStep)
    return step


def directions(sc: Scenario, index: int = 0) -> dict[str, Settings]:
    return {d.name: d.settings for d in resolved(sc, index).directions}


# --------------------------------------------------------------------------- merging


def test_profile_gives_both_directions_and_reverse_only_b_to_a(tmp_path: Path) -> None:
    got = directions(scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, profile: geo-satellite}"))
    common = {"delay_s": 0.3, "jitter_s": 0.01, "distribution": "normal", "loss_pct": 0.3}
    assert got["a-to-b"] == Settings(**common, rate_bps=50_000_000)
    assert got["b-to-a"] == Settings(**common, rate_bps=5_000_000)


def test_explicit_parameters_override_profile_and_reverse(tmp_path: Path) -> None:
    step = "{at: 1s, fault: degrade, link: wire, profile: geo-satellite, delay: 100ms, rate: 1mbit, loss: 0}"
    got = directions(scenario(tmp_path, step))
    for name in ("a-to-b", "b-to-a"):
        assert got[name].delay_s == pytest.approx(0.1)
        assert got[name].rate_bps == 1_000_000  # the step's rate wins over the reverse's 5 Mbit/s
        assert got[name].loss_pct == 0.0
        assert got[name].jitter_s == pytest.approx(0.01)  # untouched: still the profile's
        assert got[name].netem_parameters() == ["delay", "jitter", "distribution"]  # loss 0: not asked


def test_one_direction_is_the_egress_of_its_sending_end(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, direction: b-to-a, profile: lte}")
    (only,) = resolved(sc).directions
    assert (only.name, only.end.endpoint, only.peer.endpoint) == ("b-to-a", "b:e1", "a:e1")
    assert only.settings.rate_bps == 10_000_000  # lte's reverse
    assert only.settings.handover is not None  # the profile's handover comes along


def test_rate_only_needs_no_netem_and_describes_itself(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, direction: a-to-b, rate: 5mbit}")
    fault = build(sc.steps[0])
    assert "degrade" in supported_kinds()
    assert fault.touches() == ["a:e1 egress root qdisc (tbf 5 Mbit/s, handle d511:)"]
    assert fault.describe() == "degrade link wire: a-to-b rate 5 Mbit/s"
    assert fault.describe(reverted=True) == "link wire: degrade lifted (a:e1 back to the default qdisc)"


def test_netem_with_rate_touches_and_describe(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: spare, delay: 20ms, jitter: 2ms, loss: 1%, rate: 400kbit}")
    fault = build(sc.steps[0])
    assert fault.touches() == [
        f"{end} egress root qdisc (netem delay 20 ms, jitter 2 ms, loss 1 %, handle d511:; its child tbf 400 kbit/s, handle d512:)"
        for end in ("a:e2", "b:e2")
    ]
    assert (
        fault.describe() == "degrade link spare, both directions: delay 20 ms, jitter 2 ms, loss 1 %, rate 400 kbit/s"
    )


def test_builder_refuses_what_netem_would_refuse(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, direction: a-to-b, jitter: 2ms, reorder: 5%}")
    with pytest.raises(BadInput) as caught:
        build(sc.steps[0])
    assert str(caught.value) == (
        "degrade a-to-b on link wire: jitter needs a delay (netem varies the delay by up to the jitter); "
        "reorder needs a delay (reordered packets are the ones sent without it)"
    )


# --------------------------------------------------------------------------- kernel integers


def test_tbf_in_bytes_with_burst_and_queue() -> None:
    # 5 Mbit/s: 625 000 bytes/s; 4 ms would be 2 500 bytes, below two 1514-byte frames.
    assert tbf_spec(5_000_000, None) == TbfSpec(625_000, 3028, 3028 + 31_250)
    # 1 Gbit/s: the bucket holds 4 ms, the queue 50 ms more.
    assert tbf_spec(1_000_000_000, 1500) == TbfSpec(125_000_000, 500_000, 500_000 + 6_250_000)
    # Jumbo frames: the bucket must hold two of them.
    assert tbf_spec(400_000, 9000).burst_bytes == 2 * 9014
    assert tbf_spec(12, None).rate_bytes_ps == 2  # 1.5 bytes/s rounds to 2
    assert tbf_spec(1, None).rate_bytes_ps == 1  # never 0: the kernel would refuse it


def test_netem_spec_in_the_kernels_units() -> None:
    s = Settings(
        delay_s=0.018, jitter_s=0.005, correlation_pct=25.0, loss_pct=1.0,
        duplicate_pct=0.2, corrupt_pct=0.1, reorder_pct=5.0, rate_bps=100_000_000,
    )  # fmt: skip
    assert netem_spec(s) == tc.Netem(
        limit_packets=1899,  # 23 ms of 1514-byte frames at 1 Gbit/s
        delay_ns=18_000_000, jitter_ns=5_000_000, delay_corr_pct=25.0, loss_pct=1.0,
        duplicate_pct=0.2, corrupt_pct=0.1, reorder_pct=5.0, gap=1,  # rate goes to the tbf child
    )  # fmt: skip
    assert netem_spec(Settings(delay_s=0.0005)) == tc.Netem(limit_packets=1000, delay_ns=500_000)
    shaped = netem_spec(Settings(delay_s=0.05, jitter_s=0.01, distribution="pareto"))
    assert shaped.distribution is not None and len(shaped.distribution) == 4096
    assert netem_spec(Settings(delay_s=0.05, jitter_s=0.01, distribution="uniform")).distribution is None
    # The scenario writes Gilbert-Elliott as tc does (p r 1-h 1-k); the kernel keeps h = 1 - loss in bad.
    bursty = netem_spec(Settings(loss_bursts=model.GilbertElliott(p=1.0, r=20.0, h=90.0, k=0.5)))
    assert bursty.loss_model == tc.GilbertElliott(p_pct=1.0, r_pct=20.0, h_pct=10.0, k1_pct=0.5)
    assert bursty.loss_pct == 0.0
    # A ramp starts at its `from` delay.
    ramp = model.Ramp.model_validate({"from": "20ms", "to": "600ms", "over": "30s"})
    assert netem_spec(Settings(delay_s=0.1, ramp=ramp)).delay_ns == 20_000_000


def test_netem_queue_holds_the_packets_in_flight() -> None:
    assert netem_limit_packets(Settings(delay_s=0.0005)) == 1000  # the floor: netem's default
    assert netem_limit_packets(Settings(delay_s=0.3)) == 24_769  # 300 ms of 1514-byte frames at 1 Gbit/s
    assert netem_limit_packets(Settings(delay_s=60.0)) == 100_000  # the ceiling


def test_invalid_combinations_and_what_is_not_applied_yet() -> None:
    assert degrade_checks.invalid(Settings(delay_s=1e-7)) == ["delay is below netem's resolution of 1 µs"]
    assert degrade_checks.invalid(Settings(delay_s=0.01, correlation_pct=25.0, distribution="normal")) == [
        "correlation needs delay and jitter (it correlates successive delays)",
        "distribution needs delay and jitter (it shapes the jitter)",
    ]
    bursts = model.GilbertElliott(p=1.0, r=20.0)
    assert degrade_checks.invalid(Settings(loss_pct=1.0, loss_bursts=bursts)) == [
        "loss and loss_bursts exclude each other (netem has one loss model)"
    ]
    assert degrade_checks.invalid(Settings(rate_bps=40_000_000_000)) == []  # tbf's 64-bit rate is sent
    assert degrade_checks.invalid(Settings(delay_s=0.3, jitter_s=0.01, distribution="normal", rate_bps=10**9)) == []
    assert degrade_checks.not_applied_yet(Settings(delay_s=0.3, jitter_s=0.01, distribution="uniform")) == []
    assert degrade_checks.not_applied_yet(Settings(delay_s=0.3, jitter_s=0.01, distribution="pareto")) == []
    assert degrade_checks.not_applied_yet(Settings(loss_bursts=bursts)) == []
    ramp = model.Ramp.model_validate({"from": 0, "to": "600ms", "over": "30s"})
    assert degrade_checks.invalid(Settings(jitter_s=0.01, ramp=ramp)) == [
        "jitter needs a delay (netem varies the delay by up to the jitter)"  # at the ramp's start
    ]
    handover = model.Handover.model_validate({"every": "1s", "loss_burst": "2s"})
    assert degrade_checks.invalid(Settings(delay_s=0.01, handover=handover)) == [
        "a handover's loss_burst and spike_length must be shorter than its period (every)"
    ]


# --------------------------------------------------------------------------- requirements


NETEM_MESSAGE = (
    'delay and loss need the netem qdisc, and this kernel has no sch_netem (tc says "Specified qdisc kind is '
    'unknown"): install a kernel with CONFIG_NET_SCH_NETEM (Debian: linux-image-amd64; RHEL: kernel-modules-extra), '
    "or set the link's `engine:` to `userspace` or `auto` (drills' userspace engine applies the same parameters). "
    "A `rate` limit alone works on this kernel (tbf)."
)


def test_requirements_without_netem_name_the_parameters_and_the_fix(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, delay: 20ms, loss: 1%, rate: 5mbit}")
    (problem,) = requirements(sc, caps(netem=False))
    assert (problem.line, problem.column, problem.path) == (11, 5, "timeline[0]")
    assert problem.message == NETEM_MESSAGE
    assert str(problem) == f"{sc.path}:11:5: timeline[0]: {NETEM_MESSAGE}"


def test_requirements_with_netem_or_for_rate_alone_are_met(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, delay: 20ms, loss: 1%, rate: 5mbit}")
    assert requirements(sc, caps(netem=True)) == []
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, rate: 5mbit}")
    assert requirements(sc, caps(netem=False)) == []


def test_requirements_name_the_profile_and_one_parameter(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, profile: fibre}")
    (problem,) = requirements(sc, caps(netem=False))
    assert problem.message.startswith("delay (from profile 'fibre') needs the netem qdisc, and this kernel has no")


def test_capabilities_are_looked_up_once_and_only_when_needed(tmp_path: Path) -> None:
    assert requirements(scenario(tmp_path, "{at: 1s, fault: note, text: hi}"), never) == []
    calls = []

    def counted() -> Mapping[str, bool]:
        calls.append(1)
        return {NETEM: False, TBF: True, NAMESPACES: True}

    sc = scenario(
        tmp_path,
        "{at: 1s, fault: degrade, link: wire, delay: 5ms, for: 1s}",
        "{at: 5s, fault: degrade, link: wire, loss: 1%, for: 1s}",
    )
    assert len(requirements(sc, counted)) == 2 and calls == [1]


def test_requirements_when_the_host_could_not_be_probed_or_lacks_tbf(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, delay: 20ms, rate: 5mbit}")
    assert requirements(sc, caps(netem=False, namespaces=False)) == []  # not root: unknown, not refused
    (problem,) = requirements(sc, caps(netem=True, tbf=False))
    assert problem.message == "rate needs the tbf qdisc, and this kernel has none: use a kernel with CONFIG_NET_SCH_TBF"


def test_requirements_accept_tables_bursts_and_handovers_on_a_kernel_with_netem(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, profile: leo-satellite}")
    assert requirements(sc, caps(netem=True)) == []
    without = requirements(sc, caps(netem=False))
    assert [p.message.split(" need")[0] for p in without] == [
        "delay, jitter, distribution, loss and handover (from profile 'leo-satellite')",
    ]


def test_requirements_refuse_a_degrade_with_nothing_to_impair(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire}")
    (problem,) = requirements(sc, never)
    assert problem.message == "nothing to impair: give a parameter or a profile"


def test_requirements_report_invalid_combinations_per_direction(tmp_path: Path) -> None:
    extra = "profiles:\n  odd: {delay: 10ms, reverse: {delay: 0ms}, reorder: 5%}\n"
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, profile: odd}", extra=extra)
    messages = [p.message for p in requirements(sc, caps(netem=True))]
    assert messages == ["b-to-a: reorder needs a delay (reordered packets are the ones sent without it)"]


def test_a_profile_the_scenario_defines_is_what_the_fault_applies(tmp_path: Path) -> None:
    # The resolved step carries the scenario's own profile (here redefining a built-in name).
    extra = "profiles:\n  fibre: {rate: 3mbit, reverse: {rate: 1mbit}}\n"
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, profile: fibre}", extra=extra)
    assert requirements(sc, caps(netem=False)) == []  # rate alone: tbf, no netem needed
    fault = build(sc.steps[0])
    assert fault.describe() == "degrade link wire (profile fibre): a-to-b rate 3 Mbit/s; b-to-a rate 1 Mbit/s"
    ops = RecordingOps()
    fault.apply(FaultContext(ops, FakeClock(), lambda _m: None, random.Random(0)))  # type: ignore[arg-type]
    assert [(c.direction, c.settings) for c in ops.calls[0]] == [
        ("a-to-b", Settings(rate_bps=3_000_000)),
        ("b-to-a", Settings(rate_bps=1_000_000)),
    ]


# --------------------------------------------------------------------------- the fault (fake node operations)


class RecordingOps:
    """Node operations that only record each `impair` call (one list of changes a call), with
    the fake clock's time it was made at."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.calls: list[list[Impairment]] = []
        self.at_s: list[float] = []

    def impair(self, changes: list[Impairment]) -> None:
        self.calls.append(list(changes))
        self.at_s.append(self.clock.now_s() if self.clock is not None else 0.0)


def test_apply_and_revert_are_one_impair_call_each(tmp_path: Path) -> None:
    extra = "profiles:\n  thin: {rate: 5mbit}\n"
    head = HEAD.replace("{name: spare, endpoints: [a:e2, b:e2]}", "{name: spare, endpoints: [a:e2, b:e2], profile: thin}")
    path = tmp_path / "deg.yaml"
    path.write_text(head + extra + "timeline:\n  - {at: 1s, fault: degrade, link: spare, delay: 20ms, for: 1s}\n")
    sc = load_scenario(path)
    fault, ops = build(sc.steps[0]), RecordingOps()
    ctx = FaultContext(ops, FakeClock(), lambda _m: None, random.Random(0))  # type: ignore[arg-type]
    link = sc.topology.link("spare")
    fault.apply(ctx)
    fault.revert(ctx)
    with_profile = Settings(delay_s=0.02, rate_bps=5_000_000)
    assert ops.calls == [
        [Impairment(link, "a-to-b", with_profile), Impairment(link, "b-to-a", with_profile)],
        # Back to the link's own profile (its `thin` rate), in force since deploy.
        [Impairment(link, "a-to-b", Settings(rate_bps=5_000_000)), Impairment(link, "b-to-a", Settings(rate_bps=5_000_000))],
    ]
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, direction: b-to-a, loss: 2%}")
    fault, ops = build(sc.steps[0]), RecordingOps()
    fault.revert(FaultContext(ops, FakeClock(), lambda _m: None, random.Random(0)))  # type: ignore[arg-type]
    assert ops.calls == [[Impairment(sc.topology.link("wire"), "b-to-a", None)]]  # no profile: no impairment


def test_a_ramp_is_played_on_the_drill_clock_through_impair(tmp_path: Path) -> None:
    step = "{at: 1s, fault: degrade, link: wire, direction: a-to-b, rate: 5mbit, ramp: {from: 10ms, to: 15ms, over: 5s}}"
    sc = scenario(tmp_path, step)
    fault = build(sc.steps[0])
    clock = FakeClock(start_s=100.0)
    ops = RecordingOps(clock)
    ctx = FaultContext(ops, clock, lambda _m: None, random.Random(0))  # type: ignore[arg-type]
    fault.apply(ctx)
    # The driver's thread plays the whole ramp at once on the fake clock; revert stops (joins) it.
    driver = fault._driver["on"]
    assert driver._thread is not None
    driver._thread.join(5.0)
    fault.revert(ctx)
    link = sc.topology.link("wire")
    (first,) = ops.calls[0]
    assert first == Impairment(link, "a-to-b", resolved(sc).directions[0].settings)  # the ramp itself: starts at `from`
    # 5 ms over 5 s: one 1 ms step a second, each in place, at exactly its instant.
    assert ops.calls[1:-1] == [
        [Impairment(link, "a-to-b", Settings(delay_s=delay_s, rate_bps=5_000_000), in_place=True)]
        for delay_s in (0.011, 0.012, 0.013, 0.014, 0.015)
    ]
    assert ops.at_s[1:-1] == [101.0, 102.0, 103.0, 104.0, 105.0]
    assert ops.calls[-1] == [Impairment(link, "a-to-b", None)]
    assert [(c.offset_s, c.scheduled_s, c.detail) for c in fault.changes()] == [
        (float(k), 100.0 + k, f"a-to-b delay {10 + k:g} ms, rate 5 Mbit/s") for k in range(1, 6)
    ]


# --------------------------------------------------------------------------- qdisc logic (fake netlink)


@dataclass
class FakeRawLinks:
    """The qdiscs of interface 7 as a kernel with netem keeps them, spoken to in bytes: requests
    are decoded with tc.py's own parser and dumps encoded with its own encoder (the byte layouts
    themselves are pinned in test_tc.py). Records every tc request as (op, kind, handle, parent)."""

    qdiscs: list[tc.Qdisc] = field(default_factory=lambda: [tc.Qdisc(7, "noqueue", 0, TC_H_ROOT)])
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    halve_rates: bool = False

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> bytes:
        q = tc.parse_qdisc(bytes(16) + body)
        self.calls.append(("del" if msg_type == tc.RTM_DELQDISC else "replace", q.kind, q.handle, q.parent))
        if msg_type == tc.RTM_DELQDISC:
            self.qdiscs = [tc.Qdisc(7, "noqueue", 0, TC_H_ROOT)]
            return b""
        options = q.options
        if self.halve_rates and isinstance(options, tc.Tbf):
            options = replace(options, rate_bytes_ps=options.rate_bytes_ps // 2)
        entry = replace(q, options=options)
        if q.parent == TC_H_ROOT:
            self.qdiscs = [entry]
        else:
            self.qdiscs = [x for x in self.qdiscs if x.parent != q.parent] + [entry]
        return b""

    def dump(self, msg_type: int, body: bytes, what: str) -> list[bytes]:
        def message(q: tc.Qdisc) -> bytes:
            body = tc.qdisc_message(q.index, q.handle, q.parent, q.options)
            return bytes(16) + (body if q.options is not None else body + rta(tc.TCA_KIND, q.kind.encode() + b"\0"))

        return [message(q) for q in self.qdiscs]

    def rows(self) -> list[tuple[str, int, int, int | None]]:
        return [
            (q.kind, q.handle, q.parent, q.options.rate_bytes_ps if isinstance(q.options, tc.Tbf) else None)
            for q in self.qdiscs
        ]


class FakeHandles:
    def __init__(self, raw: FakeRawLinks) -> None:
        self.netlink = raw

    def raw(self, node: str) -> FakeRawLinks:
        return self.netlink

    def index(self, node: str, ifname: str) -> int:
        return 7


class FakeNetlinkOps(ImpairmentOpsMixin):
    """The namespace backend's impairment operation, every link served by the kernel engine,
    its netlink handles the fake above."""

    def __init__(self, sc: Scenario, netlink: FakeRawLinks, log: list[str]) -> None:
        namespaces = {node.name: f"drilltest-none-{node.name}" for node in sc.topology.nodes}
        engines = {link.name: "kernel" for link in sc.topology.links}
        super().__init__(None, sc.topology, namespaces, engines, FakeClock(), log.append, None)  # type: ignore[arg-type]
        self.fake = FakeHandles(netlink)

    @property
    def handles(self) -> Any:
        return self.fake


def fake_context(sc: Scenario, netlink: FakeRawLinks, log: list[str]) -> FaultContext:
    ops = FakeNetlinkOps(sc, netlink, log)
    return FaultContext(ops, FakeClock(), log.append, random.Random(0))  # type: ignore[arg-type]


def test_netem_path_puts_tbf_under_netem_and_revert_deletes_only_ours(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, direction: a-to-b, delay: 25ms, rate: 5mbit}")
    fault, netlink, log = build(sc.steps[0]), FakeRawLinks(), []
    fault.apply(fake_context(sc, netlink, log))
    assert netlink.calls == [("replace", "netem", HANDLE, TC_H_ROOT), ("replace", "tbf", CHILD_HANDLE, CHILD_PARENT)]
    assert netlink.rows() == [("netem", HANDLE, TC_H_ROOT, None), ("tbf", CHILD_HANDLE, CHILD_PARENT, 625_000)]
    netlink.calls.clear()
    fault.apply(fake_context(sc, netlink, log))  # again: ours is deleted first (it may hold a delay table)
    assert netlink.calls[0] == ("del", "", HANDLE, TC_H_ROOT) and len(netlink.qdiscs) == 2
    netlink.calls.clear()
    fault.revert(fake_context(sc, netlink, log))
    assert netlink.calls == [("del", "", HANDLE, TC_H_ROOT)]
    fault.revert(fake_context(sc, netlink, log))  # nothing of ours left: nothing deleted
    assert netlink.calls == [("del", "", HANDLE, TC_H_ROOT)] and log == []


def test_a_root_qdisc_we_did_not_create_is_never_replaced_nor_deleted(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, direction: a-to-b, rate: 5mbit}")
    fault, log = build(sc.steps[0]), []
    foreign = tc.Qdisc(7, "htb", 0x10000, TC_H_ROOT)
    netlink = FakeRawLinks(qdiscs=[foreign])
    with pytest.raises(BackendError, match=r"a:e1 has a root qdisc drills did not create \(htb 1:\)"):
        fault.apply(fake_context(sc, netlink, log))
    fault.revert(fake_context(sc, netlink, log))
    assert netlink.calls == [] and netlink.qdiscs == [foreign]
    assert log == ["a:e1: root qdisc htb 1: is not ours; left alone"]


def test_ours_of_another_kind_is_deleted_before_replacing(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, direction: a-to-b, rate: 5mbit}")
    fault = build(sc.steps[0])
    netlink = FakeRawLinks(qdiscs=[tc.Qdisc(7, "netem", HANDLE, TC_H_ROOT, tc.Netem(delay_ns=1000))])
    fault.apply(fake_context(sc, netlink, []))
    assert netlink.calls == [("del", "", HANDLE, TC_H_ROOT), ("replace", "tbf", HANDLE, TC_H_ROOT)]


def test_a_rate_the_kernel_did_not_take_fails_the_confirmation(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "{at: 1s, fault: degrade, link: wire, direction: a-to-b, rate: 5mbit}")
    fault = build(sc.steps[0])

    with pytest.raises(BackendError, match="a:e1: tbf rate reads back as 312500 bytes/s, asked 625000"):
        fault.apply(fake_context(sc, FakeRawLinks(halve_rates=True), []))


# --------------------------------------------------------------------------- real namespaces

PAYLOAD_BYTES = 1000
WIRE_BYTES = PAYLOAD_BYTES + 8 + 20 + 14  # what tbf counts: the Ethernet frame (UDP, IPv4, Ethernet headers)
LIMIT_BPS = 5_000_000
BLAST_BPS = 4 * LIMIT_BPS


def socket_in(namespace: str) -> socket.socket:
    sock = kernel.run_in_namespace(namespace, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.settimeout(0.2)
    return sock


def blast(src_ns: str, dst_ns: str, dst_ip: str, duration_s: float, rate_bps: int = BLAST_BPS) -> float:
    """Send UDP from `src_ns` to a socket in `dst_ns` at `rate_bps` (counted on the wire) for
    `duration_s`, bounded in packets and time; return the rate received, on the wire, in bit/s."""
    # Deterministic: tbf releases packets at its rate exactly. The receiver keeps every packet
    # (a large buffer) and their kernel arrival stamps, so a receiving thread stalled by a loaded
    # machine neither drops packets (which would read as a lower rate) nor bunches their
    # instants; what remains is the receive path's latency at the two ends of the window, well
    # under a ms against 2 s, far inside the 10 % asserted.
    receiver, sender = rx_stamps.receiver(socket_in(dst_ns)), socket_in(src_ns)
    arrivals: list[float] = []
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                _data, _peer, at_ns = rx_stamps.recv_stamped(receiver, 2048)
            except TimeoutError:
                continue
            arrivals.append(at_ns / 1e9)

    try:
        receiver.bind((dst_ip, 0))
        target = (dst_ip, receiver.getsockname()[1])
        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        pps = rate_bps / (WIRE_BYTES * 8)
        count = int(pps * duration_s)
        payload = bytes(PAYLOAD_BYTES)
        start = time.monotonic()
        sent = 0
        while sent < count and time.monotonic() < start + duration_s + 1.0:
            due = min(count, int((time.monotonic() - start) * pps) + 1)
            while sent < due:
                sender.sendto(payload, target)
                sent += 1
            time.sleep(0.0005)
        time.sleep(0.3)  # let the tbf queue (50 ms) drain
        stop.set()
        thread.join(timeout=5)
    finally:
        stop.set()
        receiver.close()
        sender.close()
    assert len(arrivals) > 10, f"only {len(arrivals)} of {sent} packets arrived"
    return (len(arrivals) - 1) * WIRE_BYTES * 8 / (arrivals[-1] - arrivals[0])


def tc_show(namespace: str, ifname: str) -> list[dict[str, Any]]:
    """The qdiscs of an interface as iproute2's tc shows them (not through our own reader)."""
    out = subprocess.run(
        ["tc", "-n", namespace, "-j", "qdisc", "show", "dev", ifname],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return list(json.loads(out))


@dataclass
class Bed:
    sc: Scenario
    ns: dict[str, str]
    ctx: FaultContext
    log: list[str]

    def address(self, node: str, ifname: str) -> str:
        address = self.sc.topology.node(node).interface(ifname).ipv4
        assert address is not None
        return str(address.ip)

    def fault(self, index: int) -> Any:
        return build(self.sc.steps[index])


@pytest.fixture
def bed(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> Iterator[Bed]:
    path = tmp_path / "deg.yaml"
    path.write_text(
        # The kernel engine, even where netem is missing: this bed is about qdiscs.
        HEAD.replace("{name: wire, endpoints: [a:e1, b:e1]}", "{name: wire, endpoints: [a:e1, b:e1], engine: kernel}")
        + "timeline:\n"
        + "  - {at: 1s, fault: degrade, link: wire, direction: a-to-b, rate: 5mbit, for: 1s}\n"
        + "  - {at: 5s, fault: degrade, link: wire, direction: a-to-b, delay: 25ms, rate: 5mbit, for: 1s}\n"
    )
    up = lifecycle.up(path, state_dir)
    log: list[str] = []
    run = RunStore(state_dir).get(up.meta.run_id)
    engines = {link.name: "kernel" for link in up.topology.links}  # no degrade needs netem on `spare`
    ops = NetnsOps(run, up.topology, up.meta.nodes, engines, SystemClock(), log.append, unused_start_service)
    try:
        yield Bed(load_scenario(path), up.meta.nodes, FaultContext(ops, SystemClock(), log.append, random.Random(0)), log)
    finally:
        ops.close()
        lifecycle.down(state_dir, up.meta.run_id)


def unused_start_service(*_args: Any) -> int:
    raise AssertionError("no service in this bed")


@pytest.mark.netns
def test_rate_limit_measured_inside_the_testbed(bed: Bed) -> None:
    fault = bed.fault(0)
    b_ip, a_ip = bed.address("b", "e1"), bed.address("a", "e1")
    fault.apply(bed.ctx)
    (ours,) = tc_show(bed.ns["a"], "e1")
    assert (ours["kind"], ours["handle"], ours.get("root")) == ("tbf", "d511:", True)
    assert ours["options"]["rate"] == LIMIT_BPS // 8
    assert [q["kind"] for q in tc_show(bed.ns["b"], "e1")] == ["noqueue"]  # b-to-a untouched

    limited = blast(bed.ns["a"], bed.ns["b"], b_ip, duration_s=2.0)
    assert abs(limited - LIMIT_BPS) <= 0.10 * LIMIT_BPS, (
        f"a→b received {limited / 1e6:.2f} Mbit/s under a 5 Mbit/s limit"
    )
    other_way = blast(bed.ns["b"], bed.ns["a"], a_ip, duration_s=1.0)
    assert other_way >= 2 * LIMIT_BPS, f"b→a (not degraded) received only {other_way / 1e6:.2f} Mbit/s"

    fault.revert(bed.ctx)
    assert [(q["kind"], q["handle"]) for q in tc_show(bed.ns["a"], "e1")] == [("noqueue", "0:")]
    lifted = blast(bed.ns["a"], bed.ns["b"], b_ip, duration_s=1.0)
    assert lifted >= 2 * LIMIT_BPS, f"a→b after revert received only {lifted / 1e6:.2f} Mbit/s"


def tc_add_foreign(namespace: str, ifname: str) -> None:
    subprocess.run(
        ["tc", "-n", namespace, "qdisc", "add", "dev", ifname, "root", "handle", "1:", "tbf",
         "rate", "1mbit", "burst", "16k", "latency", "50ms"],
        check=True, timeout=30,
    )  # fmt: skip


def foreign(namespace: str, ifname: str) -> list[tuple[str, str]]:
    return [(q["kind"], q["handle"]) for q in tc_show(namespace, ifname)]


@pytest.mark.netns
def test_qdiscs_we_did_not_create_survive(bed: Bed) -> None:
    tc_add_foreign(bed.ns["a"], "e2")  # another interface of the degraded end
    tc_add_foreign(bed.ns["b"], "e1")  # the far end of the degraded link
    fault = bed.fault(0)
    fault.apply(bed.ctx)
    fault.revert(bed.ctx)
    assert foreign(bed.ns["a"], "e2") == [("tbf", "1:")]
    assert foreign(bed.ns["b"], "e1") == [("tbf", "1:")]
    assert foreign(bed.ns["a"], "e1") == [("noqueue", "0:")]

    # On the degraded interface itself: refused, and left alone by the revert that follows.
    tc_add_foreign(bed.ns["a"], "e1")
    with pytest.raises(BackendError, match=r"a:e1 has a root qdisc drills did not create \(tbf 1:\)"):
        fault.apply(bed.ctx)
    fault.revert(bed.ctx)
    assert foreign(bed.ns["a"], "e1") == [("tbf", "1:")]
    assert bed.log == ["a:e1: root qdisc tbf 1: is not ours; left alone"]


def netem_here() -> bool:
    return probe_caps.probe_scratch_namespace(None).netem.ok


def round_trip_s(bed: Bed, count: int = 10) -> float:
    """Median round trip a → b → a of a small UDP packet."""
    a, b = socket_in(bed.ns["a"]), socket_in(bed.ns["b"])
    try:
        b.bind((bed.address("b", "e1"), 0))
        times = []
        for _ in range(count):
            start = time.monotonic()
            a.sendto(b"x", b.getsockname())
            data, sender = b.recvfrom(64)
            b.sendto(data, sender)
            a.settimeout(2.0)
            a.recv(64)
            times.append(time.monotonic() - start)
    finally:
        a.close()
        b.close()
    return sorted(times)[count // 2]


@pytest.mark.netns
def test_netem_path_on_this_kernel(bed: Bed) -> None:
    """Without sch_netem: refused with the reason, nothing left half applied. With it (the VM
    lane): netem at the root with our tbf under it, a 25 ms one-way delay measured, then gone."""
    fault = bed.fault(1)
    if not netem_here():
        with pytest.raises(BackendError, match="Specified qdisc kind is unknown"):
            fault.apply(bed.ctx)
        assert foreign(bed.ns["a"], "e1") == [("noqueue", "0:")]
        fault.revert(bed.ctx)
        assert foreign(bed.ns["a"], "e1") == [("noqueue", "0:")] and bed.log == []
        return
    fault.apply(bed.ctx)
    shown = {q["handle"]: q for q in tc_show(bed.ns["a"], "e1")}
    assert shown["d511:"]["kind"] == "netem" and shown["d511:"].get("root")
    assert shown["d512:"]["kind"] == "tbf" and shown["d512:"]["parent"] == "d511:1"
    assert shown["d512:"]["options"]["rate"] == LIMIT_BPS // 8
    assert 0.025 <= round_trip_s(bed) <= 0.045
    fault.revert(bed.ctx)
    assert foreign(bed.ns["a"], "e1") == [("noqueue", "0:")]
    assert round_trip_s(bed) < 0.010


DRILL = """
version: 1
name: deg-drill
topology:
  nodes: {a: {}, b: {routes: [{to: a, via: a:e1}]}}  # the stream is sent from a's loopback
  links: [{name: wire, endpoints: [a:e1, b:e1]}]
probes:
  - {name: stream, type: udp-stream, from: a, to: b:e1, rate_pps: 1000, size_bytes: 64}
timeline:
  - {id: squeeze, at: 1.5s, fault: degrade, link: wire, rate: 200kbit, for: 1s}
duration: 4s
"""


@pytest.mark.netns
def test_drill_with_a_rate_degrade(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = tmp_path / "deg-drill.yaml"
    path.write_text(DRILL)
    assert requirements(load_scenario(path), doctor.capabilities) == []  # the real capabilities: rate alone is fine here
    log: list[str] = []
    result = run_drill(path, state_dir, log=log.append)
    steps = [(s.label, s.kind, s.detail) for s in result.steps]
    assert steps == [
        ("squeeze", "apply", "degrade link wire, both directions: rate 200 kbit/s"),
        ("squeeze", "revert", "link wire: degrade lifted (a:e1, b:e1 back to the default qdisc)"),
    ]
    assert result.revert_failures == []
    (window,) = [m for m in result.metrics if m.kind == "apply"]
    # 1000 packets/s of 106-byte frames (848 kbit/s) through 200 kbit/s: most are dropped.
    assert window.lost > 300, window
    assert not result.inconclusive  # the baseline was clean: the losses are the squeeze's
    assert not any(state_dir.glob("runs/*"))

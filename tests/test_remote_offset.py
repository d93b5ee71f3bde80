"""The clock offset (four timestamps, the minimum-rtt round kept), on a fake clock pair with a
known offset and asymmetric, varying delays: the estimate is within its bound of the truth."""

from __future__ import annotations

import random
from typing import Any

import pytest

from drills.clock import FakeClock
from drills.errors import BackendError
from drills.remote.offset import ClockOffset, estimate


class FakeAgent:
    """A controller clock and an agent clock `true_offset_s` ahead; each `time` request takes
    `out_s` to reach the agent, `service_s` there, `back_s` to return (drawn per round)."""

    host = "h2"

    def __init__(self, true_offset_s: float, delays: list[tuple[float, float, float]]) -> None:
        self.clock = FakeClock(1000.0)
        self.true_offset_s = true_offset_s
        self.delays = list(delays)

    def call(self, method: str, *args: Any, timeout_s: float = 0.0, **kwargs: Any) -> Any:
        assert method == "time"
        out_s, service_s, back_s = self.delays.pop(0)
        self.clock.t += out_s
        t2 = self.clock.t + self.true_offset_s
        self.clock.t += service_s
        t3 = self.clock.t + self.true_offset_s
        self.clock.t += back_s
        return [t2, t3]


def test_symmetric_delays_give_the_exact_offset() -> None:
    agent = FakeAgent(-123.456, [(0.002, 0.0001, 0.002)] * 4)
    found = estimate(agent, rounds=4)
    assert found.offset_s == pytest.approx(-123.456, abs=1e-9)
    assert found.rtt_s == pytest.approx(0.004, abs=1e-9)
    assert found.bound_s == pytest.approx(0.002, abs=1e-9)
    assert found.to_controller(found.to_agent(5.0)) == pytest.approx(5.0)


@pytest.mark.parametrize("seed", range(20))
def test_asymmetric_delays_keep_the_truth_within_the_bound(seed: int) -> None:
    rng = random.Random(seed)  # seeded: the same delays every run
    true_offset_s = rng.uniform(-1e4, 1e4)
    delays = [(rng.uniform(0.0001, 0.05), rng.uniform(0, 0.001), rng.uniform(0.0001, 0.05)) for _ in range(16)]
    found = estimate(FakeAgent(true_offset_s, delays), rounds=16)
    assert abs(found.offset_s - true_offset_s) <= found.bound_s + 1e-9
    # the round kept is the one with the least time on the wire
    assert found.rtt_s == pytest.approx(min(out + back for out, _, back in delays), abs=1e-9)
    assert found.rounds == 16
    # an agent instant maps onto the controller's clock within the bound
    assert abs(found.to_controller(2000.0 + true_offset_s) - 2000.0) <= found.bound_s + 1e-9


def test_all_one_way_delay_is_the_worst_case_and_still_bounded() -> None:
    found = estimate(FakeAgent(7.0, [(0.010, 0.0, 0.0)]), rounds=1)
    assert found.offset_s == pytest.approx(7.005)
    assert found.bound_s == pytest.approx(0.005)
    assert abs(found.offset_s - 7.0) <= found.bound_s + 1e-12


def test_nonsense_answers_are_backend_errors() -> None:
    class Broken(FakeAgent):
        def call(self, method: str, *args: Any, timeout_s: float = 0.0, **kwargs: Any) -> Any:
            return "soon"

    with pytest.raises(BackendError, match="h2: the agent's time answer is not two instants"):
        estimate(Broken(0.0, []), rounds=1)

    class Backwards(FakeAgent):
        def call(self, method: str, *args: Any, timeout_s: float = 0.0, **kwargs: Any) -> Any:
            return [10.0, 20.0]  # 10 s of service in a round trip of none

    with pytest.raises(BackendError, match="negative round trip"):
        estimate(Backwards(0.0, []), rounds=1)
    with pytest.raises(ValueError):
        estimate(FakeAgent(0.0, []), rounds=0)
    assert ClockOffset(1.0, 0.1, 0.2, 3).to_controller(11.0) == 10.0

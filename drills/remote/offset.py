"""An agent's clock against the controller's, as NTP estimates it: four timestamps a round.

    t1  the controller sends `time`          (controller's clock)
    t2  the agent receives it                (agent's clock)
    t3  the agent answers                    (agent's clock)
    t4  the controller receives the answer   (controller's clock)

    offset = ((t2 - t1) + (t3 - t4)) / 2      (agent minus controller)
    rtt    = (t4 - t1) - (t3 - t2)            (time on the wire, both ways)

Whatever the split of `rtt` between the two directions, the true offset lies within rtt / 2 of
the estimate; so the round with the smallest rtt (NTP's choice: the least queueing) gives the
tightest bound, and `bound_s` is that rtt / 2. Both clocks are monotonic: the offset holds for
the run (drift of a few ppm over a drill of minutes is far below the bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from drills.clock import Clock
from drills.errors import BackendError

TIME_TIMEOUT_S = 5.0


class TimeSource(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def clock(self) -> Clock:
        """The controller's clock."""


    def call(self, method: str, *args: Any, timeout_s: float = ..., **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class ClockOffset:
    """An agent's clock minus the controller's, within +/- `bound_s`."""

    offset_s: float
    bound_s: float
    rtt_s: float  # of the round kept
    rounds: int

    def to_controller(self, agent_instant_s: float) -> float:
        """An instant of the agent's clock on the controller's (within `bound_s`)."""
        return agent_instant_s - self.offset_s

    def to_agent(self, controller_instant_s: float) -> float:
        return controller_instant_s + self.offset_s


def estimate(client: TimeSource, rounds: int = 16) -> ClockOffset:
    """The offset of `client`'s agent, from the minimum-rtt round of `rounds`."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    best: tuple[float, float] | None = None  # (rtt, offset)
    for _ in range(rounds):
        t1 = client.clock.now_s()
        answer = client.call("time", timeout_s=TIME_TIMEOUT_S)
        t4 = client.clock.now_s()
        try:
            t2, t3 = (float(v) for v in answer)
        except (TypeError, ValueError):
            raise BackendError(f"{client.host}: the agent's time answer is not two instants: {answer!r:.80}") from None
        rtt = (t4 - t1) - (t3 - t2)
        if rtt < 0:
            raise BackendError(f"{client.host}: the agent's time answer is inconsistent (negative round trip {rtt:.6f} s)")
        if best is None or rtt < best[0]:
            best = (rtt, ((t2 - t1) + (t3 - t4)) / 2)
    assert best is not None
    return ClockOffset(offset_s=best[1], bound_s=best[0] / 2, rtt_s=best[0], rounds=rounds)

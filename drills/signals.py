"""SIGINT and SIGTERM as an exception: a leaf, so the engine and the lifecycle both use it
without leaning on each other."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from drills.errors import Aborted


@contextmanager
def abort_on_signals() -> Iterator[None]:
    """Within this block, SIGINT and SIGTERM raise Aborted (so `finally` and teardown run)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Aborted(f"stopped by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

"""The relay process of one userspace link: `python -m drills.userspace.relay ...`.

It is a process of its own so that the drill's GIL, probes and timeline never delay a frame.
It gets every descriptor from its parent (`pass_fds`): the two TAPs, an rtnetlink link-event
socket in each end's namespace, and the listening control socket; it opens nothing itself.

One loop, no threads: select(2) on every descriptor with a timeout until the next frame is due
(select takes microseconds, unlike poll and epoll's milliseconds, and the timer slack is set to
1 ns), read every frame that is ready, hand it to its direction's model (`impair.Direction`),
write every frame that is due. The control channel speaks JSON lines (see `control`,
`protocol`, `server`): `set` replaces a direction's parameters between two frames and answers
with what is now in force; a client can delay the loop by at most a few requests' work.
The argv carries `--run-id RUN` so that `drill clean` can find a relay by its label even if it
was killed before its pid reached the journal.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import select
import signal
import socket
import stat
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drills.userspace import protocol, tap
from drills.userspace.impair import Direction, Impairments
from drills.userspace.server import ControlServer

READ_BATCH = 64  # frames read from one TAP per wake-up, so one busy direction cannot starve the other
MAX_FRAME = 65_536
PR_SET_TIMERSLACK = 29
NICE = -10  # the relay is the wire: it should win the CPU against the drill's own threads
DIRECTIONS = protocol.DIRECTIONS


class Relay:
    def __init__(self, args: argparse.Namespace) -> None:
        self.taps = {"a": args.tap_a, "b": args.tap_b}
        self.names = {"a": args.name_a, "b": args.name_b}
        self.events = {"a": socket.socket(fileno=args.events_a), "b": socket.socket(fileno=args.events_b)}
        self.indices = {end: tap.interface_index(self.events[end].fileno(), self.names[end]) for end in "ab"}
        self.control = ControlServer(socket.socket(fileno=args.control), self)
        self.seed = args.seed
        config = json.loads(args.config)
        now = time.monotonic()
        self.directions = {
            name: Direction(protocol.parse_impairments(config.get(name, {})), random.Random(f"{args.seed}/{name}"))
            for name in DIRECTIONS
        }
        for d in self.directions.values():
            d.set(d.params, now)
        self.up = {end: tap.admin_up(self.events[end].fileno(), self.names[end]) for end in "ab"}
        for fd in self.taps.values():
            os.set_blocking(fd, False)
        for sock in self.events.values():
            sock.setblocking(False)
        self._mirror_carrier()

    # ------------------------------------------------------------------ carrier

    def _mirror_carrier(self) -> None:
        """Both TAPs have carrier while both ends are administratively up, as a veth pair has
        (veth_open and veth_close set the carrier of both ends)."""
        both = self.up["a"] and self.up["b"]
        tap.set_carrier(self.taps["a"], both)
        tap.set_carrier(self.taps["b"], both)

    def _link_events(self, end: str) -> None:
        try:
            data = self.events[end].recv(65_536)
        except BlockingIOError:
            return
        except OSError:  # ENOBUFS: events were dropped; ask the kernel for the state instead
            data = b""
            up_now = tap.admin_up(self.events[end].fileno(), self.names[end])
            changed = up_now != self.up[end]
            self.up[end] = up_now
        else:
            changed = False
        for index, up in tap.link_changes(data):
            if index == self.indices[end] and up != self.up[end]:
                self.up[end] = up
                changed = True
        if changed:
            self._mirror_carrier()

    # ------------------------------------------------------------------ frames

    def _read(self, end: str, now: float) -> None:
        direction = self.directions["a-to-b" if end == "a" else "b-to-a"]
        fd = self.taps[end]
        for _ in range(READ_BATCH):
            try:
                frame = os.read(fd, MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # EIO while the device is down: nothing to read
            direction.arrive(frame, now)

    def _send(self, now: float) -> None:
        for name, direction in self.directions.items():
            far = "b" if name == "a-to-b" else "a"
            for frame in direction.due(now):
                if not self.up[far]:
                    direction.counters.write_drops += 1  # a down interface receives nothing
                    continue
                try:
                    os.write(self.taps[far], frame)
                    direction.counters.delivered += 1
                except OSError:
                    direction.counters.write_drops += 1

    # ------------------------------------------------------------------ control

    def set_params(self, direction: str, params: Impairments) -> dict[str, Any]:
        self.directions[direction].set(params, time.monotonic())
        return {direction: self.directions[direction].params.to_wire()}

    def state(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "seed": self.seed,
            "params": {name: d.params.to_wire() for name, d in self.directions.items()},
            "up": self.up,
            "pending": {name: d.pending() for name, d in self.directions.items()},
        }

    def stats(self) -> dict[str, Any]:
        return {
            "counters": {name: asdict(d.counters) for name, d in self.directions.items()},
            "pending": {name: d.pending() for name, d in self.directions.items()},
            "control": asdict(self.control.counters),
        }

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        readable: dict[int, Any] = {
            self.taps["a"]: lambda now: self._read("a", now),
            self.taps["b"]: lambda now: self._read("b", now),
            self.events["a"].fileno(): lambda _now: self._link_events("a"),
            self.events["b"].fileno(): lambda _now: self._link_events("b"),
        }
        control = self.control
        while True:
            now = time.monotonic()
            dues = [t for d in self.directions.values() if (t := d.next_due(now)) is not None]
            timeout = max(0.0, min(dues) - now) if dues else None
            if control.busy():
                timeout = 0.0
            ready, writable, _ = select.select([*readable, *control.readers()], control.writers(), [], timeout)
            now = time.monotonic()
            for fd in ready:
                if fd in readable:
                    readable[fd](now)
                else:
                    control.readable(fd)
            for fd in writable:
                control.writable(fd)
            control.answer_pending()
            self._send(time.monotonic())


def _tune() -> None:
    """Wake on time (1 ns timer slack instead of 50 µs) and win the CPU against the drill."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    with contextlib.suppress(OSError):
        os.nice(NICE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drills.userspace.relay", description=__doc__)
    parser.add_argument("--run-id", required=True, help="label: the run this relay belongs to")
    parser.add_argument("--link", required=True, help="label: the link this relay serves")
    parser.add_argument("--seed", type=int, required=True)
    for name in ("tap-a", "tap-b", "events-a", "events-b", "control"):
        parser.add_argument(f"--{name}", type=int, required=True, help="an inherited descriptor")
    parser.add_argument("--control-path", type=Path, help="the control socket's file: unlinked on exit")
    parser.add_argument("--name-a", required=True)
    parser.add_argument("--name-b", required=True)
    parser.add_argument("--config", default="{}", help="JSON: direction -> initial parameters")
    args = parser.parse_args(argv)
    _tune()
    # Teardown stops a relay with SIGTERM: leave through `finally`, which removes the socket file.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        relay = Relay(args)
        print(f"relay {args.link} of run {args.run_id}: pid {os.getpid()}, seed {args.seed}", file=sys.stderr, flush=True)
        relay.run()
    except KeyboardInterrupt:
        return 0
    finally:
        if args.control_path is not None:
            _unlink_socket(args.control_path)
    return 0


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _unlink_socket(path: Path) -> None:
    """Remove the control socket file, and only a socket (the run directory is root's alone)."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())

"""What every benchmark shares: Ctrl-C/SIGTERM handling around a cleanup, and the host facts
recorded with each result (so figures from two days are never compared without context).

bench/ is not a package: scripts put their own directory on sys.path and `import common`.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drills.errors import Aborted


@dataclass
class Interruption:
    """Set when the guarded block was stopped by Ctrl-C or SIGTERM."""

    interrupted: bool = False
    left: list[str] = field(default_factory=list)  # what the cleanup could not remove


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def interruptible(cleanup: Callable[[], list[str]]) -> Iterator[Interruption]:
    """Run the block with SIGTERM acting as Ctrl-C, then always run `cleanup` (which returns
    what it could not remove) with both signals ignored, so a second Ctrl-C cannot cut it short.
    An interruption is swallowed and reported in the yielded flag: callers return 130."""
    state = Interruption()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # Ctrl-C must raise even when a shell started us in the background (it leaves SIGINT
    # ignored, and then Python installs no handler of its own).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield state
    except (KeyboardInterrupt, Aborted):
        state.interrupted = True
        print("interrupted: cleaning up", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        state.left = cleanup()
        for problem in state.left:
            print(f"LEFT: {problem}", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def clean_state(state_dir: Path, work_dir: Path | None = None) -> list[str]:
    """Tear down every run left in a benchmark's temporary state directory (from its journals,
    `drill up` testbeds included), then remove `work_dir`; returns what could not be removed."""
    from drills import lifecycle

    left: list[str] = []
    try:
        report = lifecycle.clean(state_dir, include_up=True)
        for cleaned in report.cleaned.values():
            left.extend(cleaned.left)
        left.extend(f"run {run_id}: {why}" for run_id, why in report.skipped.items())
    except Exception as exc:
        left.append(f"clean: {exc}")
    if work_dir is not None:
        shutil.rmtree(work_dir, ignore_errors=True)
    return left


def package_version(name: str) -> str | None:
    """Installed version of a Python distribution, or None."""
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def debian_version(name: str) -> str | None:
    """Installed version of a Debian package, or None."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def host_meta() -> dict[str, Any]:
    """When and where a benchmark ran."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pyroute2": package_version("pyroute2"),
    }


def node_ops(topology: Any, namespaces: dict[str, str], run: Any, clock: Any = None) -> Any:
    """Node operations (`NetnsOps`) on a testbed `lifecycle.up` deployed, for benchmarks that
    apply faults themselves: every link served by the kernel (the benchmarks' topologies ask for
    no netem), no services, every handle opened and index looked up before any clock starts."""
    from drills.clock import SystemClock
    from drills.netns.ops import NetnsOps

    def no_services(*_args: Any) -> int:
        raise RuntimeError("this benchmark's testbed has no services")

    engines = {link.name: "kernel" for link in topology.links}
    ops = NetnsOps(run, topology, namespaces, engines, clock or SystemClock(), lambda _m: None, no_services)
    ops.warm()
    return ops


def link_down(topology: Any, link: Any) -> Any:
    """The `link-down` fault of both ends of `link`, as the loader resolves it (with the static
    routes through each end, re-installed on revert)."""
    from drills.engine.link_faults import LinkDown
    from drills.scenario.steps import routes_through

    ends = (link.a, link.b)
    return LinkDown(link, ends, tuple((e, tuple(routes_through(topology.node(e.node), e))) for e in ends))


def line_drill_yaml(name: str, subnet: int, rate_pps: int, duration_s: float) -> str:
    """Two nodes on one wire, a stream a -> b at `rate_pps`, the wire cut for 1 s at 3 s and at
    6 s: the drill the live-view and control benches time. Addresses from 198.18.`subnet`.0/24
    (a bench of its own each, so that two benches never share a subnet)."""
    return f"""version: 1
name: {name}
topology:
  addressing: {{ipv4: 198.18.{subnet}.0/24, loopbacks: 198.19.{subnet}.0/24}}
  nodes:
    a: {{routes: [{{to: b, via: b:e1}}]}}
    b: {{routes: [{{to: a, via: a:e1}}]}}
  links: [{{name: wire, endpoints: [a:e1, b:e1]}}]
probes:
  - {{name: stream, type: udp-stream, from: a, to: b, rate_pps: {rate_pps}}}
timeline:
  - {{id: cut, at: 3s, fault: link-down, link: wire, for: 1s}}
  - {{id: cut2, at: 6s, fault: link-down, link: wire, for: 1s}}
duration: {duration_s:g}s
"""

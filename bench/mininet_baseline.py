"""Baseline for the deploy benchmark: how long Mininet takes to build and tear down a topology.

``time_mininet(n)`` runs ``mn --topo linear,K --switch lxbr --controller none --test none``
(K = n // 2, so K hosts + K switches = 2K nodes) and times the whole command.

Why the command runs in a sandbox: Mininet's cleanup (``mn -c``, and the cleanup ``mn`` runs by
itself when it hits an exception) does ``killall -9 ping controller mnexec ...``,
``pkill -9 -f mininet:`` and ``rm -f /tmp/*.log /tmp/*.out`` machine-wide. On a shared machine
that kills other people's pings and deletes their logs. So every ``mn`` here runs under
``unshare --pid --fork --mount-proc`` (its kills only see its own processes) with a private
tmpfs on /tmp (its ``rm`` only sees its own files). The network namespace is *not* unshared:
Mininet must build in the real root namespace to be a fair baseline, and its link cleanup
(delete root-namespace links named ``*-ethN``) stays machine-wide. Linux bridges (``s1`` ...) are
not removed by ``mn -c``; links that appeared during the run and look like Mininet's are deleted
here afterwards, and nothing else is touched.

Switch type: ``lxbr`` (Linux bridge, needs ``brctl`` from bridge-utils) works on a kernel without
Open vSwitch; ``user`` needs the CPqD ``ofdatapath``, which Debian does not package.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any

# Mininet names: hosts h1.., switches s1.., interfaces <node>-eth<N>.
_MN_LINK = re.compile(r"^(?:[hs]\d+|[hs]\d+-eth\d+)$")
_COMPLETED = re.compile(r"completed in ([0-9.]+) seconds")
# The first teardown line mn prints ("*** Stopping 0 controllers" with --controller none).
_STOPPING = "*** Stopping"


def _require_tools(switch: str) -> str:
    mn = shutil.which("mn")
    if mn is None:
        raise RuntimeError(
            "Mininet's `mn` was not found on PATH: install it with "
            "`apt-get install --no-install-recommends mininet bridge-utils` (or run ./dev setup)"
        )
    if switch == "lxbr" and shutil.which("brctl") is None:
        raise RuntimeError(
            "`mn --switch lxbr` needs `brctl`: `apt-get install bridge-utils` (or run ./dev setup)"
        )
    if shutil.which("unshare") is None:
        raise RuntimeError("`unshare` (util-linux) is needed to sandbox Mininet's cleanup")
    if os.geteuid() != 0:
        raise RuntimeError("Mininet must run as root")
    return mn


def _sandboxed(argv: list[str]) -> list[str]:
    """Wrap argv so its process kills and /tmp deletions cannot reach outside the sandbox."""
    script = 'mount -t tmpfs mn-sandbox-tmp /tmp && HOME=/tmp exec "$@"'
    return [
        "unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
        "sh", "-c", script, "sh", *argv,
    ]  # fmt: skip


def root_links() -> list[str]:
    """Names of the links in the root network namespace (what ``ip -br link`` lists)."""
    out = subprocess.run(
        ["ip", "-br", "link"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    # "veth0@if3   UP ..." -> "veth0"
    return sorted(line.split()[0].split("@")[0] for line in out.splitlines() if line.strip())


def _mn_clean(mn: str) -> None:
    """Mininet's own cleanup, sandboxed (see the module docstring)."""
    subprocess.run(
        _sandboxed([mn, "-c"]),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _remove_new_mininet_links(before: list[str]) -> list[str]:
    """Delete links that appeared since ``before`` and carry Mininet's names; return what's left."""
    known = set(before)
    for name in root_links():
        if name not in known and _MN_LINK.match(name):
            subprocess.run(
                ["ip", "link", "del", name], capture_output=True, timeout=30, check=False
            )
    return sorted(set(root_links()) - known)


def time_mininet(n_nodes: int, timeout_s: float = 600, switch: str = "lxbr") -> dict[str, Any]:
    """Time ``mn --topo linear,K --switch <switch> --controller none --test none``.

    Returns ``{"tool": "mininet", "nodes": 2K, "total_s", "reported_s", "setup_s",
    "teardown_s", "switch"}``: ``total_s`` is the wall time of the whole command (interpreter
    start included), ``reported_s`` is Mininet's own "completed in" figure (build + stop, without
    Python start-up), ``setup_s``/``teardown_s`` split the wall time at the first "*** Stopping"
    line Mininet prints (None when that line is absent).
    Raises RuntimeError when Mininet is missing, fails, times out or leaves links behind.
    """
    k = n_nodes // 2
    if k < 1:
        raise ValueError(f"n_nodes must be at least 2, got {n_nodes}")
    mn = _require_tools(switch)
    argv = [mn, "--topo", f"linear,{k}", "--switch", switch, "--controller", "none",
            "--test", "none"]  # fmt: skip

    _mn_clean(mn)
    before = root_links()

    lines: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        _sandboxed(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # our own process group: a timeout kills only what we started
    )
    assert proc.stdout is not None
    stdout = proc.stdout

    def _read() -> None:
        for line in stdout:
            lines.append((time.perf_counter(), line))

    reader = threading.Thread(target=_read, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout_s)
        total_s = time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        rc = None
        total_s = time.perf_counter() - t0
    finally:
        reader.join(timeout=10)
        _mn_clean(mn)
        leftover = _remove_new_mininet_links(before)

    output = "".join(text for _, text in lines)
    if rc is None:
        raise RuntimeError(f"mn linear,{k} did not finish within {timeout_s} s")
    if rc != 0:
        raise RuntimeError(f"mn linear,{k} exited with {rc}:\n{output[-2000:]}")
    if leftover:
        raise RuntimeError(f"links left in the root namespace after mn linear,{k}: {leftover}")

    match = _COMPLETED.search(output)
    stop_at = next((t for t, text in lines if text.startswith(_STOPPING)), None)
    return {
        "tool": "mininet",
        "nodes": 2 * k,
        "switch": switch,
        "total_s": total_s,
        "reported_s": float(match.group(1)) if match else None,
        "setup_s": stop_at - t0 if stop_at is not None else None,
        "teardown_s": t0 + total_s - stop_at if stop_at is not None else None,
    }


def main(argv: list[str]) -> int:
    """``python bench/mininet_baseline.py 10 100 500``: print one result line per size."""
    for arg in argv or ["10"]:
        print(time_mininet(int(arg)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

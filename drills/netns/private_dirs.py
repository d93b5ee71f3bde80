"""A service's private directory (drills.scenario.resolved.PrivateDir) made in the run directory
before the service starts: `<run dir>/nodes/<node>/<name>`, its files written afresh at each start
(a restart after `node-loss` finds its configuration as deploy left it). Nothing is made outside
the run directory (private to root, as the run directory is), so teardown has nothing to remove
and the files stay with the run's other evidence (logs, journal)."""

from __future__ import annotations

import os
from pathlib import Path

from drills.errors import BackendError
from drills.scenario.resolved import PrivateDir


def path(run_dir: Path, node: str, private: PrivateDir) -> Path:
    """Where the directory of `private` is for `node` in the run directory `run_dir`."""
    return run_dir / "nodes" / node / private.name


def prepare(run_dir: Path, node: str, private: PrivateDir) -> Path:
    """Make (or reuse) the directory of `private` for `node`, write its files; returns its path."""
    target_dir = path(run_dir, node, private)
    for directory in (target_dir.parent.parent, target_dir.parent, target_dir):
        directory.mkdir(mode=0o700, exist_ok=True)
        if directory.is_symlink() or not directory.is_dir():
            raise BackendError(f"node {node}: {directory} is not a directory of this run's; remove it")
    for name, text in private.files:
        # Written fresh (O_TRUNC), never through a link a daemon left there, for root only.
        fd = os.open(target_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode())
    return target_dir

"""Baselines: the last good run of each scenario, kept in a directory CI carries between jobs.

`drill run --save-baseline DIR` keeps a run's results.json as `DIR/SCENARIO/results.json` when
the run passed (conclusive, every objective met) and did not regress; `--baseline DIR` compares
the run with that file (drills.reports.compare) and fails on a regression beyond both accuracy
bounds. A comparison of nothing never passes: no figure in common is an error, and so is a
missing baseline unless the same command saves one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from drills.errors import BadInput
from drills.reports.compare import Comparison, compare
from drills.results import RESULTS_FILE, read

NAME_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _directory(root: Path, scenario: str) -> Path:
    # A scenario's name is a Name (checked at load), so it is a safe file name; checked again
    # here because a baseline directory is written as root.
    if not scenario or not set(scenario) <= NAME_SAFE or scenario.startswith("."):
        raise BadInput(f"scenario name {scenario!r} cannot name a baseline; rename the scenario (letters, digits, - _ .)")
    return root / scenario


def check(root: Path, scenario: str, run_dir: Path) -> Comparison | None:
    """The run in `run_dir` against the baseline of `scenario` in `root`; None when there is none.
    BadInput when the two have no figure in common."""
    base_dir = _directory(root, scenario)
    if not (base_dir / RESULTS_FILE).is_file():
        return None
    comparison = compare(read(base_dir)[0], read(run_dir)[0])
    if (why := comparison.nothing_in_common()) is not None:
        raise BadInput(f"baseline {base_dir / RESULTS_FILE}: {why}; remove it, or save a new one with --save-baseline")
    return comparison


def save(root: Path, scenario: str, run_dir: Path) -> Path:
    """Keep `run_dir`'s results.json as the baseline of `scenario` (atomically, private)."""
    base_dir = _directory(root, scenario)
    base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if base_dir.is_symlink() or not base_dir.is_dir():
        raise BadInput(f"{base_dir} is not a directory; give --save-baseline a directory of your own")
    data = (run_dir / RESULTS_FILE).read_bytes()
    handle, temporary = tempfile.mkstemp(prefix=".results-", dir=base_dir)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, base_dir / RESULTS_FILE)  # never a half-written baseline
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return base_dir / RESULTS_FILE

"""The hostile corpus: every file in tests/hostile/<group>/ (and every case tests/hostile/generate*.py
writes) makes `drill validate FILE` exit 2 with its pinned message, within bounds.

Format (tests/hostile/README is this docstring): a case file's first line is
`# expect: <substring of the output>`; files in `_inc/` are included by cases, not cases. For each
case the output (stdout and stderr) must hold the expected text and name the case file (or a
file it includes) with a line (`NAME:LINE`), hold no traceback, no raw control character, and
never the marker `generate.SECRET` (content of files drills must not quote). Each case runs in
its own process under a 1 GiB address-space cap with a 30 s hang guard, two at a time (see
tests/hostile/harness.py). Deterministic: fixed files, seeded junk, no timing assertion.
"""

from __future__ import annotations

import importlib.util
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
HOSTILE = Path("tests/hostile")  # relative to REPO: the rendered names stay short


# tests/hostile is not a package: its modules are imported by name from there.
sys.path.insert(0, str(REPO / HOSTILE))
harness: Any = importlib.import_module("harness")
generate: Any = importlib.import_module("generate")
SECRET: str = generate.SECRET


def static_cases() -> list[tuple[Path, str]]:
    out = []
    for path in sorted((REPO / HOSTILE).glob("*/*.yaml")):
        first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        assert first.startswith("# expect: "), f"{path}: the first line is `# expect: TEXT`"
        out.append((path.relative_to(REPO), first.removeprefix("# expect: ")))
    return out


GENERATED_DIR = Path(tempfile.mkdtemp(prefix="drills-hostile-"))


def generated_cases() -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for name in ("generate", "generate_values"):  # the second: helper "values"' cases, when merged
        if importlib.util.find_spec(name) is not None:
            directory = GENERATED_DIR / name
            directory.mkdir()
            out += importlib.import_module(name).cases(directory)
    return out


CASES = static_cases() + generated_cases()
_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
_NAMED = re.compile(r"(\S+?):([1-9][0-9]*):[0-9]+: ")


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Any]:
    try:
        return dict(harness.run([path for path, _ in CASES], REPO))
    finally:
        shutil.rmtree(GENERATED_DIR, ignore_errors=True)


def _names_a_file(output: str, case: Path) -> bool:
    """NAME:LINE for the case itself, a file it includes (`_inc/`, generated) or a system file."""
    for match in _NAMED.finditer(output):
        name = match.group(1)
        if name == str(case) or "/_inc/" in name or name.startswith(("/", str(HOSTILE))):
            return True
    return False


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 150


@pytest.mark.parametrize(("case", "expected"), CASES, ids=[str(path) for path, _ in CASES])
def test_case(case: Path, expected: str, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[str(case)]
    raw: bytes = outcome.output
    output = raw.decode("utf-8", errors="replace")
    assert not outcome.hung, f"{case}: still running after {harness.HANG_GUARD_S} s"
    assert outcome.exit_code == 2, output
    assert expected in output, output
    assert "Traceback" not in output
    assert not _CONTROL.search(raw), output
    assert SECRET not in output, output
    assert _names_a_file(output, case), output


@pytest.mark.parametrize(
    "name", ["tests/hostile/yaml/recursive-alias-list.yaml", "tests/hostile/includes/include-dev-zero.yaml"]
)
def test_the_real_command_agrees(name: str) -> None:
    """The harness runs `drills.cli.main` in a forked child; `python -m drills validate` itself
    gives the same, under the same cap."""
    expected = (REPO / name).read_text(encoding="utf-8").split("\n", 1)[0].removeprefix("# expect: ")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (harness.MEMORY_CAP_BYTES, harness.MEMORY_CAP_BYTES))

    done = subprocess.run(
        [sys.executable, "-m", "drills", "validate", name],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=harness.HANG_GUARD_S,
        preexec_fn=cap,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert expected in done.stdout + done.stderr

"""The wheels hosts install drills from (drills/hosts/wheels.py), built from a small project of
the same name and version made here: cached by version and sources, and reproducible (the same
sources make the same tar, so hosts need not install it again)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import drills
from drills.errors import HostError
from drills.hosts import wheels


def _project(root: Path, body: str = "") -> Path:
    (root / "drills").mkdir(parents=True)
    (root / "drills" / "__init__.py").write_text(f'__version__ = "{drills.__version__}"\n{body}')
    (root / "README.md").write_text("a stand-in for drills\n")
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "drills"\nversion = "{drills.__version__}"\nreadme = "README.md"\ndependencies = []\n\n'
        '[tool.setuptools.packages.find]\ninclude = ["drills*"]\n'
    )
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_wheels_are_cached_by_sources_and_reproducible(tmp_path: Path) -> None:
    root = _project(tmp_path / "src")
    first = wheels.build(tmp_path / "state-a", root=root)
    assert first.version == drills.__version__
    assert [p.name for p in first.directory.glob("*.whl")] == [f"drills-{drills.__version__}-py3-none-any.whl"]
    built_at = first.tarball.stat().st_mtime_ns
    assert wheels.build(tmp_path / "state-a", root=root) == first  # reused, not rebuilt
    assert first.tarball.stat().st_mtime_ns == built_at
    # Another state directory builds again, to the very same bytes.
    second = wheels.build(tmp_path / "state-b", root=root)
    assert _sha(second.tarball) == _sha(first.tarball)
    # A changed source is a new build.
    (root / "drills" / "__init__.py").write_text(f'__version__ = "{drills.__version__}"\nCHANGED = 1\n')
    third = wheels.build(tmp_path / "state-a", root=root)
    assert third.directory != first.directory
    assert _sha(third.tarball) != _sha(first.tarball)


def test_a_failed_build_says_why_and_leaves_no_cache(tmp_path: Path) -> None:
    root = _project(tmp_path / "src")
    (root / "pyproject.toml").write_text("[project\n")  # not TOML
    with pytest.raises(HostError, match=r"building the wheels for hosts .* failed"):
        wheels.build(tmp_path / "state", root=root)
    assert [p.name for p in (tmp_path / "state" / "wheels").iterdir()] == []


def test_the_project_root_is_this_checkout() -> None:
    root = wheels.project_root()
    assert (root / "drills" / "__init__.py").resolve() == Path(drills.__file__).resolve()

"""The wheels hosts install drills from: drills and its runtime dependencies (not the dev, docker
or hosts extras), built on the controller with `pip wheel` from the source checkout drills runs
from, so hosts need no internet. Binary wheels (pydantic-core) are for the controller's Python
and machine: `ansible/` checks that each host has the same.

Kept in `STATE_DIR/wheels/<version>-<digest of the sources>/` with one tar of them all (what
Ansible copies: one file, one transfer); reused while the version and the sources are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import drills
from drills.errors import HostError

BUILD_TIMEOUT_S = 600.0
REPRODUCIBLE_EPOCH_S = 315532800  # 1980-01-01, the earliest time a zip can hold
TARBALL = "wheels.tar"
# What a wheel of drills is built from: a change to any of these is a new wheel.
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")
SOURCE_PACKAGE = "drills"


@dataclass(frozen=True)
class Wheels:
    """A built set of wheels and what hosts must match to install them."""

    directory: Path
    tarball: Path  # every wheel of `directory`, in one tar (no compression: wheels are zips)
    version: str  # of drills
    python: str  # "3.11": the controller's major.minor
    machine: str  # platform.machine(): "x86_64"


def project_root() -> Path:
    """The source checkout drills runs from (the directory with its pyproject.toml)."""
    package_dir = Path(drills.__file__).resolve().parent
    root = package_dir.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or 'name = "drills"' not in pyproject.read_text(errors="replace"):
        raise HostError(
            f"drills runs from {package_dir}, not from a source checkout (no pyproject.toml of drills beside it): "
            "hosts are provisioned with wheels built from the source; install drills with "
            "`pip install -e /path/to/drills` (as ./dev setup does) and try again"
        )
    return root


def source_digest(root: Path) -> str:
    """A digest of everything the drills wheel is built from (sources, package data, metadata)."""
    digest = hashlib.sha256()
    files = [root / name for name in SOURCE_FILES if (root / name).is_file()]
    files += sorted(p for p in (root / SOURCE_PACKAGE).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _complete(directory: Path, version: str) -> bool:
    return (directory / TARBALL).is_file() and any(directory.glob(f"drills-{version}-*.whl"))


def _tar_entry(wheel: Path) -> tarfile.TarInfo:
    """A tar entry that depends on the wheel's name and size only (no owner, no time)."""
    entry = tarfile.TarInfo(wheel.name)
    entry.size = wheel.stat().st_size
    entry.mode = 0o644
    entry.mtime = REPRODUCIBLE_EPOCH_S
    return entry


def build(state_dir: Path, *, root: Path | None = None, timeout_s: float = BUILD_TIMEOUT_S) -> Wheels:
    """The wheels of this drills for hosts: built into the state directory's cache unless a build
    of the same version and sources is there already."""
    root = root if root is not None else project_root()
    version = drills.__version__
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    cache = state_dir / "wheels"
    directory = cache / f"{version}-py{python}-{platform.machine()}-{source_digest(root)}"
    wheels = Wheels(directory, directory / TARBALL, version, python, platform.machine())
    if _complete(directory, version):
        return wheels
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Built aside and renamed into place: a build that fails or is killed leaves no half cache.
    with tempfile.TemporaryDirectory(prefix=".build-", dir=cache) as tmp:
        staging = Path(tmp) / "wheels"
        # pip builds a local project in place (build/, *.egg-info): build a copy, not the checkout.
        source = Path(tmp) / "source"
        shutil.copytree(root / SOURCE_PACKAGE, source / SOURCE_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
        for name in SOURCE_FILES:
            if (root / name).is_file():
                shutil.copy2(root / name, source / name)
        argv = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-input", "--quiet"]
        argv += ["--wheel-dir", str(staging), str(source)]
        # The same sources make the same wheel (zip times from this, not from the clock): a rebuild
        # elsewhere need not be copied and installed again on the hosts.
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(REPRODUCIBLE_EPOCH_S)}
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False, env=env)
        except subprocess.TimeoutExpired:
            raise HostError(f"building the wheels for hosts (pip wheel {root}) took over {timeout_s:g} s; gave up") from None
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise HostError(f"building the wheels for hosts (pip wheel {root}) failed (exit {done.returncode}):\n{tail}")
        if not any(staging.glob(f"drills-{version}-*.whl")):
            raise HostError(f"pip wheel {root} made no wheel of drills {version}: is the checkout's version another?")
        with tarfile.open(staging / TARBALL, "w", format=tarfile.GNU_FORMAT) as tar:
            for wheel in sorted(staging.glob("*.whl")):
                with wheel.open("rb") as data:
                    tar.addfile(_tar_entry(wheel), data)
        if _complete(directory, version):  # another controller process built it meanwhile
            return wheels
        if directory.exists():  # an incomplete earlier build
            shutil.rmtree(directory, ignore_errors=True)
        try:
            staging.rename(directory)
        except OSError as exc:
            if not _complete(directory, version):
                raise HostError(f"cannot keep the wheels for hosts in {directory}: {exc.strerror}") from None
    return wheels

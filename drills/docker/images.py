"""Node images built offline: no image registry is needed (nor, on many CI machines, reachable).

An image definition (`testbed/images/NAME.yaml`) names a Debian suite, a mirror and packages.
`build` makes the root file system with `debootstrap --variant=minbase` from the Debian mirror
(the same one apt uses), runs the definition's `setup` lines in it (chroot), and imports it with
`docker import`. The image is tagged `NAME:<hash of the definition>` and `NAME:latest`; a build
is skipped when the hash tag exists already, so CI and tests rebuild only when the file changed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drills.docker.api import IMAGE_HASH_LABEL, Docker
from drills.errors import BadInput, EnvironmentProblem
from drills.scenario import userfile
from drills.scenario.yamlpos import YamlError, load_plain

IMAGES_DIR = Path(__file__).resolve().parents[2] / "testbed" / "images"
DEFAULT_IMAGE = "drills-node"
BUILD_TIMEOUT_S = 900.0

Log = Callable[[str], None]


@dataclass(frozen=True)
class ImageDefinition:
    name: str
    suite: str
    mirror: str
    packages: tuple[str, ...]
    setup: tuple[str, ...]
    command: tuple[str, ...]
    files: tuple[tuple[str, Path], ...]  # (path in the image, file beside the definition)
    digest: str  # of the definition file: the image's version

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.digest}"


def definition_path(name: str, images_dir: Path = IMAGES_DIR) -> Path:
    path = images_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in images_dir.glob("*.yaml"))) or "none"
        raise BadInput(f"no image definition {path} (known: {known})")
    return path


def load_definition(path: Path) -> ImageDefinition:
    try:
        raw_bytes = userfile.read_bytes(path)
        raw = load_plain(userfile.decode(raw_bytes), str(path))
    except userfile.FileRefused as exc:
        raise BadInput(f"{path}: {exc.reason}") from None
    except YamlError as exc:
        raise BadInput("; ".join(str(p) for p in exc.problems)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise BadInput(f"{path}: an image definition is a mapping with at least `name:`")
    unknown = set(raw) - {"name", "suite", "mirror", "packages", "setup", "command", "files"}
    if unknown:
        raise BadInput(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    files = tuple((str(inside), path.parent / str(local)) for inside, local in (raw.get("files") or {}).items())
    digest = hashlib.sha256(raw_bytes)
    for inside, local in files:
        if not local.is_file() or not inside.startswith("/"):
            raise BadInput(f"{path}: files: {inside}: {local} must be a file here, copied to an absolute path")
        digest.update(inside.encode() + b"\0" + local.read_bytes())  # the image changes with them
    return ImageDefinition(
        name=raw["name"],
        suite=str(raw.get("suite", "bookworm")),
        mirror=str(raw.get("mirror", "http://deb.debian.org/debian")),
        packages=tuple(str(p) for p in raw.get("packages") or ()),
        setup=tuple(str(s) for s in raw.get("setup") or ()),
        command=tuple(str(c) for c in raw.get("command") or ("sleep", "infinity")),
        files=files,
        digest=digest.hexdigest()[:12],
    )


def _run(argv: list[str], what: str, timeout_s: float = BUILD_TIMEOUT_S) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise EnvironmentProblem(f"{what}: `{argv[0]}` is not installed (apt-get install {argv[0]})") from None
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"{what}: still running after {timeout_s:g} s; gave up") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise EnvironmentProblem(f"{what} failed (exit {done.returncode}):\n{tail}")


def build(
    definition: ImageDefinition, docker: Docker, log: Log, *, force: bool = False, work_dir: Path | None = None
) -> tuple[str, bool]:
    """Build the image unless it exists already; returns (its tag, whether it was built)."""
    if not force and docker.image_exists(definition.tag):
        docker.tag_image(definition.tag, definition.name, "latest")
        log(f"image {definition.tag} is up to date")
        return definition.tag, False
    started = time.monotonic()
    # The root file system is owned by root and holds device nodes: build as root, in a private
    # directory removed afterwards whatever happens.
    with tempfile.TemporaryDirectory(prefix="drills-image-", dir=work_dir) as tmp:
        rootfs = Path(tmp) / "rootfs"
        argv = ["debootstrap", "--variant=minbase"]
        if definition.packages:
            argv.append("--include=" + ",".join(definition.packages))
        argv += [definition.suite, str(rootfs), definition.mirror]
        log(f"debootstrap {definition.suite} with {', '.join(definition.packages) or 'no extra packages'}")
        _run(argv, "debootstrap")
        for inside, local in definition.files:
            target = rootfs / inside.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
            target.chmod(0o755)
        for line in definition.setup:
            _run(["chroot", str(rootfs), "/bin/sh", "-c", line], f"setup step `{line}`", timeout_s=120)
        tarball = Path(tmp) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], "tar the root file system")
        shutil.rmtree(rootfs, ignore_errors=True)
        changes = [
            "CMD " + _json_list(definition.command),
            f"LABEL {IMAGE_HASH_LABEL}={definition.digest}",
        ]
        docker.import_image(tarball, definition.name, definition.digest, changes)
    docker.tag_image(definition.tag, definition.name, "latest")
    log(f"image {definition.tag} built in {time.monotonic() - started:.0f} s")
    return definition.tag, True


def _json_list(items: tuple[str, ...]) -> str:
    import json

    return json.dumps(list(items))


def ensure(name: str, docker: Docker, log: Log, images_dir: Path = IMAGES_DIR) -> str:
    """The tag of image `name`, built first when missing (tests and `drill image build`)."""
    return build(load_definition(definition_path(name, images_dir)), docker, log)[0]

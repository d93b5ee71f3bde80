"""Run directories: the on-disk journal that makes every run undoable, even after SIGKILL.

Each run owns `STATE_DIR/runs/RUN_ID/` holding `meta.json` (what the run is), `journal.jsonl`
(every object, written and fsynced *before* the object is created) and `owner.lock`, an flock(2)
held by the process driving the run. The kernel drops that lock when the process dies, however
it dies, so "can I take the lock?" is an exact test for "was this run abandoned?".

Root acts on what a run directory says, so the state directory is trusted only when no one but
root could have written it: it and its `runs/` must be owned by root (the effective uid) and not
writable by group or others; run directories are 0700 and their files 0600; a run id is checked
against its format before any path is built from it (see `check_run_id`), and journal entries are
checked on read (drills.journal).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drills.errors import BadInput, EnvironmentProblem
from drills.journal import FILE_MODE, Journal, shown

DEFAULT_STATE_DIR = Path("/var/lib/drills")
STATE_DIR_ENV = "DRILLS_STATE_DIR"

STATUS_DEPLOYING = "deploying"  # objects being created; owner holds the lock
STATUS_UP = "up"  # deployed and left up on purpose (`drill up`), owner gone
STATUS_RUNNING = "running"  # a drill in progress
STATUS_TEARING_DOWN = "tearing-down"

RUN_ID_BYTES = 3  # secrets.token_hex(3): six hex digits, 16M ids
RUN_ID_FORMAT = re.compile(rf"[0-9a-f]{{{2 * RUN_ID_BYTES}}}")
DIR_MODE = 0o700


def check_run_id(run_id: str) -> str:
    """`run_id` itself when it has the format drills gives run ids; BadInput otherwise. Called
    before any path is built from an id the user typed or a directory name read from disk:
    "", ".", "..", "../x", "/etc" are never joined to the state directory."""
    if not RUN_ID_FORMAT.fullmatch(run_id):
        raise BadInput(
            f"{shown(run_id)!r} is not a run id (run ids are {2 * RUN_ID_BYTES} hex digits, as `drill ls` shows them); "
            "nothing was touched"
        )
    return run_id


def check_private_dir(path: Path, what: str, *, symlink_ok: bool = False) -> None:
    """Refuse (EnvironmentProblem, with the fix) a directory that someone other than root could
    write: root would act on journals planted there. Owned by the effective uid or by root
    (reading a root-owned one unprivileged is harmless), not group/world-writable, not a symlink
    unless `symlink_ok` (then its target is checked)."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read {what} {path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode) and not symlink_ok:
        raise EnvironmentProblem(f"{what} {path} is a symlink; remove it (drills creates it)")
    if stat.S_ISLNK(info.st_mode):
        try:
            info = os.stat(path)  # a symlink an administrator made: its target is what is checked
        except OSError as exc:
            raise EnvironmentProblem(f"{what} {path} is a symlink to nothing usable ({exc.strerror})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise EnvironmentProblem(f"{what} {path} is not a directory; remove it or set {STATE_DIR_ENV}")
    if info.st_uid not in (0, os.geteuid()):
        raise EnvironmentProblem(
            f"{what} {path} is owned by uid {info.st_uid}, not root: anyone who owns it can make drills act as root; "
            f"fix: chown root {path}"
        )
    if info.st_mode & 0o022:
        raise EnvironmentProblem(
            f"{what} {path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}): "
            f"anyone who can write it can make drills act as root; fix: chmod go-w {path}"
        )


def _mkdir_private(path: Path) -> None:
    """Create `path` 0700 whatever the umask (EEXIST is for the caller)."""
    os.mkdir(path, DIR_MODE)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """Open a file of a run directory: 0600 when created, never through a symlink (usable as
    the `opener` of `open()`, for the logs a run keeps there)."""
    return os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)


def state_dir_from_env(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get(STATE_DIR_ENV)
    return Path(env) if env else DEFAULT_STATE_DIR


@dataclass
class RunMeta:
    """What `drill ls` shows about a run."""

    run_id: str
    scenario: str
    scenario_path: str
    created_s: float
    status: str
    backend: str = "netns"
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> namespace name
    owner_pid: int = 0
    hosts: dict[str, str] = field(default_factory=dict)  # node name -> inventory host (several machines)


class Run:
    """One run directory (its name a checked run id). Hold it with `with store.create(...) as
    run:` to own its lock."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.journal = Journal(directory / "journal.jsonl", check_run_id(directory.name))
        self._lock_fd: int | None = None

    @property
    def run_id(self) -> str:
        return self.dir.name

    def meta(self) -> RunMeta:
        with os.fdopen(open_private(self.dir / "meta.json", os.O_RDONLY), "rb") as handle:
            return RunMeta(**json.loads(handle.read()))

    def write_meta(self, meta: RunMeta) -> None:
        tmp = self.dir / "meta.json.tmp"
        with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as handle:
            handle.write(json.dumps(asdict(meta), indent=2, sort_keys=True))
        os.replace(tmp, self.dir / "meta.json")

    def set_status(self, status: str) -> None:
        meta = self.meta()
        meta.status = status
        self.write_meta(meta)

    def try_lock(self) -> bool:
        """Take the owner lock without waiting; False when a live process holds it."""
        fd = open_private(self.dir / "owner.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        self.unlock()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()


class RunStore:
    """All run directories under one state directory (checked before each use: see
    `check_private_dir`)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "runs"
        self.strays: list[str] = []  # entries of runs/ that are not run directories: never touched

    def _checked_root(self, create: bool) -> bool:
        """Check the state directory and runs/ (creating them 0700 when `create`); False when
        they do not exist and nothing is to be created."""
        # The state directory may be a symlink an administrator made (its target is checked);
        # runs/ is drills' own and never one.
        for directory, what in ((self.state_dir, "state directory"), (self.root, "run directory root")):
            if not os.path.lexists(directory):
                if not create:
                    return False
                try:
                    directory.parent.mkdir(parents=True, exist_ok=True)
                    _mkdir_private(directory)
                except FileExistsError:
                    pass  # made by a concurrent drill meanwhile: checked below like any other
                except OSError as exc:
                    raise EnvironmentProblem(
                        f"cannot create {what} {directory}: {exc.strerror}; set {STATE_DIR_ENV}"
                    ) from None
            check_private_dir(directory, what, symlink_ok=directory is self.state_dir)
        return True

    def create(
        self, scenario: str, scenario_path: Path, nodes: dict[str, str] | None = None, run_id: str | None = None
    ) -> Run:
        """A new run directory (0700), locked by this process."""
        self._checked_root(create=True)
        for _ in range(100):
            candidate = check_run_id(run_id) if run_id else secrets.token_hex(RUN_ID_BYTES)
            try:
                _mkdir_private(self.root / candidate)
                break
            except FileExistsError:
                if run_id:
                    raise BadInput(f"run {run_id} already exists") from None
        else:  # pragma: no cover - 16M ids
            raise EnvironmentProblem("could not pick a free run id")
        run = Run(self.root / candidate)
        run.try_lock()
        run.write_meta(
            RunMeta(
                candidate,
                scenario,
                str(scenario_path),
                time.time(),
                STATUS_DEPLOYING,
                nodes=nodes or {},
                owner_pid=os.getpid(),
            )
        )
        return run

    def runs(self) -> Iterator[Run]:
        """Every run directory, oldest name first. An entry that is not a directory named by a
        run id (a symlink, a file, "x.y") is never read or removed: it goes to `strays`."""
        self.strays = []
        if not self._checked_root(create=False):
            return
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if RUN_ID_FORMAT.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                # A run killed between mkdir and meta.json is listed too: it may hold a journal.
                yield Run(Path(entry.path))
            else:
                self.strays.append(entry.name)

    def get(self, run_id: str) -> Run:
        directory = self.root / check_run_id(run_id)
        self._checked_root(create=False)
        if not directory.is_dir() or directory.is_symlink():
            known = ", ".join(r.run_id for r in self.runs()) or "none"
            raise BadInput(f"no run '{run_id}' (runs: {known}); see `drill ls`")
        return Run(directory)

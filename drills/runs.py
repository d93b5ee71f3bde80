"""Run directories: the on-disk journal that makes every run undoable, even after SIGKILL.

Each run owns `STATE_DIR/runs/RUN_ID/` holding `meta.json` (what the run is), `journal.jsonl`
(every object, written and fsynced *before* the object is created) and `owner.lock`, an flock(2)
held by the process driving the run. The kernel drops that lock when the process dies, however
it dies, so "can I take the lock?" is an exact test for "was this run abandoned?".
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drills.errors import BadInput, EnvironmentProblem

DEFAULT_STATE_DIR = Path("/var/lib/drills")
STATE_DIR_ENV = "DRILLS_STATE_DIR"

STATUS_DEPLOYING = "deploying"  # objects being created; owner holds the lock
STATUS_UP = "up"  # deployed and left up on purpose (`drill up`), owner gone
STATUS_RUNNING = "running"  # a drill in progress
STATUS_TEARING_DOWN = "tearing-down"


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


class Journal:
    """Append-only JSON lines; `record` returns only once the entries are on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, entries: Iterable[dict[str, Any]], *, sync: bool = True) -> None:
        """Append entries. `sync=False` skips the fsync (~1 ms): the entry survives the death of
        this process, only not a crash of the machine, which takes namespaces with it anyway.
        Used for markers written on the drill clock, whose intent was already synced."""
        data = "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries)
        if not data:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data.encode())
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        """Every complete entry; a line torn by a crash mid-write is skipped."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


class Run:
    """One run directory. Hold it with `with store.create(...) as run:` to own its lock."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.journal = Journal(directory / "journal.jsonl")
        self._lock_fd: int | None = None

    @property
    def run_id(self) -> str:
        return self.dir.name

    def meta(self) -> RunMeta:
        return RunMeta(**json.loads((self.dir / "meta.json").read_text()))

    def write_meta(self, meta: RunMeta) -> None:
        tmp = self.dir / "meta.json.tmp"
        tmp.write_text(json.dumps(asdict(meta), indent=2, sort_keys=True))
        os.replace(tmp, self.dir / "meta.json")

    def set_status(self, status: str) -> None:
        meta = self.meta()
        meta.status = status
        self.write_meta(meta)

    def try_lock(self) -> bool:
        """Take the owner lock without waiting; False when a live process holds it."""
        fd = os.open(self.dir / "owner.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
    """All run directories under one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "runs"

    def create(
        self, scenario: str, scenario_path: Path, nodes: dict[str, str] | None = None, run_id: str | None = None
    ) -> Run:
        """A new run directory, locked by this process."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot create state directory {self.root}: {exc.strerror}; set {STATE_DIR_ENV}"
            ) from None
        for _ in range(100):
            candidate = run_id or secrets.token_hex(3)
            try:
                (self.root / candidate).mkdir()
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
        if not self.root.is_dir():
            return
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and (entry / "meta.json").exists():
                yield Run(entry)
            elif entry.is_dir():
                # Killed between mkdir and meta.json: still may hold a journal.
                yield Run(entry)

    def get(self, run_id: str) -> Run:
        directory = self.root / run_id
        if not directory.is_dir():
            known = ", ".join(r.run_id for r in self.runs()) or "none"
            raise BadInput(f"no run '{run_id}' (runs: {known}); see `drill ls`")
        return Run(directory)

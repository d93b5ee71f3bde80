"""Run `drill validate FILE` on many hostile files, each in its own process, quickly.

Starting Python and importing drills costs about a second a process; the corpus has well over 150
cases. So a worker process (`python harness.py --worker`) imports the `drill` command once and
forks a child per case: the child sets the memory cap (RLIMIT_AS) and a hang guard (SIGALRM,
whose default action kills it), sends its stdout and stderr to a file, and runs
`drills.cli.main(["validate", FILE])`, the very function `python -m drills validate FILE` runs.
The worker waits with wait4, which gives the child's exit status and its peak RSS. The child's
stdin is the worker's command pipe, open and silent: `/dev/stdin` as a case is a FIFO that never
ends, as in a shell pipeline.

Used by tests/test_hostile_corpus.py (pass/fail) and bench/hostile.py (times and memory).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MEMORY_CAP_BYTES = 1 << 30  # 1 GiB of address space, as the issue asks
HANG_GUARD_S = 30


@dataclass(frozen=True)
class Outcome:
    """What one `drill validate FILE` did: exit code (negative: killed by that signal)."""

    path: str
    exit_code: int
    output: bytes  # stdout and stderr, interleaved
    wall_s: float
    max_rss_kib: int
    cpu_s: float = 0.0  # user + system: what the wall time is on an idle machine

    @property
    def hung(self) -> bool:
        return self.exit_code == -14  # SIGALRM: the hang guard


def _child(path: str, cwd: str, out_fd: int, memory_bytes: int, guard_s: int) -> None:  # pragma: no cover
    """In the forked child: never returns."""
    import resource
    import signal
    import traceback

    code = 99
    try:
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.chdir(cwd)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(guard_s)
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        from drills import cli

        code = cli.main(["validate", path])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 98
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _worker(memory_bytes: int, guard_s: int) -> None:  # pragma: no cover - runs in a subprocess
    """Read one JSON request a line, answer one JSON outcome a line."""
    import drills.cli  # imported once, before forking
    import drills.engine.drill
    import drills.render
    import drills.scenario.loader  # noqa: F401

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing else may write into the answers
    while line := sys.stdin.readline():
        request = json.loads(line)
        out_fd, out_name = tempfile.mkstemp(prefix="drills-hostile-out-")
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(request["path"], request["cwd"], out_fd, memory_bytes, guard_s)
        _, status, usage = os.wait4(pid, 0)
        wall_s = time.monotonic() - start
        os.close(out_fd)
        with open(out_name, "rb") as handle:
            output = handle.read(1 << 20)
        os.unlink(out_name)
        answer = {
            "path": request["path"],
            "exit_code": os.waitstatus_to_exitcode(status),
            "output": output.decode("latin-1"),
            "wall_s": wall_s,
            "max_rss_kib": usage.ru_maxrss,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def run(
    paths: Sequence[Path | str],
    cwd: Path,
    *,
    workers: int = 2,
    memory_bytes: int = MEMORY_CAP_BYTES,
    guard_s: int = HANG_GUARD_S,
) -> dict[str, Outcome]:
    """`drill validate` on every path, at most `workers` at a time; outcomes by str(path)."""
    todo: queue.Queue[str] = queue.Queue()
    for path in paths:
        todo.put(str(path))
    outcomes: dict[str, Outcome] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def serve() -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(memory_bytes), str(guard_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            while True:
                try:
                    path = todo.get_nowait()
                except queue.Empty:
                    return
                process.stdin.write(json.dumps({"path": path, "cwd": str(cwd)}) + "\n")
                process.stdin.flush()
                answer = json.loads(process.stdout.readline())
                outcome = Outcome(
                    answer["path"],
                    answer["exit_code"],
                    answer["output"].encode("latin-1"),
                    answer["wall_s"],
                    answer["max_rss_kib"],
                    answer["cpu_s"],
                )
                with lock:
                    outcomes[path] = outcome
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            process.stdin.close()
            process.wait(timeout=60)

    threads = [threading.Thread(target=serve) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return outcomes


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:2] == ["--worker"]:
        _worker(int(sys.argv[2]), int(sys.argv[3]))

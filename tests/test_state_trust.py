"""State you can trust (issue 11, item 6): run ids checked before any path is built from them, a
state directory only root could have written, run directories 0700, journal entries checked on
read and refused when they name anything that is not the run's, name clashes left alone, and
results never written through a planted symlink.

Every test here is deterministic: no timing, no randomness in what is asserted (run ids are
random, but every assertion holds for any of them)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker_testing import IMAGE, docker_engine_fixture  # noqa: F401

from drills import cli, lifecycle, outdir
from drills.backend import TeardownReport
from drills.docker.api import ContainerSpec
from drills.errors import BadInput, EnvironmentProblem, NameExists
from drills.journal import Journal
from drills.netns import kernel
from drills.netns.backend import NetnsBackend, owned_namespaces
from drills.runs import RunStore, check_run_id
from drills.scenario.loader import load_scenario

NETNS_DIR = Path("/run/netns")
BAD_IDS = [
    "",
    ".",
    "..",
    "../../x",
    "/etc",
    "a/b",
    "r" * 300,
    "abc\0de",
    "ABCDEF",
    "abcde",
    "abcdefa",
    "abc12-",
    " abc123",
]


def _drill(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "drills", "--state-dir", str(state_dir), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _live_run(state_dir: Path, tmp_path: Path) -> Any:
    """A run whose owner (this test) is alive, with a journal: what a bad id must not reach."""
    run = RunStore(state_dir).create("live", tmp_path / "live.yaml")
    run.journal.record([{"op": "netns", "name": f"drill-{run.run_id}-n1"}])
    return run


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- run ids


def test_run_ids_have_one_format() -> None:
    assert check_run_id("0a1b2c") == "0a1b2c"
    for bad in BAD_IDS:
        with pytest.raises(BadInput, match="not a run id"):
            check_run_id(bad)


@pytest.mark.parametrize("bad", [b for b in BAD_IDS if "\0" not in b], ids=repr)
def test_drill_down_with_a_bad_run_id_touches_nothing(bad: str, state_dir: Path, tmp_path: Path) -> None:
    run = _live_run(state_dir, tmp_path)
    # "../../x" from STATE/runs is tmp_path/x: a directory outside the state directory.
    outside = tmp_path / "x"
    (outside / "journal.jsonl").parent.mkdir()
    (outside / "journal.jsonl").write_text('{"op": "netns", "name": "x"}\n')
    before_state, before_outside = _snapshot(state_dir), _snapshot(outside)
    try:
        result = _drill(state_dir, "down", bad)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "not a run id" in result.stderr and "Traceback" not in result.stderr
        assert _snapshot(state_dir) == before_state and _snapshot(outside) == before_outside
        assert Path("/etc/passwd").exists()
    finally:
        run.remove()


def test_library_refuses_bad_ids_before_any_path(state_dir: Path, tmp_path: Path) -> None:
    run = _live_run(state_dir, tmp_path)
    try:
        for bad in BAD_IDS:
            with pytest.raises(BadInput, match="not a run id"):
                lifecycle.down(state_dir, bad)
            with pytest.raises(BadInput, match="not a run id"):
                lifecycle.exec_in_node(state_dir, "n1", ["true"], bad)
            with pytest.raises(BadInput, match="not a run id"):
                RunStore(state_dir).get(bad)
        assert run.dir.is_dir() and run.journal.entries()
    finally:
        run.remove()


@pytest.mark.netns  # needs root (drill clean), creates nothing in the kernel
def test_clean_and_ls_leave_entries_that_are_not_runs_alone(state_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "meta.json").write_text("{}")
    runs = state_dir / "runs"
    runs.mkdir(mode=0o700)
    (runs / "abcdef").symlink_to(outside)  # a run id, but a symlink
    (runs / "not-a-run").mkdir()
    (runs / "..x").write_text("")
    report = lifecycle.clean(state_dir, include_up=True)
    assert report.cleaned == {}
    assert set(report.skipped) == {"abcdef", "not-a-run", "..x"}
    assert all("left alone" in why for why in report.skipped.values())
    assert (outside / "meta.json").exists() and (runs / "not-a-run").is_dir()
    assert lifecycle.list_runs(state_dir) == []


# --------------------------------------------------------------------------- the state directory


def test_state_dir_and_run_dirs_are_private_whatever_the_umask(tmp_path: Path) -> None:
    state_dir = tmp_path / "new" / "state"
    previous = os.umask(0)
    try:
        run = RunStore(state_dir).create("s", tmp_path / "s.yaml")
        run.journal.record([{"op": "netns", "name": f"drill-{run.run_id}-a"}])
    finally:
        os.umask(previous)
    try:
        for directory in (state_dir, state_dir / "runs", run.dir):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        for name in ("journal.jsonl", "meta.json", "owner.lock"):
            assert stat.S_IMODE((run.dir / name).stat().st_mode) == 0o600, name
    finally:
        run.remove()


@pytest.mark.parametrize("which", ["state", "runs"])
def test_a_group_writable_state_dir_is_refused_with_the_fix(which: str, state_dir: Path) -> None:
    (state_dir / "runs").mkdir(mode=0o700)
    target = state_dir if which == "state" else state_dir / "runs"
    target.chmod(0o770)
    for args in (["ls"], ["clean"], ["down", "abcdef"]):
        result = _drill(state_dir, *args)
        assert result.returncode == 3, result.stdout + result.stderr
        assert f"chmod go-w {target}" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(EnvironmentProblem, match="chmod go-w"):
        RunStore(state_dir).create("s", state_dir / "s.yaml")
    assert list((state_dir / "runs").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_a_state_dir_owned_by_another_user_is_refused_with_the_fix(state_dir: Path) -> None:
    os.chown(state_dir, 65534, 65534)
    result = _drill(state_dir, "clean")
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"chown root {state_dir}" in result.stderr
    with pytest.raises(EnvironmentProblem, match="chown root"):
        RunStore(state_dir).create("s", state_dir / "s.yaml")


def test_runs_dir_may_not_be_a_symlink_but_the_state_dir_may(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)  # as an administrator may point /var/lib/drills elsewhere
    RunStore(tmp_path / "link").create("s", tmp_path / "s.yaml").remove()
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    (real / "runs").rmdir()
    (real / "runs").symlink_to(other)
    with pytest.raises(EnvironmentProblem, match="symlink"):
        RunStore(real).create("s", tmp_path / "s.yaml")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(EnvironmentProblem, match="symlink to nothing"):
        list(RunStore(tmp_path / "dangling").runs())
    assert list(other.iterdir()) == []


# --------------------------------------------------------------------------- journal entries


def test_journal_entries_are_checked_on_read(tmp_path: Path) -> None:
    run_id = "0a1b2c"
    path = tmp_path / "journal.jsonl"
    good = [
        {"op": "netns", "name": f"drill-{run_id}-n1"},
        {"op": "process", "ns": f"drill-{run_id}-n1", "pid": 4242, "start": 17, "service": "web"},
        {"op": "veth", "a": [f"drill-{run_id}-n1", "eth0"], "b": [f"drill-{run_id}-n2", "eth0"]},
        {"op": "container", "name": f"drill-{run_id}-box", "node": "box"},
        {"op": "created", "kind": "netns", "names": [f"drill-{run_id}-n1"]},
    ]
    bad = [
        ({"op": "netns", "name": "/proc/self/ns/net"}, "not one of this run's"),
        ({"op": "netns", "name": "foo"}, "not one of this run's"),
        ({"op": "netns", "name": "drill-ffffff-n1"}, "not one of this run's"),  # another run's
        ({"op": "netns", "name": f"drill-{run_id}-../../proc/1/ns/net"}, "not one of this run's"),
        ({"op": "process", "ns": f"drill-{run_id}-n1", "pid": 1, "start": 1, "service": "s"}, "pid 1"),
        ({"op": "process", "ns": f"drill-{run_id}-n1", "pid": 4242, "service": "s"}, "no start time"),
        ({"op": "process", "ns": f"drill-{run_id}-n1", "pid": "4242", "start": 1, "service": "s"}, "pid 4242"),
        ({"op": "container", "name": "postgres", "node": "db"}, "not named drill-RUN-NODE"),
        ({"op": "container", "name": f"drill-{run_id}-a", "node": "b"}, "not named drill-RUN-NODE"),
        ({"op": "veth", "a": [f"drill-{run_id}-n1", 'e"th0'], "b": [f"drill-{run_id}-n2", "x"]}, "interface name"),
        ({"op": "rm-rf", "path": "/"}, "unknown kind"),
        ({"op": "not-created", "kind": "netns", "names": ["/etc"]}, "not one of this run's"),
    ]
    lines = [json.dumps(e) for e in good[:2]] + [json.dumps(e) for e, _ in bad] + ["[1, 2]", "{torn"]
    lines += [json.dumps(e) for e in good[2:]] + ['{"op": "netns", "na']  # last line torn by a crash
    path.write_text("\n".join(lines))
    checked = Journal(path, run_id).checked()
    assert checked.entries == good
    reasons = [(r.line, r.why) for r in checked.refused]
    assert [line for line, _ in reasons] == list(range(3, 3 + len(bad) + 2))
    for (_line, why), (_entry, expected) in zip(reasons, bad, strict=False):
        assert expected in why, why
    assert "JSON object" in reasons[-1][1] and "JSON object" in reasons[-2][1]
    assert all("\0" not in str(r) and len(str(r)) < 400 for r in checked.refused)


def test_a_huge_journal_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"op": "netns", "name": "drill-0a1b2c-n1"}\n')
    os.truncate(path, 65 * 2**20)  # sparse: no disk used
    checked = Journal(path, "0a1b2c").checked()
    assert checked.entries == [] and "larger than 64 MiB" in checked.refused[0].why


def _plant(state_dir: Path, tmp_path: Path, entries: list[dict[str, Any]]) -> Any:
    """An abandoned run (no live owner) whose journal holds `entries` ({RUN} in names replaced)."""
    run = RunStore(state_dir).create("planted", tmp_path / "planted.yaml")
    run.journal.record(json.loads(json.dumps(e).replace("{RUN}", run.run_id)) for e in entries)
    run.unlock()
    return run


@pytest.mark.netns
def test_a_planted_journal_is_refused_and_nothing_outside_is_touched(
    state_dir: Path, tmp_path: Path, host_snapshot: Any, foreign_netns: str
) -> None:
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        ticks = kernel.process_start_ticks(sleeper.pid)
        assert ticks is not None
        run = _plant(
            state_dir,
            tmp_path,
            [
                {"op": "netns", "name": "/proc/self/ns/net"},
                {"op": "netns", "name": foreign_netns},
                {"op": "netns", "name": f"drill-{{RUN}}-../{foreign_netns}"},
                {"op": "process", "ns": "drill-{RUN}-n1", "pid": 1, "start": 0, "service": "s"},
                {"op": "process", "ns": "drill-{RUN}-n1", "pid": sleeper.pid, "service": "s"},
                {"op": "process", "ns": "drill-{RUN}-n1", "pid": sleeper.pid, "start": ticks + 1, "service": "s"},
            ],
        )
        result = _drill(state_dir, "clean")
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout + result.stderr
        for line in (1, 2, 3, 4, 5):
            assert f"journal line {line} refused" in out, out
        assert f"process {sleeper.pid}: started at tick {ticks}, not {ticks + 1}" in out
        assert sleeper.poll() is None, "drill clean killed a process that was not the run's"
        assert (NETNS_DIR / foreign_netns).exists(), "drill clean removed a namespace that was not the run's"
        assert not run.dir.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.netns
def test_the_host_namespace_bound_under_a_run_name_is_never_acted_on(state_dir: Path, tmp_path: Path) -> None:
    """A binding of the host's own namespace (that of drills itself; pid 1's where it can be read)
    under a name the run could have made: teardown would kill every process in it as a stray.
    Checked at the function that picks the namespaces teardown acts on, so a failure of this test
    cannot take the host down with it."""
    run = RunStore(state_dir).create("host", tmp_path / "host.yaml")
    name = f"drill-{run.run_id}-h"
    target = NETNS_DIR / name
    target.touch()
    try:
        subprocess.run(["mount", "--bind", f"/proc/{os.getpid()}/ns/net", str(target)], check=True, timeout=30)
        run.journal.record([{"op": "netns", "name": name}])
        report = TeardownReport()
        assert owned_namespaces(run.journal.checked(), "netns", report) == []
        assert report.refused == [f"namespace {name}: is the host's own network namespace: left alone"]
    finally:
        subprocess.run(["umount", str(target)], check=False, timeout=30)
        target.unlink()
        run.remove()


# --------------------------------------------------------------------------- name clashes


def _pair(tmp_path: Path) -> Path:
    path = tmp_path / "pair.yaml"
    topology = {"nodes": {"a": {}, "b": {}}, "links": [{"endpoints": ["a:b", "b:a"]}]}
    path.write_text(yaml.safe_dump({"version": 1, "name": "pair", "topology": topology}))
    return path


@pytest.mark.netns
def test_a_namespace_that_existed_before_the_run_is_left_alone(
    state_dir: Path, tmp_path: Path, host_snapshot: Any
) -> None:
    scenario = load_scenario(_pair(tmp_path))
    run = RunStore(state_dir).create("pair", tmp_path / "pair.yaml")
    clash = f"drill-{run.run_id}-b"  # the name the run would give node b: made first by someone else
    subprocess.run(["ip", "netns", "add", clash], check=True, timeout=30)
    try:
        backend = NetnsBackend(capabilities=lambda: {})
        with pytest.raises(NameExists, match=clash):
            backend.deploy(scenario.topology, run)
        ops = [(e["op"], e.get("names")) for e in run.journal.entries() if e["op"].endswith("created")]
        assert ops == [("created", [f"drill-{run.run_id}-a"]), ("not-created", [clash])]
        report = backend.teardown(run)
        assert (NETNS_DIR / clash).exists(), "teardown removed a namespace the run did not create"
        assert not (NETNS_DIR / f"drill-{run.run_id}-a").exists()
        assert report.clean and any(clash in item and "existed before" in item for item in report.refused)
    finally:
        subprocess.run(["ip", "netns", "del", clash], check=False, timeout=30)
        run.remove()


@pytest.mark.netns
def test_a_deployed_run_keeps_everything_private(state_dir: Path, tmp_path: Path, host_snapshot: Any) -> None:
    path = tmp_path / "svc.yaml"
    service = {"name": "idle", "command": "sleep 300"}
    topology = {"nodes": {"a": {"services": [service]}, "b": {}}, "links": [{"endpoints": ["a:b", "b:a"]}]}
    path.write_text(yaml.safe_dump({"version": 1, "name": "svc", "topology": topology}))
    previous = os.umask(0)
    try:
        up = lifecycle.up(path, state_dir)
    finally:
        os.umask(previous)
    try:
        run_dir = state_dir / "runs" / up.meta.run_id
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run_dir.iterdir()}
        assert "a.idle.log" in files and set(files.values()) == {0o600}, files
    finally:
        lifecycle.down(state_dir, up.meta.run_id)


# --------------------------------------------------------------------------- results directories


def test_results_are_never_written_through_a_planted_symlink(tmp_path: Path) -> None:
    shared = tmp_path / "shared"  # a directory everyone can write, as /tmp or a CI workspace
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "results.json").write_text("precious")
    (shared / "runs").symlink_to(victim)
    with pytest.raises(BadInput, match="symlink"):
        outdir.make_dir(shared / "runs" / "s-abcdef")
    with pytest.raises(BadInput, match="symlink"):
        outdir.write_file(shared / "runs" / "results.json", b"x")
    with pytest.raises(BadInput, match="symlink"):
        outdir.check_dir(shared / "runs" / "new")
    assert (victim / "results.json").read_text() == "precious" and list(victim.iterdir()) == [victim / "results.json"]

    # A symlink owned by another user is not trusted either, even in a root-only directory.
    private = tmp_path / "private"
    private.mkdir(mode=0o755)
    (private / "out").symlink_to(victim)
    if os.geteuid() == 0:
        os.lchown(private / "out", 65534, 65534)
        with pytest.raises(BadInput, match="uid 65534"):
            outdir.make_dir(private / "out" / "x")
        (private / "out").unlink()
        (private / "out").symlink_to(victim)  # root's own, in a root-only directory: followed
        outdir.make_dir(private / "out" / "x")
        assert (victim / "x").is_dir()


def test_a_planted_file_in_the_results_directory_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "runs" / "s-abcdef"
    outdir.make_dir(out)
    (out / "results.json").symlink_to(victim)
    os.link(victim, out / "report.md")
    outdir.write_file(out / "results.json", b"{}")
    outdir.write_file(out / "report.md", b"# report")
    assert victim.read_text() == "precious"
    assert (out / "results.json").read_bytes() == b"{}" and not (out / "results.json").is_symlink()


def test_drill_run_refuses_a_symlinked_results_directory_before_it_starts(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "out").symlink_to(tmp_path / "elsewhere")
    code = cli.main(
        ["--state-dir", str(state_dir), "run", str(tmp_path / "none.yaml"), "--out", str(shared / "out" / "r")]
    )
    assert code == 2
    assert "symlink" in capsys.readouterr().err
    assert not (state_dir / "runs").exists() or not list((state_dir / "runs").iterdir()), "the drill started"


@pytest.mark.netns  # needs root (drill exec), creates nothing in the kernel
def test_exec_enters_only_a_namespace_of_the_run(state_dir: Path, tmp_path: Path) -> None:
    run = RunStore(state_dir).create("s", tmp_path / "s.yaml", nodes={"n1": "../../proc/1/ns/net"})
    try:
        with pytest.raises(BadInput, match="not one of the run's"):
            lifecycle.exec_in_node(state_dir, "n1", ["true"], run.run_id)
    finally:
        run.remove()


@pytest.mark.docker
@pytest.mark.netns
def test_a_container_without_the_runs_label_is_left_alone(state_dir: Path, tmp_path: Path, docker_engine: Any) -> None:
    # A journaled container whose name someone else's container holds (a clash at create, or a
    # planted entry): no label of the run, so not the run's.
    run = _plant(state_dir, tmp_path, [{"op": "container", "name": "drill-{RUN}-box", "node": "box"}])
    name = f"drill-{run.run_id}-box"
    docker_engine.create_and_start(
        ContainerSpec(name, IMAGE, ("sleep", "300"), (), (), (), False, "box", labels=(("purpose", "clash"),))
    )
    try:
        report = lifecycle.clean(state_dir, include_up=True)
        state = docker_engine.state(name)
        assert state is not None and state.running, "drill clean removed a container that was not the run's"
        refused = report.cleaned[run.run_id].refused
        assert refused == [f"container {name}: no label drills.run={run.run_id}: not the run's, left alone"]
    finally:
        docker_engine.remove(name)

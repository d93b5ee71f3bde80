"""`drill validate` and `drill plan` change nothing on the host (issue 11, item 8).

They ask the kernel what it can do (drills.netns.probe_caps), in an anonymous network namespace
of a throwaway thread: nothing named, nothing mounted, gone when the thread ends. The check runs
the commands inside a network and mount namespace of their own, with a private /run, so that
what they could create (a link, a route, a named namespace under /run/netns, a state
directory) is seen exactly, whatever other drills on this host are doing meanwhile.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drills.netns import probe_caps

REPO = Path(__file__).parent.parent
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
NOBODY = 65534


def test_ifb_would_load_only_when_the_module_is_neither_loaded_nor_built_in(tmp_path: Path) -> None:
    proc_modules, sys_module, lib_modules = tmp_path / "modules", tmp_path / "sys", tmp_path / "lib"
    sys_module.mkdir()
    lib_modules.mkdir()

    def would_load() -> bool:
        return probe_caps.ifb_would_load(proc_modules, sys_module, lib_modules)

    assert not would_load()  # no /proc/modules: this kernel loads no modules
    proc_modules.write_text("sch_netem 24576 0 - Live 0x0\nifbx 1 0 - Live 0x0\n")
    assert would_load()  # modular, not loaded, and no modules.builtin to say it is built in
    (lib_modules / "modules.builtin").write_text("kernel/drivers/net/dummy.ko\n")
    assert would_load()
    (lib_modules / "modules.builtin").write_text("kernel/drivers/net/ifb.ko\n")
    assert not would_load()  # built in: ifb0 and ifb1 exist since boot
    (lib_modules / "modules.builtin").unlink()
    proc_modules.write_text("ifb 16384 0 - Live 0x0\n")
    assert not would_load()  # loaded already
    proc_modules.write_text("")
    (sys_module / "ifb").mkdir()
    assert not would_load()


@pytest.mark.netns
def test_the_ifb_probe_is_not_tried_when_it_would_load_the_module() -> None:
    report = probe_caps.probe_scratch_namespace(None, ifb_loads=lambda: True)
    assert report.namespace.ok and report.veth.ok
    assert report.ifb == probe_caps.IFB_NOT_LOADED


# What the commands could change, listed in the namespaces the test runs them in.
SNAPSHOT = """
ip -d link show; ip addr show; ip route show table all; ip -6 route show table all; ip rule show
ip netns list; find /run | sort; find "$STATE" | sort
"""


@pytest.mark.netns
def test_validate_and_plan_of_every_example_leave_the_host_as_it_was(drill: Any, state_dir: Path) -> None:
    commands = [drill.argv("validate", *map(str, SCENARIOS))]
    commands += [drill.argv("plan", str(path)) for path in SCENARIOS]
    commands += [drill.argv("plan", "--json", str(path)) for path in SCENARIOS[:1]]
    runs = "\n".join(f"{shlex.join(argv)} >/dev/null 2>&1 || echo 'failed: {argv[-2:]}'" for argv in commands)
    script = f"""set -e
mount -t tmpfs drills-test /run  # private: /run/netns as only these commands see it
snapshot() {{ {SNAPSHOT} }}
snapshot > "$OUT/before"
{runs}
snapshot > "$OUT/after"
"""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "STATE": str(state_dir), "OUT": out}
        proc = subprocess.run(
            ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True, text=True, timeout=300, check=False, env=env,
        )  # fmt: skip
        assert proc.returncode == 0 and not proc.stdout, proc.stdout + proc.stderr
        before, after = (Path(out, name).read_text() for name in ("before", "after"))
    assert "lo" in before and "/run" in before
    assert after == before
    assert not any(state_dir.iterdir())


@pytest.fixture
def shared_copy() -> Iterator[Path]:
    """The examples copied where an unprivileged user can read them (pytest's tmp_path is 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="drills-nobody-"))
    try:
        directory.chmod(0o755)
        for tree in ("scenarios", "testbed"):  # scenarios include topologies from testbed/
            shutil.copytree(REPO / tree, directory / tree)
        yield directory / "scenarios"
    finally:
        shutil.rmtree(directory)


@pytest.mark.netns  # root, to become nobody
def test_validate_and_plan_as_an_unprivileged_user(drill: Any, shared_copy: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to run as nobody")
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    files = sorted(map(str, shared_copy.glob("*.yaml")))
    for argv in [["validate", *files], ["plan", files[0]]]:
        proc = subprocess.run(
            [*as_nobody, *drill.argv(*argv)], capture_output=True, text=True, timeout=120, check=False, cwd=shared_copy
        )
        # Today both work without root: an unprivileged probe finds no namespaces and nothing
        # is refused for it. Whatever a later version decides, never a traceback.
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr

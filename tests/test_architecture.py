"""The shape of the package, checked: the rooms of architecture.md and what each may lean on.

Read from the source (no import runs): every `import` and `from ... import` of a drills module,
lazy ones inside functions included, `if TYPE_CHECKING:` blocks excluded (they cost nothing at
run time and cannot make a circle). The rules the seam issue set:
- the import graph has no circle;
- no arrow runs back up the rooms (the engine never reaches a backend, probes never reach the
  engine or the analysis, the scenario leans on nothing but errors and leaves, ...);
- nothing under drills/engine/ imports pyroute2, docker, subprocess, or reads /proc itself;
- no module in drills/ is over 500 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "drills"
MAX_LINES = 500

# Room of a module: the longest matching prefix wins.
ROOMS: dict[str, str] = {
    "drills.cli": "face",
    "drills.__main__": "face",
    "drills.render": "face",
    "drills.live": "face",
    "drills.trials": "face",  # runs a drill N times and folds the results: a command's body
    "drills.pytest_plugin": "face",  # pytest's door: runs drills as tests
    "drills.lifecycle": "lifecycle",
    "drills.spread": "lifecycle",  # composes a drill over several hosts
    "drills.backends": "lifecycle",  # the one place that picks a backend
    "drills.doctor": "lifecycle",
    "drills.containerlab": "lifecycle",  # an importer
    "drills.zoo": "lifecycle",  # an importer: Topology Zoo graphs (GraphML, GML)
    "drills.control": "control",  # the control page and socket during play (Starlette's and uvicorn's edge)
    "drills.runs": "state",
    "drills.journal": "state",
    "drills.outdir": "state",
    "drills.engine": "engine",
    "drills.backend": "seam",
    "drills.engines": "seam",  # which link engine serves a link: a function of declared capabilities
    "drills.netns": "backends",
    "drills.userspace": "backends",
    "drills.docker": "backends",
    "drills.hosts": "hosts",  # several machines: inventory, placement, provisioning (Ansible's edge)
    "drills.remote": "remote",  # the resident agent and the backend that drives agents
    "drills.probes": "probes",
    "drills.scenario": "scenario",
    "drills.msel": "msel",  # the timeline as a spreadsheet's MSEL (CSV) and back
    "drills.measure": "analysis",
    "drills.measure_samples": "analysis",
    "drills.drill_result": "analysis",
    "drills.analysis": "analysis",
    "drills.objectives": "analysis",
    "drills.known": "analysis",  # known answers (`expect_known:`) judged: verdicts like objectives'
    "drills.results": "analysis",
    "drills.reports": "analysis",
    "drills.errors": "leaf",
    "drills.clock": "leaf",
    "drills.realtime": "leaf",  # SCHED_FIFO for the probe threads and a fault's apply
    "drills.textsafe": "leaf",
    "drills.records": "leaf",
    "drills.impairment": "leaf",
    "drills.rules": "leaf",
    "drills.signals": "leaf",
    "drills": "leaf",  # the package itself: its version
}

# What each room may import (besides itself). State (runs, journal, result directories) is the
# run's record on disk: lifecycle, engine and backends all write it.
ALLOWED: dict[str, set[str]] = {
    "face": {
        "control", "lifecycle", "state", "engine", "seam", "backends", "hosts", "remote", "probes", "scenario", "analysis",
        "msel", "leaf",
    },
    # The control page and socket drive the exercise's control (an engine object) from outside the drill.
    "control": {"engine", "state", "leaf"},
    # `lifecycle.run` composes a drill: it picks the backend and hands it, with the clock, to the engine.
    "lifecycle": {"state", "engine", "seam", "backends", "hosts", "remote", "scenario", "leaf"},
    "hosts": {"state", "seam", "scenario", "leaf"},
    # The agent composes a namespace backend and probe endpoints on its host; the controller's
    # side is a backend of agents. Neither is known to the engine.
    "remote": {"hosts", "backends", "probes", "analysis", "state", "seam", "scenario", "leaf"},
    "engine": {"state", "seam", "probes", "scenario", "analysis", "leaf"},
    "seam": {"leaf"},
    "backends": {"state", "seam", "scenario", "leaf"},
    "probes": {"seam", "scenario", "leaf"},  # sockets come from the seam's SocketOps
    "scenario": {"leaf"},
    "msel": {"scenario", "leaf"},
    "analysis": {"state", "scenario", "leaf"},
    "state": {"leaf"},
    "leaf": set(),
}

# Third-party libraries and standard modules that reach a kernel, a container engine or a process
# directly: the engine composes faults from the seam's operations instead.
ENGINE_FORBIDDEN = ("pyroute2", "docker", "subprocess", "ansible_runner")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for inner in ast.walk(node))
    return skipped


def imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the module, lazy ones included."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                # `from package import module` imports the module; `from module import name`, the module.
                yield f"{base}.{alias.name}", node.lineno
                yield base, node.lineno


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        found = {target for target, _line in imports(name, path) if target in known}
        for target in found:
            # `from drills.scenario import model` names the module, not the package's __init__.
            submodule = any(other.startswith(target + ".") for other in found)
            if target != name and target != "drills" and not submodule:
                edges[name].add(target)
    return edges


def room(name: str) -> str:
    best = max((prefix for prefix in ROOMS if name == prefix or name.startswith(prefix + ".")), key=len)
    return ROOMS[best]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_has_no_circle() -> None:
    assert cycles(graph()) == []


def test_no_arrow_runs_back_up() -> None:
    wrong = []
    for source, targets in graph().items():
        for target in sorted(targets):
            if room(target) != room(source) and room(target) not in ALLOWED[room(source)]:
                wrong.append(f"{source} ({room(source)}) -> {target} ({room(target)})")
    assert wrong == []


def test_the_engine_reaches_no_kernel_container_or_process_itself() -> None:
    wrong = []
    for name, path in modules().items():
        if not name.startswith("drills.engine"):
            continue
        for target, line in imports(name, path):
            if target.split(".")[0] in ENGINE_FORBIDDEN:
                wrong.append(f"{path.name}:{line} imports {target}")
        text = path.read_text()
        for needle in ("/proc/", "os.kill(", "time.monotonic(", "time.sleep("):
            if needle in text:
                wrong.append(f"{path.name} uses {needle}")
    assert wrong == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_500_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines: split it along its jobs"


def test_the_room_table_knows_every_module() -> None:
    # A new top-level module must be given a room here: "drills" alone is the package itself.
    def placed(name: str) -> bool:
        return any(name == prefix or name.startswith(prefix + ".") for prefix in ROOMS if prefix != "drills")

    assert [name for name in modules() if name != "drills" and not placed(name)] == []


# Third-party libraries kept at one edge each: the module(s) that may import them.
EDGES = {"starlette": {"drills.control.web"}, "uvicorn": {"drills.control.web"}}


def test_each_web_library_stays_at_its_edge() -> None:
    wrong = []
    for name, path in modules().items():
        for target, line in imports(name, path):
            allowed = EDGES.get(target.split(".")[0])
            if allowed is not None and name not in allowed:
                wrong.append(f"{name}:{line} imports {target}")
    assert wrong == []

"""Load a scenario file: read YAML with positions, check its shape, then resolve references.

`load_scenario` returns a resolved `Scenario` or raises `ScenarioError` listing every problem
found in one pass, each with file:line:column, key path and a hint.
"""

from __future__ import annotations

import difflib
import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from drills.errors import Problem, ScenarioError
from drills.scenario import limits, model, userfile
from drills.scenario.diagnostics import describe as _describe
from drills.scenario.diagnostics import problem_at, problems_from
from drills.scenario.resolve import Parts, resolve
from drills.scenario.resolved import Scenario
from drills.scenario.yamlcompose import token
from drills.scenario.yamlpos import Located, YamlError, load_located, no_cyclic_gc, read_located


def builtin_profiles() -> dict[str, model.Profile]:
    """The link profiles shipped with drills (drills/data/profiles.yaml)."""
    text = resources.files("drills").joinpath("data/profiles.yaml").read_text(encoding="utf-8")
    located = load_located(text, "drills/data/profiles.yaml")
    return dict(model.ProfilesFile.model_validate(located.data).profiles)


_TOPOLOGY_KEYS = tuple(model.TopologyFile.model_fields)
_JOINED_LISTS = ("links", "segments")
_JOINED_SETTINGS = ("addressing", "routing", "routing_timers")


def _include_topology(located: Located, scenario_path: Path, problems: list[Problem]) -> bool:
    """Replace `topology: FILE` by the file's content, or join the files of `topology: {include:
    [...]}` into the mapping, keeping the files' own positions. False when a file could not be
    included (the problem is already reported; the topology is then left out)."""
    data = located.data
    ref = data.get("topology")
    if isinstance(ref, str):
        included = _read_topology(located, ("topology",), ref, scenario_path, problems)
        if included is None:
            data["topology"] = None
            return False
        data["topology"] = included.data
        located.graft(("topology",), included)
        return True
    if not (isinstance(ref, dict) and isinstance(ref.get("include"), list)):
        return True
    refs = ref["include"]
    if len(refs) > limits.MAX_TOPOLOGY_INCLUDES or not all(isinstance(r, str) for r in refs):
        ref.setdefault("nodes", {})  # nothing was joined: only the list's own problem is reported
        return True  # the shape check reports it, at its line
    files = [_read_topology(located, ("topology", "include", i), r, scenario_path, problems) for i, r in enumerate(refs)]
    before = len(problems)
    if all(f is not None for f in files):
        _join(located, ref, [f for f in files if f is not None], problems)
    if len(problems) > before or any(f is None for f in files):
        data["topology"] = None
        return False
    return True


def _read_topology(
    located: Located, at: tuple[str | int, ...], ref: str, scenario_path: Path, problems: list[Problem]
) -> Located | None:
    """One topology file named at `at`, read with its positions; None (problem reported) when it
    cannot be used.

    The file is read under the same bounds as the scenario. It may be any file on the host
    (drills runs as root), so nothing of it is quoted until it looks like a topology file: a file
    that cannot be read is reported at the scenario's line naming it, a YAML error in it at its
    own line with the kind of error only, a mapping with other keys at the first such key."""
    # Normalised but not resolved: problems in the included file are then reported under a
    # name as relative (or absolute) as the scenario's own, not under a machine-specific path.
    target = Path(os.path.normpath(scenario_path.parent / ref))
    name = token(ref, 80)

    def refuse(message: str) -> Located | None:
        problems.append(problem_at(located, at, message))
        return None

    if _same_file(target, scenario_path):
        return refuse(f"topology file {name} is this scenario itself; include a file with `nodes:` and `links:`")
    try:
        text = userfile.read_text(target)
    except userfile.FileRefused as exc:
        if exc.reason.startswith("file not found"):
            return refuse(
                f"topology file {name} not found (looked at {target}); the path is relative to the scenario file"
            )
        where = f" (at its line {exc.line}, column {exc.column})" if exc.line else ""
        return refuse(f"topology file {name}: {exc.reason}{where}")
    try:
        included = load_located(text, str(target), foreign=True)
    except YamlError as exc:
        problems.extend(exc.problems)
        return None
    if not isinstance(included.data, dict):
        mark = included.mark(())
        line, column = (mark.line, mark.column) if mark else (1, 1)
        problems.append(
            Problem(str(target), line, column, "", "a topology file holds a mapping with `nodes:` and `links:`")
        )
        return None
    foreign = [key for key in included.data if key not in _TOPOLOGY_KEYS]
    if foreign:
        mark = included.mark((foreign[0],), key=True)
        line, column = (mark.line, mark.column) if mark else (1, 1)
        near = difflib.get_close_matches(foreign[0], _TOPOLOGY_KEYS, n=1, cutoff=0.75)
        # Only a near miss of a topology key is quoted: any other key may be someone's secret.
        if foreign[0] == "include":
            what = "includes do not nest: list every file under the scenario's `topology: include:`"
        elif near:
            what = f"unknown key {token(foreign[0])}; did you mean '{near[0]}'?"
        else:
            what = "a key that is not a topology key"
        problems.append(
            Problem(
                str(target),
                line,
                column,
                "",
                f"{what} (a topology file holds only {', '.join(f'`{k}:`' for k in _TOPOLOGY_KEYS)}); "
                "is this the right file?",
            )
        )
        return None
    return included


def _join(located: Located, topology: dict[str, Any], files: list[Located], problems: list[Problem]) -> None:
    """Join the included files into the scenario's `topology:` mapping: their nodes first (in
    include order) then the scenario's own; their links and segments after the scenario's own (so
    the scenario's own keep their positions); `addressing`, `routing`, `routing_timers` from the
    scenario when it sets them, else from the files (which must then agree). Each file's
    positions are kept, so a problem in a joined link points into its own file."""
    misshapen = False
    for key, kind in (("nodes", dict), *((k, list) for k in _JOINED_LISTS)):
        if not isinstance(topology.get(key, kind()), kind):
            return  # the shape check reports the scenario's own
        for included in files:
            if not isinstance(included.data.get(key, kind()), kind):
                misshapen = True
                problems.append(
                    _file_problem(included, (key,), f"`{key}:` of a topology file is a {'mapping' if kind is dict else 'list'}")
                )
    if misshapen:
        return
    own_nodes: dict[str, Any] = topology.get("nodes", {})
    seen = {name: located.mark(("topology", "nodes", name), key=True) for name in own_nodes}
    nodes: dict[str, Any] = {}
    settings_from: dict[str, Located] = {}
    for included in files:
        offsets = {key: len(topology.setdefault(key, [])) for key in _JOINED_LISTS}
        for name, node in included.data.get("nodes", {}).items():
            if name in seen:
                first = seen[name]
                where = f" (first at {first.file}:{first.line})" if first else ""
                problems.append(
                    _file_problem(
                        included,
                        ("nodes", name),
                        f"node {token(str(name))} is defined twice{where}: node names must be unique across joined "
                        "topology files (rename one: `drill import zoo` names come from the graph's labels)",
                    )
                )
                continue
            seen[name] = included.mark(("nodes", name), key=True)
            nodes[name] = node
        for key in _JOINED_LISTS:
            topology[key].extend(included.data.get(key, []))
        for key in _JOINED_SETTINGS:
            if key in included.data and key not in topology:
                earlier = settings_from.get(key)
                if earlier is None:
                    settings_from[key] = included
                elif earlier.data[key] != included.data[key]:
                    first = earlier.mark((key,), key=True)
                    where = f" (at {first.file}:{first.line})" if first else ""
                    problems.append(
                        _file_problem(
                            included,
                            (key,),
                            f"`{key}:` differs from an earlier file's{where}; set `{key}:` in the scenario's "
                            "`topology:` to choose",
                        )
                    )
        _graft_joined(located, included, offsets, take={k for k, f in settings_from.items() if f is included})
    for key, included in settings_from.items():
        topology[key] = included.data[key]
    topology["nodes"] = {**nodes, **own_nodes}


def _graft_joined(located: Located, included: Located, offsets: dict[str, int], take: set[str]) -> None:
    """The positions of one joined file under `topology`: node paths as they are, list items
    shifted by `offsets`, the settings in `take` whole. One pass over the file's positions."""
    for source, target in ((included.values, located.values), (included.keys, located.keys)):
        for path, mark in source.items():
            head = path[0] if path else None
            if head == "nodes" and len(path) > 1:
                target[("topology", *path)] = mark
            elif head in offsets and len(path) > 1 and isinstance(path[1], int):
                target[("topology", head, path[1] + offsets[str(head)], *path[2:])] = mark
            elif head in take:
                target[("topology", *path)] = mark


def _file_problem(included: Located, path: tuple[str | int, ...], message: str) -> Problem:
    mark = included.mark(path, key=True)
    line, column = (mark.line, mark.column) if mark else (1, 1)
    return Problem(mark.file if mark else "?", line, column, ".".join(str(p) for p in ("topology", *path)), message)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    # Building an adapter costs ~0.7 ms (pydantic compiles a validator); a file with a shape error
    # validates every step, probe and objective on its own, so one adapter per type, not per piece.
    return TypeAdapter(tp)


def _valid_piece(located: Located, path: tuple[str | int, ...], tp: Any) -> Any:
    """The piece of data at `path` validated on its own, or None when it has errors (those were
    already reported by the whole-file validation)."""
    data = located.data
    for part in path:
        data = data[part]
    try:
        return _adapter(tp).validate_python(data)
    except ValidationError:
        return None


def parse(path: Path) -> tuple[Located, model.ScenarioFile | None, Parts, list[Problem]]:
    """Shape-check a scenario. On shape errors, still return every piece that is valid on its own
    (topology, each probe, each step, each objective) so that resolution can report more."""
    problems: list[Problem] = []
    try:
        located = read_located(path)
    except YamlError as exc:
        return Located(None), None, Parts(), exc.problems
    if not isinstance(located.data, dict):
        if located.data is None:
            found = "the file is empty"
        elif isinstance(located.data, str):  # the whole file may be one string: never quote it
            found = "found text that is not a mapping (a single string)"
        else:
            found = f"found {_describe(located.data)}"
        mark = located.mark(())
        line, column = (mark.line, mark.column) if mark else (1, 1)
        problems.append(
            Problem(
                str(path), line, column, "", f"a scenario file holds a mapping that starts with `version: 1`; {found}"
            )
        )
        return located, None, Parts(), problems
    known = {field.alias or name for name, field in model.ScenarioFile.model_fields.items()}
    if located.data and not known.intersection(located.data):
        # No key of a scenario at all: some other file (maybe not the user's: drills runs as
        # root). Quote none of it.
        mark = located.mark(())
        line, column = (mark.line, mark.column) if mark else (1, 1)
        problems.append(
            Problem(
                str(path),
                line,
                column,
                "",
                "not a scenario: none of its keys is a scenario key; a scenario file starts with `version: 1`",
            )
        )
        return located, None, Parts(), problems
    included = _include_topology(located, path, problems)
    try:
        whole = model.ScenarioFile.model_validate(located.data)
        return located, whole, Parts.from_model(whole), problems
    except ValidationError as exc:
        shape = problems_from(exc, located, model.ScenarioFile)
        if not included:
            # `topology: FILE` that could not be read is reported once, not again as "not a mapping".
            shape = [p for p in shape if p.path != "topology"]
        problems.extend(shape)
    data: dict[str, Any] = located.data
    parts = Parts()
    topology = data.get("topology")
    if isinstance(topology, dict):
        parts.topology = _valid_piece(located, ("topology",), model.Topology)
        if parts.topology is None:
            _topology_pieces(located, topology, parts)
    if isinstance(data.get("profiles"), dict):
        for name in data["profiles"]:
            profile = _valid_piece(located, ("profiles", name), model.Profile)
            if profile is not None:
                parts.profiles[name] = profile
            else:
                parts.invalid_profiles.add(str(name))
    for key, cls, target, invalid, name_key in (
        ("probes", model.Probe, parts.probes, parts.invalid_probes, "name"),
        ("timeline", model.Step, parts.steps, parts.invalid_steps, "id"),
        ("expect", model.Objective, parts.objectives, None, None),
        ("expect_known", model.KnownAnswer, parts.known, None, None),
    ):
        items = data.get(key)
        if isinstance(items, list):
            for index in range(len(items)):
                piece = _valid_piece(located, (key, index), cls)
                if piece is not None:
                    target.append((index, piece))
                elif invalid is not None and isinstance(items[index], dict):
                    name = items[index].get(name_key)
                    if isinstance(name, str):
                        invalid.add(name)
    return located, None, parts, problems


def _topology_pieces(located: Located, topology: dict[str, Any], parts: Parts) -> None:
    """The links of a topology that has shape errors, each valid on its own, and the names of its
    nodes: enough to check link references in the same pass."""
    nodes = topology.get("nodes")
    if isinstance(nodes, dict):
        parts.node_names = {str(name) for name in nodes}
    links = topology.get("links")
    if isinstance(links, list):
        for index in range(len(links)):
            link = _valid_piece(located, ("topology", "links", index), model.Link)
            if link is not None:
                parts.links.append((index, link))


def validate_file(path: Path) -> list[Problem]:
    """Every problem of one scenario file; empty when it is valid. No side effects."""
    try:
        load_scenario(path)
    except ScenarioError as exc:
        return exc.problems
    return []


def load_scenario(path: Path) -> Scenario:
    """Parse and resolve `path`; raises ScenarioError with every problem found."""
    with no_cyclic_gc():  # parse and resolve make objects, no garbage cycles (see no_cyclic_gc)
        return _load(Path(path))


def _load(path: Path) -> Scenario:
    located, whole, parts, problems = parse(path)
    if located.data is None or not isinstance(located.data, dict):
        raise ScenarioError(problems)
    profiles = builtin_profiles()
    profiles.update(parts.profiles)
    scenario, more = resolve(path, located, whole, parts, profiles)
    problems.extend(more)
    if problems or scenario is None:
        raise ScenarioError(problems)
    return scenario

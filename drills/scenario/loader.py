"""Load a scenario file: read YAML with positions, check its shape, then resolve references.

`load_scenario` returns a resolved `Scenario` or raises `ScenarioError` listing every problem
found in one pass, each with file:line:column, key path and a hint.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from drills.errors import Problem, ScenarioError
from drills.scenario import model
from drills.scenario.diagnostics import describe as _describe
from drills.scenario.diagnostics import problem_at, problems_from
from drills.scenario.resolve import Parts, resolve
from drills.scenario.resolved import Scenario
from drills.scenario.yamlpos import Located, YamlError, load_located, read_located


def builtin_profiles() -> dict[str, model.Profile]:
    """The link profiles shipped with drills (drills/data/profiles.yaml)."""
    text = resources.files("drills").joinpath("data/profiles.yaml").read_text(encoding="utf-8")
    located = load_located(text, "drills/data/profiles.yaml")
    return dict(model.ProfilesFile.model_validate(located.data).profiles)


def _include_topology(located: Located, scenario_path: Path, problems: list[Problem]) -> bool:
    """Replace `topology: FILE` by the file's content, keeping the file's own positions.
    False when the file could not be included (the problem is already reported)."""
    data = located.data
    ref = data.get("topology")
    if not isinstance(ref, str):
        return True
    # Normalised but not resolved: problems in the included file are then reported under a
    # name as relative (or absolute) as the scenario's own, not under a machine-specific path.
    target = Path(os.path.normpath(scenario_path.parent / ref))
    try:
        included = read_located(target)
    except YamlError as exc:
        if any("file not found" in p.message for p in exc.problems):
            problems.append(
                problem_at(
                    located,
                    ("topology",),
                    f"topology file '{ref}' not found (looked at {target}); the path is relative to the scenario file",
                )
            )
        else:
            problems.extend(exc.problems)
        data["topology"] = None
        return False
    if not isinstance(included.data, dict):
        mark = included.mark(())
        line, column = (mark.line, mark.column) if mark else (1, 1)
        problems.append(
            Problem(str(target), line, column, "", "a topology file holds a mapping with `nodes:` and `links:`")
        )
        data["topology"] = None
        return False
    data["topology"] = included.data
    located.graft(("topology",), included)
    return True


def _valid_piece(located: Located, path: tuple[str | int, ...], tp: Any) -> Any:
    """The piece of data at `path` validated on its own, or None when it has errors (those were
    already reported by the whole-file validation)."""
    data = located.data
    for part in path:
        data = data[part]
    try:
        return TypeAdapter(tp).validate_python(data)
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
        found = "the file is empty" if located.data is None else f"found {_describe(located.data)}"
        mark = located.mark(())
        line, column = (mark.line, mark.column) if mark else (1, 1)
        problems.append(
            Problem(
                str(path), line, column, "", f"a scenario file holds a mapping that starts with `version: 1`; {found}"
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
    path = Path(path)
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

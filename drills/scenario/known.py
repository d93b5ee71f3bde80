"""The checks of known answers (`expect_known:`): unique names, the probe and step each names
(and that the step has the event judged), and a window that can hold a measured figure. Run by the resolver with the other drill checks,
so one pass reports every problem at its key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drills.scenario import model
from drills.scenario.diagnostics import suggest
from drills.scenario.reporter import Reporter
from drills.scenario.units import format_duration_s
from drills.scenario.yamlpos import KeyPath

# Every figure drills measures carries an accuracy (about ±2 ms at 1000 packets/s): a window of
# no width can never hold one, whatever was measured.
_NO_WIDTH = (
    "can never hold: every measured figure carries an accuracy (about ±2 ms at 1000 packets/s), and a "
    "known answer passes only when the figure ± its accuracy lies inside; give the tolerance the answer has"
)


def _text(seconds: float) -> str:
    return format_duration_s(seconds) if seconds else "0"


def known_refs(
    reporter: Reporter,
    known: list[tuple[int, model.KnownAnswer]],
    probe_names: Iterable[str],
    step_ids: Iterable[str],
    timeline: list[tuple[int, Any]],
) -> None:
    """Check every known answer: its name is unique, its probe and step exist, the step has the
    event it judges, and exactly one of `tolerance` and `window` gives a window of some width
    around its value."""
    probes, steps = set(probe_names), set(step_ids)
    by_id = {s.id: s for _, s in timeline if not isinstance(s, model.RestoreStep) and s.id is not None}
    restored = {s.restore for _, s in timeline if isinstance(s, model.RestoreStep)}
    seen: dict[str, int] = {}
    for i, answer in known:
        path: KeyPath = ("expect_known", i)
        if answer.name in seen:
            reporter.err(
                (*path, "name"),
                f"known answer name '{answer.name}' is used twice (first at {reporter.line_of(('expect_known', seen[answer.name]))}); "
                "give each its own name",
            )
        seen.setdefault(answer.name, i)
        if answer.probe not in probes:
            reporter.err((*path, "probe"), f"unknown probe '{answer.probe}'{suggest(answer.probe, probes)}")
        if answer.step not in steps:
            reporter.err((*path, "step"), f"no timeline step has id '{answer.step}'{suggest(answer.step, steps)}")
        elif answer.step in by_id:
            _event(reporter, path, answer, by_id[answer.step], answer.step in restored)
        _window(reporter, path, answer)


def _event(reporter: Reporter, path: KeyPath, answer: model.KnownAnswer, step: Any, restored: bool) -> None:
    """A note has no event to measure; a step never lifted has no revert. Either would leave the
    answer unjudged at every run: refused now rather than found inconclusive later."""
    if isinstance(step, model.NoteStep):
        reporter.err(
            (*path, "step"),
            f"step '{answer.step}' is a note: nothing happens at it to measure; name the id of a fault's step",
        )
    elif answer.event == "revert" and (
        isinstance(step, model.ExecStep) or (step.duration is None and not restored and not isinstance(step, model.LinkFlap))
    ):
        reporter.err(
            (*path, "event"),
            f"step '{answer.step}' is never lifted (no `for:`, and no step restores it), so it has no revert to judge; "
            "judge `event: apply`, or give the step a `for:`",
        )


def _window(reporter: Reporter, path: KeyPath, answer: model.KnownAnswer) -> None:
    """Exactly one of `tolerance` and `window`, of some width, around the value."""
    if answer.tolerance is None and answer.window is None:
        reporter.err(
            path,
            "a known answer needs `tolerance:` (it holds within value ± tolerance) or `window: [low, high]`",
        )
        return
    if answer.tolerance is not None and answer.window is not None:
        reporter.err((*path, "window"), "give `tolerance:` or `window:`, not both")
        return
    if answer.tolerance is not None:
        if answer.tolerance <= 0:
            reporter.err((*path, "tolerance"), f"a tolerance of 0 {_NO_WIDTH}")
        return
    assert answer.window is not None
    low_s, high_s = answer.window
    if low_s > high_s:
        reporter.err(
            (*path, "window"),
            f"the window runs from {_text(low_s)} down to {_text(high_s)}; write it as [low, high]",
        )
    elif low_s == high_s:
        reporter.err((*path, "window"), f"a window of no width ({_text(low_s)} to {_text(high_s)}) {_NO_WIDTH}")
    elif not low_s <= answer.value <= high_s:
        reporter.err(
            (*path, "value"),
            f"the known value {_text(answer.value)} lies outside its own window [{_text(low_s)}, {_text(high_s)}]; "
            "correct one of them",
        )

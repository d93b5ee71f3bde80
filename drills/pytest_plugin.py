"""pytest plugin (the `pytest11` entry point `drills`): resilience drills as pytest tests.

Inert unless asked: it adds options and a `drill` fixture, and collects nothing unless
`--drill SCENARIO` (repeatable) or `DRILLS_SCENARIOS` (paths separated by `os.pathsep`, for IDEs)
names scenarios. Each scenario becomes a collector whose items are known before anything runs,
from the scenario alone (so `--collect-only` deploys nothing):

- one item per objective (`expect:` entry): passes when every verdict of it passed;
- one item per known answer (`expect_known:`): passes when every event of it passed, fails when
  one failed, and is an error when one could not be judged;
- one item per fault step x probe: the step's figures for that probe (outage, recovery, each
  with its accuracy), failing only when the drill measured nothing for it.

The drill runs once per scenario, when its first item is set up; the engine tears the testbed
down before it returns, on failure, Ctrl-C and SIGTERM alike. An inconclusive drill (a baseline
not clean) or one that could not run makes every item of it an *error*, never a pass. Each item's
figure, bound and accuracy are in its failure text and in `user_properties`, which pytest's own
`--junitxml` writes as JUnit properties.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from drills.drill_result import DrillResult
    from drills.reports.compare import Comparison

SCENARIOS_ENV = "DRILLS_SCENARIOS"
MAX_SCENARIOS = 64  # a test session names a handful; a runaway variable is refused


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drills", "resilience drills (drills)")
    group.addoption("--drill", action="append", default=[], metavar="SCENARIO", help="run this drill scenario as tests (repeatable)")
    group.addoption("--drill-state-dir", default=None, metavar="DIR", help="drills' state directory (default: DRILLS_STATE_DIR or /var/lib/drills)")
    group.addoption("--drill-inventory", default=None, metavar="FILE", help="an Ansible inventory: run the scenarios across its hosts")
    group.addoption("--drill-out", default=None, metavar="DIR", help="write each drill's results and reports to DIR/SCENARIO-NAME")
    group.addoption("--drill-baseline", default=None, metavar="DIR", help="compare each drill with its last good run kept in DIR (an item `baseline` per scenario)")
    group.addoption("--drill-save-baseline", default=None, metavar="DIR", help="keep each drill that passed and did not regress in DIR as its baseline")
    group.addoption(
        "--drill-keep-up",
        action="store_true",
        help="after each drill, bring its testbed up again and leave it up for debugging (`drill ls`, `drill down RUN`)",
    )


def _scenario_paths(config: pytest.Config) -> list[Path]:
    named: list[str] = list(config.getoption("--drill") or [])
    from_env = os.environ.get(SCENARIOS_ENV, "")
    named += [p for p in from_env.split(os.pathsep) if p.strip()]
    if len(named) > MAX_SCENARIOS:
        raise pytest.UsageError(f"{len(named)} drill scenarios named (--drill, {SCENARIOS_ENV}); at most {MAX_SCENARIOS}")
    paths = []
    for name in named:
        path = Path(name).expanduser()
        if not path.is_file():
            raise pytest.UsageError(f"--drill {name}: no such scenario file")
        paths.append(path.resolve())
    return list(dict.fromkeys(paths))


def pytest_configure(config: pytest.Config) -> None:
    paths = _scenario_paths(config)
    config.stash[_PATHS] = paths
    if not paths:
        return
    # `pytest --drill x.yaml` runs that drill alone; with test paths given too, both.
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(p) for p in paths]
    else:
        config.args.extend(str(p) for p in paths if str(p) not in config.args)


_PATHS = pytest.StashKey[list[Path]]()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.resolve() in parent.config.stash.get(_PATHS, []):
        collector: DrillScenario = DrillScenario.from_parent(parent, path=file_path)
        return collector
    return None


class DrillError(Exception):
    """The drill could not run, or ran inconclusive: every item of it is an error."""


class DrillFailed(Exception):
    """An objective was missed (or a measurement is missing): the item fails with this text."""


@dataclass
class _Outcome:
    result: DrillResult | None = None
    run_dir: Path | None = None  # where its results.json was written
    error: str | None = None
    ran: bool = False


class DrillScenario(pytest.File):
    """One scenario: its items, and the one run they share."""

    _outcome: _Outcome

    def collect(self) -> Iterator[pytest.Item]:
        from drills.engine.timeline import expand
        from drills.errors import DrillError as _Error
        from drills.scenario.loader import load_scenario

        try:
            scenario = load_scenario(self.path)
        except _Error as exc:
            raise self.CollectError(str(exc)) from None
        self._outcome = _Outcome()
        for label in dict.fromkeys(o.label for o in scenario.objectives):
            yield ObjectiveItem.from_parent(self, name=f"objective {label}", objective=label)
        for known in scenario.known:
            yield KnownItem.from_parent(self, name=f"known {known.name}", known=known.name)
        probes = [p.name for p in scenario.probes]
        seed = scenario.seed if scenario.seed is not None else 0
        labels = [a.label for a in expand(scenario, seed) if a.kind == "apply" and a.step.kind != "note"]
        for label in dict.fromkeys(labels):
            for probe in probes:
                yield MeasurementItem.from_parent(self, name=f"{label} x {probe}", step=label, probe=probe)
        if self.config.getoption("--drill-baseline") or self.config.getoption("--drill-save-baseline"):
            yield BaselineItem.from_parent(self, name="baseline")

    def outcome(self) -> DrillResult:
        """The drill's result, run on first use; DrillError when it could not run or was inconclusive."""
        __tracebackhide__ = True  # the report shows why, not this plugin's frames
        outcome = self._outcome
        if not outcome.ran:
            outcome.ran = True
            from drills.errors import Aborted
            from drills.errors import DrillError as _Error

            try:
                outcome.result, outcome.run_dir = _run_written(self.config, self.path)
            except Aborted as exc:
                # Ctrl-C or SIGTERM: the engine has torn the testbed down; the session stops
                # here, as pytest stops on Ctrl-C, rather than go on to the next drill.
                raise KeyboardInterrupt(str(exc)) from None
            except Exception as exc:  # every error of the run is each item's error, reported once per item
                outcome.error = str(exc) if isinstance(exc, _Error) else f"{type(exc).__name__}: {exc}"
        if outcome.error is not None:
            raise DrillError(f"drill {self.path.name} could not run: {outcome.error}")
        assert outcome.result is not None
        if outcome.result.inconclusive:
            raise DrillError(f"drill {self.path.name} is inconclusive: its baseline was not clean, so nothing can be concluded")
        return outcome.result


def _run_written(config: pytest.Config, path: Path) -> tuple[DrillResult, Path | None]:
    """One drill, its results written where they are wanted: `--drill-out DIR/SCENARIO`, or,
    for a baseline to compare or keep (which reads results.json), a private temporary
    directory removed when the session ends. Otherwise nothing is written (None)."""
    import shutil
    import tempfile

    from drills import results

    result = _run(config, path)
    out = config.getoption("--drill-out")
    if out:
        run_dir = Path(out) / result.scenario
    elif config.getoption("--drill-baseline") or config.getoption("--drill-save-baseline"):
        run_dir = Path(tempfile.mkdtemp(prefix="drills-pytest-"))
        config.add_cleanup(lambda: shutil.rmtree(run_dir, ignore_errors=True))
    else:
        return result, None
    results.write(result, run_dir, path)
    return result, run_dir


def _run(config: pytest.Config, path: Path) -> DrillResult:
    from drills import lifecycle
    from drills.runs import state_dir_from_env

    state = config.getoption("--drill-state-dir")
    state_dir = state_dir_from_env(Path(state) if state else None)
    inventory = config.getoption("--drill-inventory")
    result = lifecycle.run(path, state_dir, inventory=Path(inventory) if inventory else None)
    if config.getoption("--drill-keep-up"):
        run_id = lifecycle.up(path, state_dir, inventory=Path(inventory) if inventory else None).meta.run_id
        config.get_terminal_writer().line(f"drills: {path.name} is up again as run {run_id} (--drill-keep-up); remove it with `drill down {run_id}`")
    return result


class _DrillItem(pytest.Item):
    result: DrillResult

    def setup(self) -> None:
        __tracebackhide__ = True
        scenario = self.parent
        assert isinstance(scenario, DrillScenario)
        self.result = scenario.outcome()  # raised here, in setup: the item's error, not a failure

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, DrillFailed | DrillError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"drill {self.path.name}: {self.name}"


class ObjectiveItem(_DrillItem):
    def __init__(self, *, objective: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = objective

    def runtest(self) -> None:
        # A verdict is named `LABEL: what` (outage, recovery, loss, ...): one objective, several.
        verdicts = [v for v in self.result.verdicts if v.objective.split(": ", 1)[0] == self.objective]
        lines = [f"{v.objective} — {v.probe} / {v.event}: measured {v.measured}, bound {v.bound}" for v in verdicts]
        for i, v in enumerate(verdicts):
            self.user_properties += [(f"{i}.measured", v.measured), (f"{i}.bound", v.bound), (f"{i}.passed", str(v.passed))]
        if not verdicts:
            raise DrillFailed(f"objective {self.objective}: nothing was judged (no matching event measured)")
        missed = [line for v, line in zip(verdicts, lines, strict=True) if v.passed is not True]
        if missed:
            raise DrillFailed(f"objective {self.objective} missed:\n  " + "\n  ".join(missed))


class KnownItem(_DrillItem):
    def __init__(self, *, known: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.known = known

    def runtest(self) -> None:
        verdicts = [k for k in self.result.known if k.name == self.known]
        for i, k in enumerate(verdicts):
            measured = "none" if k.measured_s is None else f"{k.measured_s:.6f}"
            self.user_properties += [(f"{i}.measured_s", measured), (f"{i}.accuracy_s", str(k.accuracy_s)), (f"{i}.window_s", f"{k.low_s:.6f}..{k.high_s:.6f}")]
        lines = [f"{k.event}: {k.verdict} ({k.reason})" for k in verdicts]
        if not verdicts or any(k.passed is None for k in verdicts):
            raise DrillError(f"known answer {self.known} could not be judged:\n  " + "\n  ".join(lines or ["no event of its step was measured"]))
        if any(k.passed is False for k in verdicts):
            raise DrillFailed(f"known answer {self.known} failed:\n  " + "\n  ".join(lines))


class MeasurementItem(_DrillItem):
    def __init__(self, *, step: str, probe: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step, self.probe = step, probe

    def runtest(self) -> None:
        found = [m for m in self.result.metrics if m.probe == self.probe and m.event == self.step]
        if not found:
            raise DrillFailed(f"{self.step} x {self.probe}: the drill measured nothing for it")
        for m in found:
            recovery = "never" if m.time_to_recover_s is None else f"{m.time_to_recover_s:.6f}"
            self.user_properties += [
                (f"{m.kind}.outage_s", f"{m.outage_s:.6f}"),
                (f"{m.kind}.time_to_recover_s", recovery),
                (f"{m.kind}.accuracy_s", f"{m.accuracy_s:.6f}"),
            ]


class BaselineItem(_DrillItem):
    """The drill against its last good run (`--drill-baseline DIR`): fails on a regression
    beyond both accuracy bounds; a missing baseline or one with no figure in common is an
    error, never a pass. With `--drill-save-baseline DIR`, a run that passed and did not regress
    is kept there."""

    comparison: Comparison | None

    def setup(self) -> None:
        """What to compare with, found in setup: a missing baseline (with nothing to keep) or one
        with no figure in common is an error, never a pass."""
        __tracebackhide__ = True
        from drills.errors import DrillError as _Error
        from drills.reports import baseline

        super().setup()
        compare_in, save_in = self.config.getoption("--drill-baseline"), self.config.getoption("--drill-save-baseline")
        self.comparison = None
        if not compare_in:
            return
        try:
            self.comparison = baseline.check(Path(compare_in), self.result.scenario, self._run_dir())
        except _Error as exc:
            raise DrillError(str(exc)) from None
        if self.comparison is None and not save_in:
            raise DrillError(f"no baseline of scenario {self.result.scenario} in {compare_in}: nothing to compare; keep one first with --drill-save-baseline")

    def _run_dir(self) -> Path:
        scenario = self.parent
        assert isinstance(scenario, DrillScenario) and scenario._outcome.run_dir is not None
        return scenario._outcome.run_dir

    def runtest(self) -> None:
        from drills.reports import baseline

        worse: list[str] = []
        if (comparison := self.comparison) is not None:
            worse += [f"{d.probe} / {d.event}: {d.figure} {d.a_s} s -> {d.b_s} s (tolerance {d.tolerance_s:.6f} s)" for d in comparison.differences if d.regressed]
            worse += [f"{d.probe} / {d.scope}: {d.figure} {d.a_pct:.3f} % -> {d.b_pct:.3f} % (tolerance {d.tolerance_pct:.3f} %)" for d in comparison.shares if d.regressed]
            worse += [f"partition pair {flip}" for flip in comparison.pair_regressions]
            self.user_properties.append(("regressions", str(len(worse))))
        save_in = self.config.getoption("--drill-save-baseline")
        if save_in and self.result.passed and not worse:
            self.user_properties.append(("baseline_kept", str(baseline.save(Path(save_in), self.result.scenario, self._run_dir()))))
        if worse:
            raise DrillFailed(f"{self.result.scenario} regressed against its baseline in {self.config.getoption('--drill-baseline')}:\n  " + "\n  ".join(worse))


# --------------------------------------------------------------------------- the fixture


@dataclass
class Runs:
    """What `drill.run` returns: each trial's result (one unless `trials=`), and their verdict."""

    results: list[DrillResult] = field(default_factory=list)

    @property
    def result(self) -> DrillResult:
        """The last trial's result."""
        return self.results[-1]

    @property
    def inconclusive(self) -> bool:
        return any(r.inconclusive for r in self.results)

    @property
    def passed(self) -> bool:
        """Every trial conclusive and every objective of every trial met."""
        return bool(self.results) and not self.inconclusive and all(r.passed for r in self.results)


class DrillRunner:
    """The `drill` fixture: run scenarios from a test (`drill.run("x.yaml", trials=3)`)."""

    MAX_TRIALS = 100

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    def run(self, scenario: str | Path, trials: int = 1) -> Runs:
        if not 1 <= trials <= self.MAX_TRIALS:
            raise ValueError(f"trials must be 1..{self.MAX_TRIALS}, not {trials}")
        path = Path(scenario)
        return Runs([_run(self._config, path) for _ in range(trials)])


@pytest.fixture
def drill(pytestconfig: pytest.Config) -> DrillRunner:
    """Run drill scenarios from a test; each run tears its testbed down before it returns."""
    return DrillRunner(pytestconfig)

"""Everything the CLI shows a person, in one place (rich). The library never prints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from drills.backend import TeardownReport
from drills.errors import Problem
from drills.lifecycle import CleanReport, RunView, UpResult


class Renderer:
    """Results on stdout, progress and errors on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet

    def progress(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", markup=True)

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/] {message}", markup=True, emoji=False)

    def problems(self, problems: Sequence[Problem]) -> None:
        for problem in problems:
            self.err.print(str(problem), markup=False, emoji=False)
        count = len(problems)
        self.err.print(f"{count} problem{'s' if count != 1 else ''} found; nothing was changed", style="red")

    def valid(self, path: Path, summary: str) -> None:
        self.out.print(f"{path}: ok ({summary})", markup=False)

    def up(self, result: UpResult) -> None:
        meta = result.meta
        table = Table(title=f"run {meta.run_id}: {meta.scenario} is up", title_justify="left")
        for column in ("node", "namespace", "loopback", "interfaces"):
            table.add_column(column)
        for node in result.topology.nodes:
            interfaces = ", ".join(f"{i.name} {i.ipv4}" + (f" {i.ipv6}" if i.ipv6 else "") for i in node.interfaces)
            table.add_row(node.name, meta.nodes.get(node.name, "?"), str(node.loopback or "-"), interfaces)
        self.out.print(table)
        first = result.topology.nodes[0].name if result.topology.nodes else "NODE"
        self.out.print(f"explore: drill exec {first} -- ip route     remove: drill down {meta.run_id}", markup=False)

    def runs(self, views: Sequence[RunView]) -> None:
        if not views:
            self.out.print("no runs")
            return
        table = Table()
        for column in ("run", "scenario", "status", "nodes", "owner", "created"):
            table.add_column(column)
        for view in views:
            meta = view.meta
            owner = f"pid {meta.owner_pid}" if view.owner_alive else "-"
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(meta.created_s))
            table.add_row(meta.run_id, meta.scenario, meta.status, str(len(meta.nodes)), owner, created)
        self.out.print(table)

    def teardown(self, run_id: str, report: TeardownReport) -> None:
        self.out.print(f"run {run_id}: removed {len(report.removed)} objects", markup=False)

    def cleaned(self, report: CleanReport) -> None:
        if not report.cleaned and not report.skipped:
            self.out.print("nothing to clean")
        for run_id, teardown in report.cleaned.items():
            state = "clean" if teardown.clean else "INCOMPLETE"
            self.out.print(f"run {run_id}: removed {len(teardown.removed)} objects ({state})", markup=False)
            for item in teardown.left:
                self.err.print(f"  left: {item}", markup=False)
        for run_id, why in report.skipped.items():
            self.out.print(f"run {run_id}: left alone ({why})", markup=False)

    def drill(self, result: Any, results_path: Path) -> None:
        """The recovery table of a finished drill, its verdicts and its outcome."""
        table = Table(
            title=f"{result.scenario} (run {result.run_id}, seed {result.seed}): recovery", title_justify="left"
        )
        for column in ("probe", "event", "sent", "lost", "outage", "longest loss", "detect", "recover"):
            table.add_column(column, justify="right" if column not in ("probe", "event") else "left")

        def ms(value: float | None, accuracy: float) -> str:
            return "never" if value is None else f"{value * 1e3:.1f} ± {accuracy * 1e3:.1f} ms"

        for m in result.metrics:
            table.add_row(
                m.probe, f"{m.event} ({m.kind})", str(m.sent), str(m.lost), ms(m.outage_s, m.accuracy_s),
                ms(m.max_loss_period_s, m.accuracy_s), "-" if m.time_to_detect_s is None else ms(m.time_to_detect_s, m.accuracy_s),
                ms(m.time_to_recover_s, m.accuracy_s),
            )  # fmt: skip
        self.out.print(table)
        for name, base in result.baselines.items():
            state = "clean" if base.clean else "[red]NOT clean: results are inconclusive[/]"
            self.out.print(f"baseline {name}: {base.sent} sent, {base.lost} lost: {state}")
        for verdict in result.verdicts:
            mark = "[green]PASS[/]" if verdict.passed else "[red]FAIL[/]"
            self.out.print(
                f"{mark} {verdict.objective} [{verdict.probe} / {verdict.event}]: {verdict.measured} (bound {verdict.bound})"
            )
        outcome = "inconclusive" if result.inconclusive else ("passed" if result.passed else "FAILED")
        self.out.print(f"drill {outcome}; results: {results_path}", markup=False)

    def checks(self, checks: Sequence[Any]) -> None:
        table = Table(title="what this host can do", title_justify="left")
        for column in ("", "capability", "found", "needed for", "to fix"):
            table.add_column(column)
        for check in checks:
            mark = "[green]yes[/]" if check.ok else "[red]no[/]"
            table.add_row(mark, check.name, check.detail, check.needed_for, check.fix)
        self.out.print(table)

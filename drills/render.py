"""Everything the CLI shows a person, in one place (rich). The library never prints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from drills.backend import TeardownReport
from drills.errors import Problem
from drills.lifecycle import CleanReport, RunView, UpResult

if TYPE_CHECKING:
    from drills.engine.plan import Plan


class Renderer:
    """Results on stdout, progress and errors on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet

    def progress(self, message: str, at: str | None = None) -> None:
        """One plain progress line; `at` (HH:MM:SS) when it was logged earlier (the live view's)."""
        if not self.quiet:
            self.err.print(f"[dim]{at or time.strftime('%H:%M:%S')}[/] {message}", markup=True)

    def live_view(self, enabled: bool) -> Any:
        """The live view of `drill run` on stdout when it is a terminal (and `enabled`, and not
        quiet); None otherwise: progress is then plain lines."""
        if not enabled or self.quiet or not self.out.is_terminal:
            return None
        from drills.live import LiveView

        return LiveView(self.out)

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
        for column in ("run", "scenario", "status", "backend", "nodes", "owner", "created"):
            table.add_column(column)
        for view in views:
            meta = view.meta
            owner = f"pid {meta.owner_pid}" if view.owner_alive else "-"
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(meta.created_s))
            table.add_row(meta.run_id, meta.scenario, meta.status, meta.backend, str(len(meta.nodes)), owner, created)
        self.out.print(table)

    def teardown(self, run_id: str, report: TeardownReport) -> None:
        self.out.print(f"run {run_id}: removed {len(report.removed)} objects", markup=False)
        for item in report.refused:
            self.err.print(f"  refused: {item}", markup=False)

    def cleaned(self, report: CleanReport) -> None:
        if not report.cleaned and not report.skipped:
            self.out.print("nothing to clean")
        for run_id, teardown in report.cleaned.items():
            state = "clean" if teardown.clean else "INCOMPLETE"
            self.out.print(f"run {run_id}: removed {len(teardown.removed)} objects ({state})", markup=False)
            for item in teardown.left:
                self.err.print(f"  left: {item}", markup=False)
            for item in teardown.refused:
                self.err.print(f"  refused: {item}", markup=False)
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
            tolerated = f" (tolerated {base.tolerated_loss_pct:g} %)" if getattr(base, "tolerated_loss_pct", 0) else ""
            self.out.print(f"baseline {name}: {base.sent} sent, {base.lost} lost{tolerated}: {state}")
        if result.pairs:
            self.out.print(self._pairs_table(result.pairs))
        for verdict in result.verdicts:
            mark = "[green]PASS[/]" if verdict.passed else "[red]FAIL[/]"
            self.out.print(
                f"{mark} {verdict.objective} [{verdict.probe} / {verdict.event}]: {verdict.measured} (bound {verdict.bound})"
            )
        outcome = "inconclusive" if result.inconclusive else ("passed" if result.passed else "FAILED")
        self.out.print(f"drill {outcome}; results: {results_path}", markup=False)

    @staticmethod
    def _pairs_table(pairs: Sequence[Any]) -> Table:
        """Per (source, target) pair across each partition: intended against observed."""
        steps = sorted({p.step for p in pairs})
        table = Table(
            title=f"partition {', '.join(steps)}: per pair (one way, {pairs[0].rate_pps} packets/s each)",
            title_justify="left",
        )
        columns = ["", *(["step"] if len(steps) > 1 else []), "pair", "intended", "observed", "delivered", "detect"]
        for column in [*columns, "first after lift", "recovered"]:
            table.add_column(column, no_wrap=column in ("pair", "step"))

        def ms(value: float | None, accuracy: float) -> str:
            return "-" if value is None else f"{value * 1e3:.1f} ± {accuracy * 1e3:.1f} ms"

        marks = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[red]ERROR[/]"}
        for p in pairs:
            table.add_row(
                marks[p.matches], *([p.step] if len(steps) > 1 else []), f"{p.source}->{p.target}", p.expected,
                p.observed, f"{p.fault_delivered}/{p.fault_sent}", ms(p.time_to_detect_s, p.detect_accuracy_s),
                ms(p.first_delivery_after_lift_s, p.recover_accuracy_s),
                ms(p.time_to_recover_s, p.recover_accuracy_s) if p.time_to_recover_s is not None or p.observed != "cut" else "never",
            )  # fmt: skip
        return table

    def plan(self, plan: Plan) -> None:
        """`drill plan`: the testbed, the timeline with what each action touches, the probes and
        the objectives. Cells are plain text (no rich markup: commands and messages may hold
        brackets) and fold rather than being cut, so nothing of the plan is lost at any width."""

        def table(title: str, *columns: str) -> Table:
            """Names (the first columns) are never broken; the last column, free text, wraps."""
            t = Table(title=title, title_justify="left")
            for n, column in enumerate(columns):
                t.add_column(column, overflow="fold", no_wrap=n < 2)
            return t

        def row(t: Table, *cells: str) -> None:
            t.add_row(*(Text(cell) for cell in cells))

        out = self.out
        out.print(f"plan of {plan.scenario} ({plan.file}): a dry run, nothing was changed", markup=False)
        if plan.description:
            out.print(plan.description, markup=False)
        duration = f"{plan.duration_s:g} s" + ("" if plan.duration_given else " (last step + 10 s)")
        out.print(
            f"seed {plan.seed_text}; duration {duration}; each node is namespace {plan.namespace_pattern}, "
            "RUN being the run id chosen when the run starts",
            markup=False,
        )

        def count(n: int, noun: str) -> str:
            return f"{n} {noun}{'' if n == 1 else 's'}"

        nodes = table(f"testbed: {count(len(plan.nodes), 'node')}", "node", "namespace", "interface", "address", "link")
        for node in plan.nodes:
            first = [node.name, node.namespace]
            if node.loopback:
                row(nodes, *first, "lo", node.loopback, "-")
                first = ["", ""]
            for i in node.interfaces:
                address = " ".join(a for a in (i.ipv4, i.ipv6) if a) or "-"
                mtu = f" (mtu {i.mtu})" if i.mtu else ""
                row(nodes, *first, i.name, address + mtu, f"{i.link} to {i.peer}")
                first = ["", ""]
            if first[0]:  # no loopback and no link
                row(nodes, *first, "-", "-", "-")
        out.print(nodes)
        routes = table("routes", "node", "route")
        for node in plan.nodes:
            for n, route in enumerate(node.routes):
                row(routes, node.name if n == 0 else "", route)
        if routes.row_count:
            out.print(routes)
        out.print(f"sysctls in every namespace: {', '.join(plan.node_sysctls)}", markup=False)
        for node in plan.nodes:
            if node.sysctls:
                out.print(f"sysctls in {node.name}: {', '.join(node.sysctls)}", markup=False)
        services = table("services (started at deploy)", "node", "service", "command", "ready when")
        for node in plan.nodes:
            for service in node.services:
                env = "".join(f"{key}={value} " for key, value in service.env.items())
                row(services, node.name, service.name, env + service.command, service.ready or "-")
        if services.row_count:
            out.print(services)

        links = table(count(len(plan.links), "link"), "link", "a", "b", "subnets", "profile", "engine")
        for link in plan.links:
            row(links, link.name, link.a, link.b, ", ".join(link.subnets), link.profile or "-", link.engine or "-")
        out.print(links)

        timeline = table(
            f"timeline: {count(len(plan.actions), 'action')}", "at", "action", "step", "what it does, and touches"
        )
        for action in plan.actions:
            at = action.at + (f" + up to {action.jitter_s:g} s" if action.jitter_s else "")
            kind = f"{action.kind} (teardown)" if action.at_teardown else action.kind
            what = [action.describe] + [
                f"- {touch.namespace}: {touch.what}" if touch.namespace else f"- {touch.what}"
                for touch in action.touches
            ]
            row(timeline, at, kind, action.label, "\n".join(what))
        out.print(timeline)
        mesh = plan.pair_mesh
        if mesh is not None:
            out.print(
                f"pair mesh (one way, for the whole drill): {count(mesh.pairs, 'ordered pair')} at "
                f"{mesh.rate_pps} packets/s each, {mesh.total_pps} packets/s in all",
                markup=False,
            )
        for step in mesh.steps if mesh is not None else []:
            shown, more = step.listed()
            pairs = table(
                f"partition {step.label} at {step.at}: {count(len(step.pairs), 'ordered pair')}, {step.cut} to be cut",
                "pair", "intended",
            )  # fmt: skip
            for pair in shown:
                row(pairs, f"{pair.source}->{pair.target}", pair.expected + ("" if pair.probed else " (no address: unreachable)"))
            if more:
                row(pairs, f"... and {more} more", "")
            out.print(pairs)

        probes = table(count(len(plan.probes), "probe"), "probe", "type", "from", "to", "how")
        for probe in plan.probes:
            source = f"{probe.source} ({probe.source_address or 'no address'})"
            target = "-" if probe.to is None else f"{probe.to} ({probe.target_address or 'no address'})"
            row(probes, probe.name, probe.type, source, target, probe.detail)
        out.print(probes)

        objectives = table(count(len(plan.objectives), "objective"), "objective", "probe", "step", "bound")
        for o in plan.objectives:
            bounds = ", ".join(([f"template {o.template}"] if o.template else []) + o.bounds)
            row(objectives, o.name or "-", o.probe or "every probe", o.step or "every fault", bounds)
        out.print(objectives)

        if plan.refused:
            out.print("drill run would refuse this scenario as it stands:", style="yellow")
            for reason in plan.refused:
                out.print(f"  {reason}", markup=False)

    def spreads(self, spreads: Sequence[Any], path: Path, outcome: str, pairs: Sequence[Any] = ()) -> None:
        """`drill run --trials N`: min / median / max of every figure over the trials, then
        every partition pair's (drills.trials.PairSpread)."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1e3:.1f}"

        table = Table(
            title=f"{spreads[0].trials if spreads else 0} trials: min / median / max (ms)", title_justify="left"
        )
        for column in ("probe", "event", "figure", "min", "median", "max", "never recovered", "accuracy"):
            table.add_column(column)
        for s in spreads:
            never = str(s.never) if s.figure == "time_to_recover_s" else ""
            accuracy = f"± {s.accuracy_s * 1e3:.1f}"
            table.add_row(
                s.probe, s.event, s.figure.removesuffix("_s"), ms(s.min_s), ms(s.median_s), ms(s.max_s), never, accuracy
            )
        if spreads or not pairs:
            self.out.print(table)
        if pairs:
            self.out.print(self._pair_spreads_table(pairs))
        self.out.print(f"trials {outcome}; summary: {path}", markup=False)

    @staticmethod
    def _pair_spreads_table(pairs: Sequence[Any]) -> Table:
        """One row per partition pair: what each trial observed, in how many it was as intended
        (a pair right in some trials and wrong in others is MIXED), detect and recovery spreads."""
        steps = len({p.step for p in pairs})
        table = Table(title="partition pairs over the trials: min / median / max (ms)", title_justify="left")
        for column in ("", *(["step"] if steps > 1 else []), "pair", "intended", "observed", "matched", "detect", "recover"):
            table.add_column(column, no_wrap=column in ("step", "pair"))

        def spread(f: Any, never: str) -> str:
            if f.min_s is None:
                return never if f.missing else "-"
            text = f"{f.min_s * 1e3:.1f} / {f.median_s * 1e3:.1f} / {f.max_s * 1e3:.1f} ± {f.accuracy_s * 1e3:.1f}"
            return text + (f" ({never}: {f.missing})" if f.missing else "")

        for p in pairs:
            counts: dict[str, int] = {}
            for seen in p.observed:
                counts[seen or "absent"] = counts.get(seen or "absent", 0) + 1
            mark = "[green]PASS[/]" if p.consistent else ("[yellow]MIXED[/]" if p.matched else "[red]FAIL[/]")
            table.add_row(
                mark, *([p.step] if steps > 1 else []), f"{p.source}->{p.target}", p.expected, ", ".join(f"{k} ×{n}" for k, n in counts.items()),
                f"{p.matched}/{p.trials}", spread(p.time_to_detect_s, "none lost"), spread(p.time_to_recover_s, "never"),
            )  # fmt: skip
        return table

    def comparison(self, comparison: Any, run_a: Path, run_b: Path) -> None:
        """`drill compare`: every figure of A and B, regressions and improvements marked."""

        def ms(value: float | None) -> str:
            return "never" if value is None else f"{value * 1e3:.1f} ms"

        table = Table(title=f"{run_a} (A) against {run_b} (B)", title_justify="left")
        for column in ("probe", "event", "figure", "A", "B", "tolerance", ""):
            table.add_column(column)
        for d in comparison.differences:
            mark = "[red]REGRESSED[/]" if d.regressed else ("[green]improved[/]" if d.improved else "")
            table.add_row(
                d.probe,
                d.event,
                d.figure.removesuffix("_s"),
                ms(d.a_s),
                ms(d.b_s),
                f"± {d.tolerance_s * 1e3:.1f} ms",
                mark,
            )
        self.out.print(table)
        for label in comparison.only_in_a:
            self.out.print(f"only in A: {label}", markup=False)
        for label in comparison.only_in_b:
            self.out.print(f"only in B: {label}", markup=False)
        for flip in comparison.pair_regressions:
            self.out.print(f"REGRESSED partition pair {flip}", markup=False)
        verdict = "B regressed" if comparison.regressed else "no regression beyond the accuracy bounds"
        self.out.print(verdict, markup=False)

    def link_engines(self, path: Path, engines: Sequence[tuple[str, str]]) -> None:
        table = Table(title=f"link engines for {path} on this host", title_justify="left")
        table.add_column("link")
        table.add_column("engine")
        for name, engine in engines:
            table.add_row(name, engine)
        self.out.print(table)

    def checks(self, checks: Sequence[Any]) -> None:
        table = Table(title="what this host can do", title_justify="left")
        for column in ("", "capability", "found", "needed for", "to fix"):
            table.add_column(column)
        for check in checks:
            mark = "[green]yes[/]" if check.ok else "[red]no[/]"
            table.add_row(mark, check.name, check.detail, check.needed_for, check.fix)
        self.out.print(table)

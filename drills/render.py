"""Everything the CLI shows a person, in one place (rich). The library never prints.

Scenario text (names, notes, commands, messages, paths) is never markup: both consoles have
markup and emoji codes off, so `[/]` or `:bomb:` in a note prints as written, and every value
goes through `drills.textsafe.visible` so control characters show as escapes (`\\x1b`) rather
than acting on the terminal. Styles come only from `Text` spans built here (`_styled`).
"""

from __future__ import annotations

import os
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
from drills.textsafe import visible

if TYPE_CHECKING:
    from drills.engine.plan import Plan


def _styled(*parts: str | tuple[str, str]) -> Text:
    """One line from plain parts (escaped with `visible`) and (text, style) parts; never markup."""
    line = Text()
    for part in parts:
        text, style = (part, "") if isinstance(part, str) else part
        line.append(visible(text), style=style)
    return line


def _row(table: Table, *cells: str | Text) -> None:
    """A table row whose str cells are shown as text (escaped), never as markup."""
    table.add_row(*(cell if isinstance(cell, Text) else Text(visible(cell)) for cell in cells))


def _title(text: str) -> Text:
    return Text(visible(text, one_line=True))


PASS = _styled(("PASS", "green"))
FAIL = _styled(("FAIL", "red"))
LOG_WIDTH = 250  # columns when the output is no terminal and COLUMNS is unset (a CI log)


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        # A CI log is no terminal: rich would draw 80 columns and cut names (`dispatc…`) or wrap
        # a row over lines. Tables take only the width they need, so a wide page costs nothing.
        console.width = LOG_WIDTH
    return console


class Renderer:
    """Results on stdout, progress and errors on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.out = _console()
        self.err = _console(stderr=True)
        self.quiet = quiet

    def progress(self, message: str, at: str | None = None) -> None:
        """One plain progress line; `at` (HH:MM:SS) when it was logged earlier (the live view's).
        One line whatever the message holds: a newline in a note cannot forge a line of the log."""
        if not self.quiet:
            self.err.print(_styled((at or time.strftime("%H:%M:%S"), "dim"), " ", visible(message, one_line=True)))

    def live_view(self, enabled: bool) -> Any:
        """The live view of `drill run` on stdout when it is a terminal (and `enabled`, and not
        quiet); None otherwise: progress is then plain lines."""
        if not enabled or self.quiet or not self.out.is_terminal:
            return None
        from drills.live import LiveView

        return LiveView(self.out)

    def error(self, message: str) -> None:
        self.err.print(_styled(("error:", "bold red"), " ", message))

    def problems(self, problems: Sequence[Problem]) -> None:
        for problem in problems:
            self.err.print(visible(problem))
        count = len(problems)
        self.err.print(f"{count} problem{'s' if count != 1 else ''} found; nothing was changed", style="red")

    def lines(self, lines: Sequence[str]) -> None:
        """Plain lines of text (a placement, an inventory), each escaped."""
        for line in lines:
            self.out.print(visible(line))

    def valid(self, path: Path, summary: str) -> None:
        self.out.print(visible(f"{path}: ok ({summary})"))

    def up(self, result: UpResult) -> None:
        meta = result.meta
        table = Table(title=_title(f"run {meta.run_id}: {meta.scenario} is up"), title_justify="left")
        for column in ("node", "namespace", "loopback", "interfaces"):
            table.add_column(column)
        for node in result.topology.nodes:
            interfaces = ", ".join(f"{i.name} {i.ipv4}" + (f" {i.ipv6}" if i.ipv6 else "") for i in node.interfaces)
            _row(table, node.name, meta.nodes.get(node.name, "?"), str(node.loopback or "-"), interfaces)
        self.out.print(table)
        first = result.topology.nodes[0].name if result.topology.nodes else "NODE"
        self.out.print(visible(f"explore: drill exec {first} -- ip route     remove: drill down {meta.run_id}"))

    def runs(self, views: Sequence[RunView]) -> None:
        if not views:
            self.out.print("no runs")
            return
        table = Table()
        for column in ("run", "scenario", "status", "backend", "nodes", "hosts", "owner", "created"):
            table.add_column(column)
        for view in views:
            meta = view.meta
            owner = f"pid {meta.owner_pid}" if view.owner_alive else "-"
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(meta.created_s))
            hosts = ", ".join(sorted(set(meta.hosts.values()))) or "this host"
            _row(table, meta.run_id, meta.scenario, meta.status, meta.backend, str(len(meta.nodes)), hosts, owner, created)
        self.out.print(table)

    def teardown(self, run_id: str, report: TeardownReport) -> None:
        self.out.print(visible(f"run {run_id}: removed {len(report.removed)} objects"))
        for item in report.refused:
            self.err.print(visible(f"  refused: {item}"))

    def cleaned(self, report: CleanReport) -> None:
        if not report.cleaned and not report.skipped:
            self.out.print("nothing to clean")
        for run_id, teardown in report.cleaned.items():
            state = "clean" if teardown.clean else "INCOMPLETE"
            self.out.print(visible(f"run {run_id}: removed {len(teardown.removed)} objects ({state})"))
            for item in teardown.left:
                self.err.print(visible(f"  left: {item}"))
            for item in teardown.refused:
                self.err.print(visible(f"  refused: {item}"))
        for run_id, why in report.skipped.items():
            self.out.print(visible(f"run {run_id}: left alone ({why})"))

    def drill(self, result: Any, results_path: Path) -> None:
        """The recovery table of a finished drill, its verdicts and its outcome."""
        table = Table(
            title=_title(f"{result.scenario} (run {result.run_id}, seed {result.seed}): recovery"), title_justify="left"
        )
        for column in ("probe", "event", "sent", "lost", "outage", "longest loss", "detect", "recover"):
            table.add_column(column, justify="right" if column not in ("probe", "event") else "left")

        def ms(value: float | None, accuracy: float) -> str:
            return "never" if value is None else f"{value * 1e3:.1f} ± {accuracy * 1e3:.1f} ms"

        for m in result.metrics:
            _row(
                table, m.probe, f"{m.event} ({m.kind})", str(m.sent), str(m.lost), ms(m.outage_s, m.accuracy_s),
                ms(m.max_loss_period_s, m.accuracy_s), "-" if m.time_to_detect_s is None else ms(m.time_to_detect_s, m.accuracy_s),
                ms(m.time_to_recover_s, m.accuracy_s),
            )  # fmt: skip
        self.out.print(table)
        for name, base in result.baselines.items():
            state = ("clean", "") if base.clean else ("NOT clean: results are inconclusive", "red")
            tolerated = f" (tolerated {base.tolerated_loss_pct:g} %)" if getattr(base, "tolerated_loss_pct", 0) else ""
            self.out.print(_styled(f"baseline {name}: {base.sent} sent, {base.lost} lost{tolerated}: ", state))
        if result.pairs:
            self.out.print(self._pairs_table(result.pairs))
        for verdict in result.verdicts:
            line = f" {verdict.objective} [{verdict.probe} / {verdict.event}]: {verdict.measured} (bound {verdict.bound})"
            self.out.print(Text.assemble(PASS if verdict.passed else FAIL, visible(line)))
        for known in result.known:
            self.out.print(self._known_line(known))
        outcome = "inconclusive" if result.inconclusive else ("passed" if result.passed else "FAILED")
        self.out.print(visible(f"drill {outcome}; results: {results_path}"))

    @staticmethod
    def _known_line(known: Any) -> Text:
        """A known answer's verdict (drills.known.KnownVerdict): measured ± accuracy against its window."""
        from drills.known import expected_text, measured_text

        mark = {True: PASS, False: FAIL}.get(known.passed, _styled(("INCONCLUSIVE", "yellow")))
        line = (
            f" known {known.name} [{known.probe} / {known.event}]: {known.figure} "
            f"{measured_text(known.measured_s, known.accuracy_s)}, expected "
            f"{expected_text(known.value_s, known.low_s, known.high_s, known.tolerance_s)} ({known.source}): {known.reason}"
        )
        return Text.assemble(mark, visible(line, one_line=True))

    @staticmethod
    def _pairs_table(pairs: Sequence[Any]) -> Table:
        """Per (source, target) pair across each partition: intended against observed."""
        steps = sorted({p.step for p in pairs})
        table = Table(
            title=_title(f"partition {', '.join(steps)}: per pair (one way, {pairs[0].rate_pps} packets/s each)"),
            title_justify="left",
        )
        columns = ["", *(["step"] if len(steps) > 1 else []), "pair", "intended", "observed", "delivered", "detect"]
        for column in [*columns, "first after lift", "recovered"]:
            table.add_column(column, no_wrap=column in ("pair", "step"))

        def ms(value: float | None, accuracy: float) -> str:
            return "-" if value is None else f"{value * 1e3:.1f} ± {accuracy * 1e3:.1f} ms"

        marks = {True: PASS, False: FAIL, None: _styled(("ERROR", "red"))}
        for p in pairs:
            _row(
                table, marks[p.matches], *([p.step] if len(steps) > 1 else []), f"{p.source}->{p.target}", p.expected,
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
            t = Table(title=_title(title), title_justify="left")
            for n, column in enumerate(columns):
                t.add_column(column, overflow="fold", no_wrap=n < 2)
            return t

        out = self.out
        out.print(visible(f"plan of {plan.scenario} ({plan.file}): a dry run, nothing was changed"))
        if plan.description:
            out.print(visible(plan.description))
        duration = f"{plan.duration_s:g} s" + ("" if plan.duration_given else " (last step + 10 s)")
        out.print(
            visible(
                f"seed {plan.seed_text}; duration {duration}; each node is namespace {plan.namespace_pattern}, "
                "RUN being the run id chosen when the run starts"
            )
        )

        def count(n: int, noun: str) -> str:
            return f"{n} {noun}{'' if n == 1 else 's'}"

        nodes = table(f"testbed: {count(len(plan.nodes), 'node')}", "node", "namespace", "interface", "address", "link")
        for node in plan.nodes:
            first = [node.name, node.namespace]
            if node.loopback:
                _row(nodes, *first, "lo", node.loopback, "-")
                first = ["", ""]
            for i in node.interfaces:
                address = " ".join(a for a in (i.ipv4, i.ipv6) if a) or "-"
                mtu = f" (mtu {i.mtu})" if i.mtu else ""
                _row(nodes, *first, i.name, address + mtu, f"{i.link} to {i.peer}")
                first = ["", ""]
            if first[0]:  # no loopback and no link
                _row(nodes, *first, "-", "-", "-")
        out.print(nodes)
        routes = table("routes", "node", "route")
        for node in plan.nodes:
            for n, route in enumerate(node.routes):
                _row(routes, node.name if n == 0 else "", route)
        if routes.row_count:
            out.print(routes)
        out.print(visible(f"sysctls in every namespace: {', '.join(plan.node_sysctls)}"))
        for node in plan.nodes:
            if node.sysctls:
                out.print(visible(f"sysctls in {node.name}: {', '.join(node.sysctls)}"))
        services = table("services (started at deploy)", "node", "service", "command", "ready when")
        for node in plan.nodes:
            for service in node.services:
                env = "".join(f"{key}={value} " for key, value in service.env.items())
                _row(services, node.name, service.name, env + service.command, service.ready or "-")
        if services.row_count:
            out.print(services)

        links = table(count(len(plan.links), "link"), "link", "a", "b", "subnets", "profile", "delay", "engine")
        for link in plan.links:
            profile = link.profile or "-"
            _row(links, link.name, link.a, link.b, ", ".join(link.subnets), profile, link.delay or "-", link.engine or "-")
        out.print(links)
        if plan.segments:
            segments = table(count(len(plan.segments), "segment"), "segment", "members", "subnets", "bridge namespace")
            for segment in plan.segments:
                _row(segments, segment.name, ", ".join(segment.members), ", ".join(segment.subnets), segment.namespace)
            out.print(segments)

        timeline = table(
            f"timeline: {count(len(plan.actions), 'action')}", "at", "action", "step", "what it does, and touches"
        )
        for action in plan.actions:
            at = action.at + (f" + up to {action.jitter_s:g} s" if action.jitter_s else "")
            kind = f"{action.kind} (teardown)" if action.at_teardown else action.kind
            what = [action.describe] + ([f"({action.cue})"] if action.cue else []) + [
                f"- {touch.namespace}: {touch.what}" if touch.namespace else f"- {touch.what}"
                for touch in action.touches
            ]
            _row(timeline, at, kind, action.label, "\n".join(what))
        out.print(timeline)
        mesh = plan.pair_mesh
        if mesh is not None:
            out.print(
                visible(
                    f"pair mesh (one way, for the whole drill): {count(mesh.pairs, 'ordered pair')} at "
                    f"{mesh.rate_pps} packets/s each, {mesh.total_pps} packets/s in all"
                )
            )
        for step in mesh.steps if mesh is not None else []:
            shown, more = step.listed()
            pairs = table(
                f"partition {step.label} at {step.at}: {count(len(step.pairs), 'ordered pair')}, {step.cut} to be cut",
                "pair", "intended",
            )  # fmt: skip
            for pair in shown:
                _row(pairs, f"{pair.source}->{pair.target}", pair.expected + ("" if pair.probed else " (no address: unreachable)"))
            if more:
                _row(pairs, f"... and {more} more", "")
            out.print(pairs)

        probes = table(count(len(plan.probes), "probe"), "probe", "type", "from", "to", "how")
        for probe in plan.probes:
            source = f"{probe.source} ({probe.source_address or 'no address'})"
            target = "-" if probe.to is None else f"{probe.to} ({probe.target_address or 'no address'})"
            _row(probes, probe.name, probe.type, source, target, probe.detail)
        out.print(probes)

        objectives = table(count(len(plan.objectives), "objective"), "objective", "probe", "step", "bound")
        for o in plan.objectives:
            bounds = ", ".join(([f"template {o.template}"] if o.template else []) + o.bounds)
            _row(objectives, o.name or "-", o.probe or "every probe", o.step or "every fault", bounds)
        out.print(objectives)
        if plan.known:
            known = table(count(len(plan.known), "known answer"), "known answer", "probe", "event", "figure", "expected", "source")
            for k in plan.known:
                _row(known, k.name, k.probe, f"{k.step} ({k.event})", k.figure, k.expected, k.source)
            out.print(known)

        if plan.refused:
            out.print("drill run would refuse this scenario as it stands:", style="yellow")
            for reason in plan.refused:
                out.print(visible(f"  {reason}"))

    def spreads(
        self, spreads: Sequence[Any], path: Path, outcome: str, pairs: Sequence[Any] = (), known: Sequence[Any] = ()
    ) -> None:
        """`drill run --trials N`: min / median / max of every figure over the trials, then
        every partition pair's (drills.trials.PairSpread), then the validation table of the
        known answers (drills.trials.ValidationRow)."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1e3:.1f}"

        table = Table(
            title=_title(f"{spreads[0].trials if spreads else 0} trials: min / median / max (ms)"), title_justify="left"
        )
        for column in ("probe", "event", "figure", "min", "median", "max", "never recovered", "accuracy"):
            table.add_column(column)
        for s in spreads:
            never = str(s.never) if s.figure == "time_to_recover_s" else ""
            accuracy = f"± {s.accuracy_s * 1e3:.1f}"
            _row(
                table, s.probe, s.event, s.figure.removesuffix("_s"), ms(s.min_s), ms(s.median_s), ms(s.max_s), never, accuracy
            )
        if spreads or not pairs:
            self.out.print(table)
        if pairs:
            self.out.print(self._pair_spreads_table(pairs))
        if known:
            self.out.print(self._validation_table(known))
        self.out.print(visible(f"trials {outcome}; summary: {path}"))

    @staticmethod
    def _validation_table(rows: Sequence[Any]) -> Table:
        """The known answers over the trials: expected, measured min / median / max ± the largest
        accuracy, and the verdict (PASS only when every trial passed)."""
        from drills.known import expected_text

        table = Table(title="validation: known answers over the trials", title_justify="left")
        for column in ("", "mechanism", "figure", "expected", "source", "measured min / median / max", "passed"):
            table.add_column(column, no_wrap=column == "mechanism")
        marks = {"PASS": PASS, "FAIL": FAIL}
        for row in rows:
            m = row.measured
            measured = (
                "never recovered" if m.missing else "not measured"
            ) if m.min_s is None else f"{m.min_s * 1e3:.1f} / {m.median_s * 1e3:.1f} / {m.max_s * 1e3:.1f} ± {m.accuracy_s * 1e3:.1f} ms"
            _row(
                table, marks.get(row.verdict, _styled(("INCONCLUSIVE", "yellow"))), row.name, row.figure,
                expected_text(row.value_s, row.low_s, row.high_s, row.tolerance_s), row.source, measured,
                f"{row.passed} of {row.trials}",
            )  # fmt: skip
        return table

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
            mark = PASS if p.consistent else (_styled(("MIXED", "yellow")) if p.matched else FAIL)
            _row(
                table, mark, *([p.step] if steps > 1 else []), f"{p.source}->{p.target}", p.expected, ", ".join(f"{k} ×{n}" for k, n in counts.items()),
                f"{p.matched}/{p.trials}", spread(p.time_to_detect_s, "none lost"), spread(p.time_to_recover_s, "never"),
            )  # fmt: skip
        return table

    def comparison(self, comparison: Any, run_a: Path, run_b: Path) -> None:
        """`drill compare`: every figure of A and B, regressions and improvements marked."""

        def ms(value: float | None) -> str:
            return "never" if value is None else f"{value * 1e3:.1f} ms"

        table = Table(title=_title(f"{run_a} (A) against {run_b} (B)"), title_justify="left")
        for column in ("probe", "event", "figure", "A", "B", "tolerance", ""):
            table.add_column(column)
        for d in comparison.differences:
            mark = _styled(("REGRESSED", "red")) if d.regressed else _styled(("improved", "green") if d.improved else "")
            _row(
                table,
                d.probe,
                d.event,
                d.figure.removesuffix("_s"),
                ms(d.a_s),
                ms(d.b_s),
                f"± {d.tolerance_s * 1e3:.1f} ms",
                mark,
            )
        self.out.print(table)
        if comparison.shares:
            shares = Table(title=_title("availability and loss (A against B)"), title_justify="left")
            for column in ("probe", "scope", "figure", "A", "B", "tolerance", ""):
                shares.add_column(column)
            for d in comparison.shares:
                mark = _styled(("REGRESSED", "red")) if d.regressed else _styled(("improved", "green") if d.improved else "")
                _row(shares, d.probe, d.scope, d.figure, f"{d.a_pct:.3f} %", f"{d.b_pct:.3f} %", f"± {d.tolerance_pct:.3f} %", mark)
            self.out.print(shares)
        for label in comparison.only_in_a:
            self.out.print(visible(f"only in A: {label}"))
        for label in comparison.only_in_b:
            self.out.print(visible(f"only in B: {label}"))
        for flip in comparison.pair_regressions:
            self.out.print(visible(f"REGRESSED partition pair {flip}"))
        verdict = "B regressed" if comparison.regressed else "no regression beyond the accuracy bounds"
        self.out.print(visible(verdict))

    def link_engines(self, path: Path, engines: Sequence[tuple[str, str]]) -> None:
        table = Table(title=_title(f"link engines for {path} on this host"), title_justify="left")
        table.add_column("link")
        table.add_column("engine")
        for name, engine in engines:
            _row(table, name, engine)
        self.out.print(table)

    def checks(self, checks: Sequence[Any]) -> None:
        table = Table(title="what this host can do", title_justify="left")
        for column in ("", "capability", "found", "needed for", "to fix"):
            table.add_column(column)
        for check in checks:
            mark = _styled(("yes", "green") if check.ok else ("no", "red"))
            _row(table, mark, check.name, check.detail, check.needed_for, check.fix)
        self.out.print(table)

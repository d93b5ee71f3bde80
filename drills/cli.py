"""The `drill` command: options in, one library call, rendered result out."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drills import __version__, outdir
from drills.errors import BadInput, DrillError, ExitCode, ScenarioError
from drills.runs import STATE_DIR_ENV, state_dir_from_env
from drills.textsafe import visible

EXIT_INTERNAL = 70  # a bug in drills (EX_SOFTWARE); the message asks for a report


def _global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default,
        help=f"where run journals live (default: ${STATE_DIR_ENV} or /var/lib/drills)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress messages")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drill",
        description="Resilience drills for network testbeds: inject faults on a timeline, measure recovery.",
    )
    parser.add_argument("--version", action="version", version=f"drills {__version__}")
    _global_options(parser, None)
    # The same options after the command (`drill ls --state-dir D`); SUPPRESS as their default
    # so that a subcommand never undoes a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[common])

    def inventory(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--inventory",
            type=Path,
            default=None,
            metavar="FILE",
            help="Ansible inventory (INI or YAML) of the hosts to spread the testbed over; wins over the scenario's "
            "hosts.inventory",
        )

    # "No side effects": kernel features are tried in an anonymous namespace of a throwaway thread
    # (drills.netns.probe_caps), nothing named or mounted, gone when the command returns.
    no_side_effects = "creates nothing on the host (kernel features are tried in a throwaway anonymous namespace)"
    p = add("validate", f"check scenario files; {no_side_effects}")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    inventory(p)
    add("schema", "print the JSON Schema of the scenario format")
    p = add("plan", f"show what a drill would do (testbed, timeline, probes, objectives); no root; {no_side_effects}")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the plan as JSON (for CI diffs)")
    inventory(p)
    p = add("run", "run a drill: deploy, probe, apply the timeline, measure recovery, tear down")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--out", type=Path, default=None, help="results directory (default: runs/SCENARIO-RUNID)")
    p.add_argument("--trials", type=int, default=1, metavar="N", help="run the drill N times; report min/median/max")
    p.add_argument("--baseline", type=Path, default=None, metavar="DIR", help="compare with the last good run of this scenario kept in DIR; exit 1 on a regression")
    p.add_argument("--save-baseline", type=Path, default=None, metavar="DIR", help="keep this run in DIR as the scenario's baseline if it passed (and did not regress)")
    p.add_argument(
        "--no-live", action="store_true", help="plain progress lines even on a terminal (no live view)"
    )
    p.add_argument("--control", action="store_true", help="serve the exercise control page and socket (hold, fire, skip, release, stop)")
    p.add_argument("--control-port", type=int, default=None, metavar="N", help="the control page's port (default: one the OS picks)")
    p.add_argument("--control-bind", default=None, metavar="ADDR", help="the control page's address (default 127.0.0.1); anyone who reaches it with the token controls the exercise")
    inventory(p)
    p = add("control", "control a running exercise (`drill run --control`) from the terminal")
    p.add_argument("run", metavar="RUN", help="run id, as `drill ls` shows it")
    p.add_argument("action", metavar="ACTION", help="hold | resume | fire ID | skip ID | release ID | observe TEXT | stop REASON | state")
    p.add_argument("argument", nargs="?", metavar="ARG", help="the inject id, the observation's text or the stop's reason")
    p.add_argument("--objective", default=None, metavar="O", help="observe: the objective or capability target it is about")
    p = add("report", "render junit.xml, report.md and report.html again from a results directory")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p = add("aar", "write the after-action report of an exercise run: aar.html, aar.md, improvement-plan.csv (and a ratings.yaml to fill in)")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a results directory (`drill run --out`)")
    p.add_argument("-o", "--out", type=Path, default=None, metavar="DIR", help="where to write the report (default: RUN_DIR); its ratings.yaml wins over RUN_DIR's")
    p = add("compare", "compare the recovery figures of two runs; exit 1 when B regressed beyond the accuracy bounds")
    p.add_argument(
        "run_a", type=Path, metavar="RUN_A", help="the reference run's results directory (the last good run)"
    )
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="the run to check")
    p.add_argument("--html", type=Path, default=None, metavar="FILE", help="also write the comparison as a self-contained page (compare.html)")
    p = add("up", "bring a scenario's testbed up and leave it up")
    p.add_argument("file", type=Path, metavar="FILE")
    inventory(p)
    p = add("down", "tear a testbed down")
    p.add_argument("run", nargs="?", metavar="RUN", help="run id (default: the only run)")
    p = add("exec", "run a command in a node: drill exec NODE -- CMD [ARGS...]")
    p.add_argument("--run", metavar="RUN", help="run id, when several runs have this node")
    p.add_argument("node", metavar="NODE")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")
    add("ls", "list runs and testbeds")
    p = add("doctor", "what this host can do, and what to install")
    p.add_argument(
        "file", nargs="?", type=Path, metavar="FILE", help="also say which engine would serve each link of this scenario here"
    )
    inventory(p)
    p = add("import", "write a drills topology file from a containerlab lab, or a Topology Zoo graph (`zoo FILE`)")
    p.add_argument("source", nargs="+", metavar="[zoo] FILE", help="LAB.clab.yml, or zoo FILE.graphml / FILE.gml")
    p.add_argument("-o", "--out", type=Path, required=True, help="topology file to write (include it with `topology: FILE`)")
    p.add_argument("--image", action="append", default=[], metavar="LAB_IMAGE=LOCAL", help="map a lab image to a local one")
    p.add_argument("--attach", action="store_true", help="use the lab's running containers (containerlab deployed them)")
    p.add_argument("--topology-data", type=Path, metavar="JSON", help="with --attach: containerlab's topology-data.json names the containers (default: their labels)")
    p.add_argument("--route-factor", type=float, metavar="F", help="zoo: fibre route length ÷ great-circle distance (default 1.5)")
    p.add_argument("--default-delay", metavar="DELAY", help="zoo: delay of links to nodes without coordinates (default: the median)")
    p.add_argument("--no-rate", action="store_true", help="zoo: write no link rates (capacities)")
    p.add_argument("--internal-only", action="store_true", help="zoo: leave out external nodes (Internal 0: peers, exchanges)")
    p = add("msel", "the timeline as a Master Scenario Events List (CSV for spreadsheets), and back")
    msel = p.add_subparsers(dest="msel_action", required=True, metavar="ACTION")
    q = msel.add_parser("export", help="write a scenario's timeline as an MSEL CSV, one row per step")
    q.add_argument("file", type=Path, metavar="SCENARIO")
    q.add_argument("-o", "--out", type=Path, required=True, metavar="MSEL.csv")
    q = msel.add_parser("import", help="write a scenario's timeline from an MSEL CSV (the rest from --into)")
    q.add_argument("csv", type=Path, metavar="MSEL.csv")
    q.add_argument("-o", "--out", type=Path, required=True, metavar="SCENARIO", help="scenario file to write")
    q.add_argument("--into", type=Path, default=None, metavar="BASE.yaml", help="the scenario whose topology, probes, expect and exercise are kept (default: SCENARIO itself)")
    p = add("image", "build node images offline, with no registry (testbed/images/NAME.yaml)")
    p.add_argument("action", choices=["build"])
    p.add_argument("names", nargs="*", metavar="NAME", help="image definitions (default: drills-node)")
    p.add_argument("--force", action="store_true", help="build even when an image of this definition exists")
    add("agent", "serve a controller over stdin/stdout (`drill run` starts it on each host over SSH)")
    p = add("hosts", "prepare the hosts of an inventory (install drills with Ansible), or clean them")
    p.add_argument("action", choices=["prepare", "clean"])
    p.add_argument("--inventory", type=Path, required=True, metavar="FILE", help="Ansible inventory (INI or YAML)")
    p.add_argument("--limit", action="append", default=[], metavar="HOST", help="only these hosts (repeatable)")
    p.add_argument("--all", action="store_true", help="clean: also tear down testbeds left up by `drill up`")
    p = add("clean", "remove every leftover of crashed runs, from their journals")
    p.add_argument("--all", action="store_true", help="also tear down testbeds left up by `drill up`")
    return parser


def _run(args: argparse.Namespace) -> int:
    # Imported here so `drill --help` and `drill validate` stay fast and need no root.
    from drills import lifecycle
    from drills.render import Renderer

    ui = Renderer(quiet=bool(args.quiet))
    state_dir = state_dir_from_env(args.state_dir)
    command = args.command

    if command == "validate":
        from drills import backends
        from drills.engine.drill import requirements
        from drills.hosts import describe, placement
        from drills.scenario.loader import load_scenario

        failed = False
        for path in args.files:
            try:
                scenario = load_scenario(path)
                placed = placement.for_scenario(scenario, args.inventory)
            except ScenarioError as exc:
                ui.problems(exc.problems)
                failed = True
                continue
            runnable = requirements(scenario, backends.for_topology(scenario.topology, ui.progress).capabilities)
            if runnable:
                # The file is valid; `drill run` could not run all of it here. Say so now.
                ui.problems(runnable)
                failed = True
                continue
            topo = scenario.topology
            spread = f"; {describe.validate_text(placed[1])}" if placed is not None else ""
            ui.valid(
                path,
                f"{len(topo.nodes)} nodes, {len(topo.links)} links, "
                + (f"{len(topo.segments)} segments, " if topo.segments else "")
                + f"{len(scenario.steps)} steps, "
                f"{scenario.duration_s:g} s{spread}",
            )
            if placed is not None:
                ui.lines(describe.plan_lines(*placed))
        return ExitCode.BAD_INPUT if failed else ExitCode.OK

    if command == "schema":
        from drills.scenario.schema import scenario_json_schema

        print(json.dumps(scenario_json_schema(), indent=2))
        return ExitCode.OK

    if command == "plan":
        from drills import backends
        from drills.engine.plan import RUN_PLACEHOLDER, build_plan
        from drills.hosts import describe, placement
        from drills.scenario.loader import load_scenario

        scenario = load_scenario(args.file)  # bad input: ScenarioError, exit 2 (see main)
        placed = placement.for_scenario(scenario, args.inventory)  # reads the inventory, places the nodes
        plan = build_plan(scenario, backends.layout(scenario.topology, RUN_PLACEHOLDER))
        if args.json:
            data = plan.to_json()
            if placed is not None:  # a drill across hosts: where each node goes, the tunnels
                data["hosts"] = describe.plan_json(*placed)
            print(json.dumps(data, indent=2))
        else:
            ui.plan(plan)
            if placed is not None:
                ui.lines(describe.plan_lines(*placed))
        return ExitCode.OK

    if command == "run":
        if args.trials < 1:
            raise BadInput("--trials needs a positive number")
        live = not args.no_live
        from drills.control.session import controlled  # Starlette and uvicorn load only with --control

        session = controlled(args.control, args.trials, args.control_port, args.control_bind, ui.progress)
        if args.trials > 1:
            if args.baseline or args.save_baseline:
                raise BadInput("--baseline and --save-baseline compare and keep one run; drop --trials")
            return _run_trials(args, state_dir, ui, live)
        with session as control:
            code, outcome, out_dir = _run_once(args.file, state_dir, args.out, ui, live, args.inventory, control)
        if args.baseline is None and args.save_baseline is None:
            return code
        return _against_baseline(args, code, outcome, out_dir, ui)

    if command == "control":
        from drills.control.session import terminal

        code, text = terminal(state_dir, args.run, args.action, args.argument, args.objective)
        print(text)
        return code

    if command == "report":
        from drills import results
        from drills.reports import write_all

        written = write_all(*results.read(args.run_dir), args.run_dir)
        ui.out.print(visible("\n".join(str(p) for p in written)))
        return ExitCode.OK

    if command == "aar":
        from drills.reports import write_aar

        ui.out.print(visible("\n".join(str(p) for p in write_aar(args.run_dir, args.out))))
        return ExitCode.OK

    if command == "compare":
        from drills import results
        from drills.reports.compare import compare

        comparison = compare(results.read(args.run_a)[0], results.read(args.run_b)[0])
        if args.html is not None:  # written even when there is nothing to compare: the page says so
            from drills.reports import write_compare_html

            write_compare_html(comparison, args.run_a, args.run_b, args.html)
        if (why := comparison.nothing_in_common()) is not None:
            raise BadInput(f"drill compare {args.run_a} {args.run_b}: {why}")
        ui.comparison(comparison, args.run_a, args.run_b)
        return ExitCode.OBJECTIVES_MISSED if comparison.regressed else ExitCode.OK

    if command == "up":
        result = lifecycle.up(args.file, state_dir, log=ui.progress, inventory=args.inventory)
        ui.up(result)
        return ExitCode.OK

    if command == "down":
        run_id, report = lifecycle.down(state_dir, args.run, log=ui.progress)
        ui.teardown(run_id, report)
        return ExitCode.OK

    if command == "exec":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        lifecycle.exec_in_node(state_dir, args.node, cmd, args.run)
        return ExitCode.OK  # not reached: exec replaces this process

    if command == "ls":
        ui.runs(lifecycle.list_runs(state_dir))
        return ExitCode.OK

    if command == "hosts":
        from drills.hosts import provision
        from drills.hosts.inventory import load_inventory

        load_inventory(args.inventory)  # refused first what Ansible would execute (a script, a plugin)
        if args.action == "prepare":
            provision.prepare(args.inventory, args.limit, ui.progress, state_dir=state_dir)
        else:
            removed = provision.clean(args.inventory, args.limit, ui.progress, all_runs=args.all)
            ui.lines([f"  {host}: {what or 'nothing left'}" for host, what in removed.items()])
        return ExitCode.OK

    if command == "doctor":
        from drills import doctor

        checks = doctor.run_checks()
        ui.checks(checks)
        if args.inventory is not None:
            from drills import spread as across
            from drills.hosts import describe
            from drills.hosts.inventory import load_inventory

            ui.lines(describe.inventory_lines(load_inventory(args.inventory)))
            lines, fit = across.host_lines(across.check_hosts(args.inventory, ui.progress))
            ui.lines(["every host, through its agent over SSH:", *lines])
            if not fit:
                return ExitCode.ENVIRONMENT
        if args.file is not None:
            from drills.scenario import load_scenario
            from drills.userspace import select

            links = load_scenario(args.file).topology.links
            chosen = select.engines(links, lambda: {c.name: c.ok for c in checks})
            ui.link_engines(args.file, [(link.name, select.reason(link, chosen[link.name])) for link in links])
        # The embedded testbed needs these three; everything else widens what drills can do.
        essential = {doctor.ROOT, doctor.NAMESPACES, doctor.VETH}
        return ExitCode.OK if all(c.ok for c in checks if c.name in essential) else ExitCode.ENVIRONMENT

    if command == "import":
        from drills.containerlab import import_lab, parse_image_map, running_lab_containers, topology_data_containers
        from drills.zoo.importer import import_zoo, zoo_request

        source, zoo = zoo_request(args.source, vars(args))
        if zoo is not None:
            imported = import_zoo(source, args.out, zoo)
            for line in imported.summary():
                ui.progress(line)
            ui.progress(f"wrote {args.out}: include it with `topology: {args.out.name}`")
            return ExitCode.OK
        lookup = topology_data_containers(args.topology_data) if args.topology_data else running_lab_containers
        topology = import_lab(source, args.out, parse_image_map(args.image), attach=args.attach, containers=lookup)
        ui.progress(f"wrote {args.out}: {len(topology['nodes'])} nodes, {len(topology['links'])} links")
        return ExitCode.OK

    if command == "msel":
        from drills.msel import export, import_

        if args.msel_action == "export":
            rows = export.write_msel(args.file, args.out)
            ui.progress(f"wrote {args.out}: {rows} injects")
        else:
            rows = import_.import_msel(args.csv, args.out, args.into)
            ui.progress(f"wrote {args.out}: a timeline of {rows} steps from {args.csv}")
        return ExitCode.OK

    if command == "image":
        from drills.docker import images
        from drills.docker.api import Docker

        docker = Docker.connect()
        for name in args.names or [images.DEFAULT_IMAGE]:
            definition = images.load_definition(images.definition_path(name))
            images.build(definition, docker, ui.progress, force=args.force)
        return ExitCode.OK

    if command == "clean":
        cleaned = lifecycle.clean(state_dir, include_up=args.all, log=ui.progress)
        ui.cleaned(cleaned)
        return ExitCode.OK if cleaned.clean else ExitCode.CLEANUP_INCOMPLETE

    raise AssertionError(command)


def _run_once(
    file: Path, state_dir: Path, out: Path | None, ui: Any, live: bool = False, inventory: Path | None = None,
    control: Any = None,
) -> tuple[int, str, Path]:
    """One drill: results, reports, the recovery table; returns (exit code, outcome, results dir).
    With `live` and a terminal on stdout, a live view while it runs; else plain progress lines."""
    from drills import lifecycle, results
    from drills.reports import write_all

    outdir.check_dir(out or Path("runs"))  # refused before the drill, not after it
    view = ui.live_view(live)
    if view is None:
        drill = lifecycle.run(file, state_dir, log=ui.progress, inventory=inventory, control=control)
    else:
        try:
            with view:
                drill = lifecycle.run(file, state_dir, log=view.log, progress=view.event, inventory=inventory, control=control)
        finally:
            for at, message in view.lines:  # the same record as plain mode, in the scrollback
                ui.progress(message, at=at)
    out_dir = out or Path("runs") / f"{drill.scenario}-{drill.run_id}"
    path = results.write(drill, out_dir, file)
    written = write_all(*results.read(out_dir), out_dir)
    ui.drill(drill, path)
    ui.progress(f"reports: {', '.join(str(p) for p in written)}")
    outcome = results.outcome(drill)
    return _exit_for(outcome), outcome, out_dir


def _against_baseline(args: argparse.Namespace, code: int, outcome: str, out_dir: Path, ui: Any) -> int:
    """`--baseline DIR` / `--save-baseline DIR` after one run: compare, then keep it if good."""
    from drills import results
    from drills.reports import baseline, write_compare_html

    scenario = results.read(out_dir)[0]["scenario"]["name"]
    regressed = False
    if args.baseline is not None:
        comparison = baseline.check(args.baseline, scenario, out_dir)
        if comparison is None and args.save_baseline is None:
            raise BadInput(f"no baseline of scenario {scenario} in {args.baseline}: nothing to compare; keep one first with --save-baseline {args.baseline}")
        if comparison is None:
            ui.progress(f"no baseline of {scenario} in {args.baseline} yet: nothing compared")
        else:
            ui.comparison(comparison, args.baseline / scenario, out_dir)
            write_compare_html(comparison, args.baseline / scenario, out_dir, out_dir / "compare.html")
            regressed = comparison.regressed
    if args.save_baseline is not None:
        if outcome == "passed" and not regressed:
            ui.progress(f"baseline kept: {baseline.save(args.save_baseline, scenario, out_dir)}")
        else:
            ui.progress(f"not kept as the baseline: the run {'regressed' if regressed else outcome}")
    if code == ExitCode.OK and regressed:
        return ExitCode.OBJECTIVES_MISSED
    return code


def _exit_for(outcome: str) -> int:
    if outcome == "inconclusive":
        return ExitCode.INCONCLUSIVE
    return ExitCode.OK if outcome == "passed" else ExitCode.OBJECTIVES_MISSED


def _run_trials(args: argparse.Namespace, state_dir: Path, ui: Any, live: bool = False) -> int:
    """`--trials N`: N complete runs, each in `OUT/trial-K`, then the spread of every figure and
    the validation table of the known answers (trials.json, trials.md). A trial that failed a
    known answer fails the set (exit 1), as a missed objective does."""
    from drills import results, trials
    from drills.reports import write_trials_html
    from drills.reports.validation import render_trials_markdown

    base = args.out or Path("runs") / f"{args.file.stem}-trials-{time.strftime('%Y%m%d-%H%M%S')}"
    outcomes, runs = [], []
    for k in range(1, args.trials + 1):
        ui.progress(f"trial {k} of {args.trials}")
        _code, outcome, out_dir = _run_once(args.file, state_dir, base / f"trial-{k}", ui, live, args.inventory)
        outcomes.append(outcome)
        runs.append(results.read(out_dir)[0])
    spreads = trials.aggregate(runs)
    overall = trials.overall_outcome(outcomes)
    pair_spreads = trials.aggregate_pairs(runs)
    summary = {"trials": args.trials, "outcomes": outcomes, "outcome": overall, "spreads": [asdict(s) for s in spreads]}
    summary["pair_spreads"] = trials.pair_spreads_json(pair_spreads)
    rows = trials.validation(runs)  # the known answers (`expect_known:`) over the trials
    summary["validation"] = trials.validation_json(rows)
    outdir.write_file(base / "trials.json", json.dumps(summary, indent=2).encode())
    title = str(runs[0]["scenario"]["name"]) if runs else args.file.stem
    outdir.write_file(base / "trials.md", render_trials_markdown(summary, title).encode())
    write_trials_html(summary, title, base)
    ui.spreads(spreads, base / "trials.json", overall, pair_spreads, rows)
    if rows:
        ui.progress(f"validation table (Markdown): {base / 'trials.md'}")
    return _exit_for(overall)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "agent":  # before anything could print: its stdout is the channel
        from drills.remote.agent import serve

        return serve(args.state_dir)
    try:
        return int(_run(args))
    except ScenarioError as exc:
        from drills.render import Renderer

        Renderer().problems(exc.problems)
        return int(exc.exit_code)
    except DrillError as exc:
        # Messages quote values from files (names, paths): escaped, never raw control characters.
        print(visible(f"drill: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("drill: interrupted", file=sys.stderr)
        return int(ExitCode.ABORTED)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for DRILLS_DEBUG=1
        if os.environ.get("DRILLS_DEBUG"):
            traceback.print_exc()
        print(
            visible(f"drill: internal error: {type(exc).__name__}: {exc} (set DRILLS_DEBUG=1 for details; please report)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())

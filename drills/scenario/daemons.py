"""A node's `daemons:` (FRR, keepalived) resolved into services with private paths.

Each daemon becomes one service of its node, so deploy, `node-loss` (which kills every process
of the node and starts its services again), `service-stop`, the journal, teardown and
`drill clean` treat it exactly as any other service. What makes a daemon safe to run in many
namespaces of one host is its paths: every file a daemon opens or creates is under its
service's `PrivateDir` (`<run dir>/nodes/<node>/frr` or `.../keepalived`, given to the command
as $DRILLS_DIR), never the host's /etc/frr, /var/run/frr or /tmp/keepalived.data:

- FRR (`-N` only rewrites the default paths, and vtysh attaches to whichever instance started
  last without private run directories): each daemon runs in the foreground (no `-d`, so it
  stays in its service's process group) from its private directory, with paths relative to it
  (a unix socket's path is at most 107 bytes; a run directory may be deeper): `-f /dev/null`
  (each daemon's part of the integrated frr.conf is given by `vtysh -b -d DAEMON` once it
  answers: a daemon reading the whole file would stop at the first `exit` of a block it does
  not know), `-i` pid file, `-z` zebra's socket, `--vty_socket .`, bfdd's `--bfdctl`, `-P 0`
  (no TCP vty), `--log stdout` (the service's log in the run directory), as root.
- keepalived: `-n` (foreground), `-P` (VRRP only), `-l -D -G` (console log, detailed, no
  syslog), `-p/-r/-c/-b` pid files, `-i` a config id of the node's own (pid files are locked
  per config id, the host name by default: the same in every namespace), and TMPDIR the private
  directory (where it writes keepalived.data on SIGUSR1).

A daemon is ready when it answers and took its configuration (FRR's through `vtysh
--vty_socket DIR -d DAEMON`), keepalived once its VRRP process wrote its pid file; `settled`
checks (OSPF adjacencies, routes) are waited once every node runs. A daemon that is not ready
in time fails the deploy, and one found dead when the drill's clock stops makes the drill an
error (drills.engine.daemon_check): a scenario whose daemon does not run is never a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from drills.scenario import model_topology as model
from drills.scenario.resolved import PrivateDir, Readiness, Service
from drills.scenario.userfile import FileRefused, decode, read_bytes
from drills.scenario.yamlpos import KeyPath

if TYPE_CHECKING:
    from drills.errors import Problem
    from drills.scenario.reporter import Reporter
    from drills.scenario.resolved import Scenario

FRR_DIR = "/usr/lib/frr"  # Debian's (and Ubuntu's) place for FRR's daemons
VTYSH = "/usr/bin/vtysh"
KEEPALIVED = "/usr/sbin/keepalived"
# Root, as drills is: the run directory (0700) is closed to Debian's `frr` user. FRR wants the
# user in its vty group (frrvty, made by the package): `-g frrvty` makes it root's own group.
FRR_USER = ("-u", "root", "-g", "frrvty")
MAX_CONFIG_BYTES = 65_536  # a daemon's configuration file; a router's is a few kB
FRR_ORDER = ("zebra", "staticd", "ospfd", "bfdd")  # zebra first: the others connect to it


def vtysh_command(directory: str = '"$DRILLS_DIR"') -> str:
    """A shell command that runs vtysh on the FRR instance whose private directory is `directory`
    (shell-quoted; add `-c 'show ...'`). Relative socket paths, from that directory: a unix socket's path is at
    most 107 bytes, and a run directory may be deeper than that."""
    return f"cd {directory} && {VTYSH} --vty_socket ."


def binary(service: Service) -> str | None:
    """The program a daemon service runs (None for a service that is not a daemon)."""
    if service.private is None:
        return None
    if service.private.name == "frr":
        return f"{FRR_DIR}/{service.name}"
    if service.private.name == "keepalived":
        return KEEPALIVED
    return None


def capability(program: str) -> str:
    """The capability a backend declares when `program` is installed (its `drill doctor` row)."""
    return f"program {program}"


def programs() -> tuple[str, ...]:
    """Every program a daemon service may need (the backend declares each as a capability)."""
    return (*(f"{FRR_DIR}/{name}" for name in FRR_ORDER), VTYSH, KEEPALIVED)


def requirements(scenario: Scenario, capabilities: Mapping[str, bool] | Callable[[], Mapping[str, bool]]) -> list[Problem]:
    """A problem for each daemon whose program (or vtysh, FRR's readiness check) the backend does
    not declare installed, located at the node's `daemons:` key; checked before deploy, so a
    missing package is a clear refusal, never a half-deployed testbed."""
    needed: dict[str, list[str]] = {}  # node -> programs
    for node in scenario.topology.nodes:
        for service in node.services:
            program = binary(service)
            if program is not None:
                needed.setdefault(node.name, []).append(program)
                if program.startswith(FRR_DIR):
                    needed[node.name].append(VTYSH)
    if not needed:
        return []
    caps = capabilities() if callable(capabilities) else capabilities
    problems = []
    for name, wanted in needed.items():
        missing = sorted({program for program in wanted if not caps.get(capability(program), False)})
        if missing:
            package = "keepalived" if missing == [KEEPALIVED] else "frr" if KEEPALIVED not in missing else "frr keepalived"
            problems.append(
                scenario.problem(
                    ("topology", "nodes", name, "daemons"),
                    f"node {name} runs {', '.join(missing)}, not installed on this host; install Debian's "
                    f"packages (apt-get install {package})",
                )
            )
    return problems


def services(reporter: Reporter, name: str, daemons: model.Daemons | None, path: KeyPath) -> list[Service]:
    """The services that run node `name`'s daemons (FRR's, then keepalived), in start order."""
    if daemons is None:
        return []
    out: list[Service] = []
    if daemons.frr is not None:
        text = _config(reporter, daemons.frr.config, (*path, "frr", "config"))
        out += _frr(daemons.frr, text or "")
    if daemons.keepalived is not None:
        text = _config(reporter, daemons.keepalived.config, (*path, "keepalived", "config"))
        out.append(_keepalived(name, daemons.keepalived, text or ""))
    return out


def _config(reporter: Reporter, given: str, path: KeyPath) -> str | None:
    """The configuration text: `given` itself when it has several lines, else the file it names
    (relative to the file that names it), read with the bounds of drills.scenario.userfile."""
    if "\n" in given:
        return given
    mark = reporter.located.mark(path)
    base = Path(mark.file).parent if mark is not None else Path.cwd()
    target = base / given
    try:
        return decode(read_bytes(target, MAX_CONFIG_BYTES))
    except FileRefused as exc:
        reporter.err(path, f"configuration file {target}: {exc.reason}")
        return None


def _frr(frr: model.Frr, text: str) -> list[Service]:
    wanted = {"zebra", *frr.daemons}
    # vtysh.conf empty: vtysh reads it from --config_dir, and the host's is not ours to use.
    private = PrivateDir("frr", (("frr.conf", text), ("vtysh.conf", "")))
    out = []
    for daemon in FRR_ORDER:
        if daemon not in wanted:
            continue
        extra = " --bfdctl bfdd.sock" if daemon == "bfdd" else ""
        command = (
            f'cd "$DRILLS_DIR" && exec {FRR_DIR}/{daemon} {" ".join(FRR_USER)} -f /dev/null -i {daemon}.pid '
            f"-z zserv.api --vty_socket . -P 0 --log stdout{extra}"
        )
        # Ready once it answers and took its part of frr.conf (vtysh -b: what FRR's own start-up
        # does with the integrated config); vtysh's complaints go to the daemon's log.
        check = (
            f"{vtysh_command()} -d {daemon} -c 'show version' >/dev/null 2>&1 && "
            f'{VTYSH} --vty_socket . --config_dir . -b -d {daemon} >>"$DRILLS_LOG" 2>&1'
        )
        ready = Readiness(None, check, frr.ready_timeout)
        settled = _converged(frr) if daemon == "ospfd" else None
        out.append(Service(daemon, command, (), ready, private, settled))
    return out


def _converged(frr: model.Frr) -> Readiness | None:
    """Converged: as many adjacencies Full and OSPF routes in the kernel as the scenario states,
    checked once every router runs (the drill's clock starts on a routed network)."""
    checks = []
    if frr.ospf_neighbors:
        full = f"{vtysh_command()} -d ospfd -c 'show ip ospf neighbor' 2>/dev/null | grep -c ' Full/'"
        checks.append(f'test "$({full})" -ge {frr.ospf_neighbors}')
    if frr.ospf_routes:
        routes = f"{vtysh_command()} -d zebra -c 'show ip route ospf' 2>/dev/null | grep -c '^O>\\*'"
        checks.append(f'test "$({routes})" -ge {frr.ospf_routes}')
    return Readiness(None, " && ".join(checks), frr.ready_timeout) if checks else None


def _keepalived(node: str, keepalived: model.Keepalived, text: str) -> Service:
    private = PrivateDir("keepalived", (("keepalived.conf", text),))
    command = (
        # The pid files of a killed instance go first: its readiness check reads vrrp.pid.
        'cd "$DRILLS_DIR" && rm -f keepalived.pid vrrp.pid checkers.pid bfd.pid && export TMPDIR="$DRILLS_DIR" && '
        f'exec {KEEPALIVED} -n -P -l -D -G -f "$DRILLS_DIR/keepalived.conf" -p "$DRILLS_DIR/keepalived.pid" '
        f'-r "$DRILLS_DIR/vrrp.pid" -c "$DRILLS_DIR/checkers.pid" -b "$DRILLS_DIR/bfd.pid" -i drills-{node}'
    )  # keepalived makes no unix socket: absolute paths are fine
    ready = Readiness(None, 'test -s "$DRILLS_DIR/vrrp.pid"', keepalived.ready_timeout)
    # Its own log (-l -D to stdout, the service's log) says when it became master; a restart
    # after a node loss is not waited for (the drill measures that).
    settled = (
        Readiness(None, 'grep -q "Entering MASTER STATE" "$DRILLS_LOG"', keepalived.ready_timeout) if keepalived.master else None
    )
    return Service("keepalived", command, (), ready, private, settled)

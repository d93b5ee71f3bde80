"""Daemons that died during a drill: the drill errors rather than report figures.

A node's daemons (drills.scenario.daemons) are what a known-answer drill measures: a dead zebra
leaves stale routes in the kernel, a dead ospfd or keepalived takes routes or an address with it,
and the figures would then measure that death, not the scenario's failover. Their readiness
is checked at deploy and at every restore; this is the check once the drill's clock stopped: a
daemon that is not running then, on a node no still-applied fault touches (a `node-loss` or
`service-stop` without a revert), died by itself, and the drill is an error, never a pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from drills.backend import NodeOps
from drills.errors import BackendError
from drills.scenario.resolved import Scenario


def check(scenario: Scenario, ops: NodeOps, held: Iterable[str]) -> None:
    """BackendError naming every daemon service that is not running, but on nodes in `held`
    (those a fault still applied touches: the `touches()` lines of the undo stack)."""
    nodes = {line.split("/")[0].split(":")[0] for line in held}
    dead = [
        f"{node.name}/{service.name}"
        for node in scenario.topology.nodes
        if node.name not in nodes
        for service in node.services
        if service.private is not None and not ops.service_running(node.name, service.name)
    ]
    if dead:
        raise BackendError(
            f"daemon {', '.join(dead)} died during the drill; the figures would measure its death, not the "
            "scenario's failover: no verdict (its log is <run>/<node>.<daemon>.log while the run is kept: `drill up` to explore)"
        )

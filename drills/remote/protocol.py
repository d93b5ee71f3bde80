"""What the controller and an agent say to each other, over frames (drills.remote.frames).

    request    {"id": N, "method": "op", "args": [...], "kwargs": {...}}   (args, kwargs: codec)
               with "at": T, an instant of the agent's clock: its lane holds the request until
               then (a fault's operations, sent ahead: the agent times the fault), at most
               MAX_HOLD_S
    answer     {"id": N, "result": ...}   or   {"id": N, "error": {"kind": K, "message": M}}
               with "ran": [START, END], the agent's clock when it began and finished the
               request (every request a lane ran; `time` answers carry their own instants)
    heartbeat  {"hb": N}   (controller to agent, every HEARTBEAT_S; never answered)

Methods: hello, time, deploy, op, probe, teardown, bye (drills.remote.agent). Errors travel as
the name of their class in drills.errors and their message; the controller raises the same
class again with the host's name in front, so a bad input on a host still exits 2.
"""

from __future__ import annotations

from drills import errors

VERSION = 2  # of this protocol: hello refuses a controller speaking another
HEARTBEAT_S = 0.5  # the controller sends a frame at least this often
DEADMAN_S = 2.0  # an agent that hears nothing for this long takes its controller for dead
MAX_HOLD_S = 0.25  # a request's "at" further ahead than this is held this long only

# Node operations an agent performs for its controller: every NodeOps method but the two that
# hand back a live object (a socket, a function's result in a node's thread): probes on a host
# run there, in its ProbeService.
OP_METHODS = frozenset(
    {
        "set_link", "link_state", "replace_address", "replace_routes",
        "impair", "link_engine",
        "arm_rules", "apply_rules", "remove_rules",
        "processes", "signal", "process_state", "kill_all", "stop_all", "continue_all", "boot",
        "start_service", "stop_service", "service_running", "exec",
        "warm", "close",
    }
)  # fmt: skip

INTERNAL = "internal"  # an exception drills did not raise on purpose: a bug, logged on the host
_KINDS: dict[str, type[errors.DrillError]] = {
    "BadInput": errors.BadInput,
    "ScenarioError": errors.BadInput,  # its problems arrive as its message
    "EnvironmentProblem": errors.EnvironmentProblem,
    "BackendError": errors.BackendError,
    "NameExists": errors.BackendError,
    "CleanupIncomplete": errors.CleanupIncomplete,
    "Aborted": errors.Aborted,
}


def error_kind(exc: BaseException) -> str:
    """The name an error travels under: its own class in drills.errors, else the nearest base
    there, else `INTERNAL`."""
    for cls in type(exc).__mro__:
        if cls.__name__ in _KINDS and cls.__module__ == errors.__name__:
            return cls.__name__
    return INTERNAL


def error_from(host: str, kind: object, message: object) -> errors.DrillError:
    """The error to raise on the controller for an agent's error answer."""
    cls = _KINDS.get(str(kind), errors.BackendError)
    text = str(message)[:4000]  # bounded: it ends up in a terminal and a report
    if kind == INTERNAL:
        text = f"internal error in the agent: {text} (its log on the host has the traceback)"
    return cls(f"{host}: {text}")

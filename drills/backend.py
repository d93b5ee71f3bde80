"""The seam: the only door from the engine to a testbed.

A backend deploys a topology and tears a run down (`Backend`), and, for a deployed run, offers
node operations (`NodeOps`): link admin state and carrier, addresses and routes, impairments
(kernel qdiscs or the userspace relay, behind one operation), packet-filter rules, processes,
services, exec, and probe sockets. Faults and probes are composed from these operations only,
so a new backend (containers, a remote host's agent, a fake in the unit tests) needs no change
in `drills/engine/`. A backend knows no faults: it offers "set this interface down", never
"apply a link-down".

Every mutating operation returns only once the backend has read the new state back (a fault is
verified, not assumed), and raises `drills.errors.BackendError` when it could not. Operations
take node names (as the scenario spells them) and interface names inside the node; which
namespace, container or host holds a node is the backend's business.

Each backend also declares what it can do on this host (`capabilities()`), which the engine
checks against a scenario before anything is deployed.

This module leans on nothing but records and errors.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface, ip_address
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from drills.clock import Clock
    from drills.impairment import Settings
    from drills.rules import Table
    from drills.runs import Run
    from drills.scenario.resolved import Link, Route, Service, Topology

T = TypeVar("T")
Log = Callable[[str], None]

# --------------------------------------------------------------------------- capabilities

# What a backend may declare it can do on this host; the names are also `drill doctor`'s rows.
ROOT = "root privileges"
NAMESPACES = "network namespaces"
VETH = "veth pairs"
NETEM = "netem qdisc"
TBF = "tbf qdisc"
TUNTAP = "TUN/TAP"
NFTABLES = "nftables"
CONTAINERS = "Docker engine"

Capabilities = Mapping[str, bool]
CapabilityLookup = Callable[[], Capabilities]


# --------------------------------------------------------------------------- records


class LinkState(NamedTuple):
    """An interface as its node's kernel shows it: administratively up, and with carrier. A
    tuple, not a dataclass: it is read on the drill clock, and cheap to make matters there."""

    admin_up: bool
    carrier: bool


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Impairment:
    """One direction of a link to put in a given state: `settings` on the egress of the
    direction's sending end ("a-to-b": endpoint a), or None for no impairment at all (the
    interface's default qdisc, or a relay passing frames through untouched). `in_place`
    changes an impairment already ours without a gap (a ramp's next step)."""

    link: Link
    direction: str  # "a-to-b" | "b-to-a"
    settings: Settings | None
    in_place: bool = False


@dataclass
class TeardownReport:
    """What a teardown removed, what it could not (with how to remove it by hand), and what it
    refused to touch: journal entries that failed their check, objects that are not the run's
    (a reused pid, a container without the run's label, a name that existed before the run)."""

    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # never acted on; not a leftover of the run

    @property
    def clean(self) -> bool:
        return not self.left


# A VXLAN tunnel's encapsulation: outer Ethernet 14 + IP (20 or 40) + UDP 8 + VXLAN 8. Placement
# (drills.hosts) states a cross link's MTU with it; the wire (drills.netns) checks the route's MTU.
VXLAN_OVERHEAD_V4_BYTES = 50
VXLAN_OVERHEAD_V6_BYTES = 70


def vxlan_overhead_bytes(*underlays: str) -> int:
    """The VXLAN overhead of a tunnel between these underlay addresses: IPv6's when any is an
    IPv6 address, IPv4's otherwise (an empty address, one not yet known, counts as neither)."""
    v6 = any(underlay and ip_address(underlay).version == 6 for underlay in underlays)
    return VXLAN_OVERHEAD_V6_BYTES if v6 else VXLAN_OVERHEAD_V4_BYTES


@dataclass(frozen=True)
class CrossEnd:
    """This host's end of a link whose other end is on another host (several machines): the
    node's interface is one end of a veth pair whose hidden end, in the run's wire namespace on
    this host, is bridged with a VXLAN device to the other host. Cutting the hidden end takes
    the node's carrier away, as a cut fibre would (a tunnel alone never tells its far end)."""

    link: str
    node: str  # the node on this host
    ifname: str  # its interface for the link
    vni: int  # VXLAN network identifier of the link (the same at both ends)
    local_ip: str  # this host's underlay address (the tunnel's source)
    remote_ip: str  # the other host's underlay address
    port: int  # VXLAN UDP port
    mtu: int  # the node interface's MTU: the underlay's less the VXLAN overhead (vxlan_overhead_bytes)


@dataclass(frozen=True)
class HostPart:
    """What one host deploys of a topology spread over several: its nodes (with every interface
    of theirs), the links with both ends here, and its ends of the cross-host links."""

    host: str
    nodes: tuple[str, ...]
    cross: tuple[CrossEnd, ...] = ()


# --------------------------------------------------------------------------- node operations


class LinkOps(Protocol):
    def set_link(self, node: str, ifname: str, *, up: bool) -> None:
        """Set an interface administratively up or down. Sent, not awaited: read `link_state`
        (the peer's carrier follows on its own time, a relay's within its poll)."""

    def link_state(self, node: str, ifname: str) -> LinkState:
        """The interface as the node's kernel shows it now."""

    def replace_address(self, node: str, ifname: str, address: IPv4Interface | IPv6Interface) -> None:
        """Put an address on an interface (idempotent)."""

    def replace_routes(self, node: str, routes: Sequence[Route]) -> None:
        """Install (or re-install: idempotent) static routes of a node."""


class ImpairmentOps(Protocol):
    def impair(self, changes: Sequence[Impairment]) -> None:
        """Put each change in force through the engine serving its link (kernel qdiscs, or the
        userspace relay), all issued first and then each read back; BackendError if one does
        not read back as asked. Refuses to replace an impairment the run did not create."""

    def link_engine(self, link: str) -> str:
        """The engine serving a link in this run: "kernel" or "userspace"."""


class RuleOps(Protocol):
    def arm_rules(self, tables: Sequence[Table]) -> None:
        """Before the clock, optionally: put each table in place inert (its hooked chains
        with no rule, nothing dropped, and its rules loaded where no packet reaches them), so
        that `apply_rules` then only points the hooked chains at the loaded rules and
        `remove_rules` unpoints them, with no hook registered and no rule built on the clock.
        The backend removes armed tables when its operations close. A backend may do nothing."""

    def apply_rules(self, tables: Sequence[Table], on_applied: Callable[[], None] | None = None) -> None:
        """Create each table of packet-filter rules in its node (all at once), then read each
        back; BackendError unless every node shows exactly those chains and rules. A table of
        the same name already there is a clash, not something to merge. `on_applied`, if the
        backend can tell, is called once every node's kernel acknowledged its table, before
        the read-back (the rules were in force from then on); a backend may never call it."""

    def remove_rules(self, tables: Sequence[Table]) -> None:
        """Delete each table (idempotent: one never created is not an error), then confirm that
        no node lists it any more; an armed table is put back inert instead, and confirmed so."""


class ProcessOps(Protocol):
    def processes(self, node: str) -> list[int]:
        """Every process living in the node now."""

    def signal(self, node: str, pids: Sequence[int], sig: signal.Signals) -> None:
        """Send `sig` to processes of the node (a process gone meanwhile is not an error)."""

    def process_state(self, node: str, pid: int) -> str | None:
        """The process's state letter as ps shows it ("R", "S", "T", "Z", ...), None once gone."""

    def kill_all(self, node: str) -> int:
        """A crash: every process of the node killed, confirmed gone (a container: killed as a
        whole). Returns how many processes were killed."""

    def stop_all(self, node: str, on_stopped: Callable[[float], None] | None = None) -> int:
        """A hang: every process of the node stopped, confirmed in the stopped state (a
        container: paused). Returns how many. `on_stopped(instant)`, where the backend can
        tell, gets the instant (on the drill clock) by which every process was stopped, when
        what follows only proves none was missed; a backend may never call it."""

    def continue_all(self, node: str, on_continued: Callable[[float], None] | None = None) -> None:
        """Undo `stop_all`, confirmed: no process of the node is stopped any more.
        `on_continued(instant)`, where the backend can tell, gets the instant (on the drill
        clock) by which the processes it stopped were seen running again, when what follows
        only proves none was left stopped; a backend may never call it."""

    def boot(self, node: str) -> bool:
        """Bring a node whose processes were all killed back as a boot would, before its
        interfaces and services are restored. True when the node now lives in a new network
        namespace (a restarted container), so probes must open their sockets there again;
        False when nothing needed doing (a namespace node)."""


class ServiceOps(Protocol):
    def start_service(self, node: str, service: Service, on_started: Callable[[float], None] | None = None) -> int:
        """Start a service of the node exactly as deploy does (journaled first, readiness check
        passed); returns its pid. `on_started(instant)`, where the backend can tell, gets when
        its process was running, before its readiness; a backend may never call it."""

    def stop_service(self, node: str, service: str, on_stopped: Callable[[float], None] | None = None) -> None:
        """Stop a running service: its process group, TERM then KILL after a grace period,
        confirmed gone (a backend may freeze the group first, so that it stops acting at a
        known instant). BackendError when it is not running. `on_stopped(instant)`, where the
        backend can tell, gets the instant its processes stopped acting (frozen, or gone), when
        what follows only proves none was left; a backend may never call it."""

    def service_running(self, node: str, service: str) -> bool:
        """Whether a process journaled for the service still runs (same pid, same start time)."""

    def exec(self, node: str, command: str, timeout_s: float, on_started: Callable[[float], None] | None = None) -> ExecResult:
        """Run a shell command in the node and wait for it (BackendError after `timeout_s`).
        `on_started(instant)`, where the backend can tell, gets when the command started (its
        shell running): an exec step's instant; a backend may never call it."""


class SocketOps(Protocol):
    def open_socket(self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0) -> socket.socket:
        """A socket living in the node's network (probes send and receive through it)."""

    def run_in_node(self, node: str, fn: Callable[[], T]) -> T:
        """Run `fn` in a thread whose network is the node's (an application probe's loop, whose
        resolver, connects and commands must all see the node's network), and return its result."""


class NodeOps(LinkOps, ImpairmentOps, RuleOps, ProcessOps, ServiceOps, SocketOps, Protocol):
    """Everything a fault or a probe may do to a deployed run's nodes."""

    def warm(self) -> None:
        """Open every handle and look up every interface the run's links have, before the drill
        clock starts: an operation on the clock costs a request and a read-back, nothing more."""

    def close(self) -> None:
        """Release every handle (idempotent)."""


@runtime_checkable
class StopArming(Protocol):
    """Node operations that can prepare a node's freeze before the clock (the namespace
    backend: a pidfd per process, so the freeze needs no scan of every host process first)."""

    def arm_stop(self, node: str) -> None:
        """Before the clock: learn the node's processes now, for its next `stop_all`; nothing
        changes for them. A process started since is still stopped by `stop_all`."""


@runtime_checkable
class TimedOps(Protocol):
    """Node operations that run on other hosts (drills.remote), whose agents keep time: a step's
    operations are sent `lead_s` ahead of its instant and each host runs them at that instant
    on its own clock, so the channel's latency does not delay the fault; and each host stamps
    when it ran them, which places the change tighter than the caller's own send and answer."""

    def lead_s(self) -> float:
        """How long before a step's instant its operations are issued (0: at the instant)."""

    def due_at(self, instant_s: float | None) -> None:
        """Operations the calling thread issues from now on run on their hosts at `instant_s` of
        the drill clock (at once when it is past); None: at once."""

    def take_span(self) -> OpsSpan | None:
        """When the operations the calling thread issued since its last call ran on their
        hosts, on the drill clock, each host's clock-offset bound included. None when none
        ran; (-inf, inf, inf) when one cannot be placed."""


class OpsSpan(NamedTuple):
    """When a step's operations ran on their hosts, on the drill clock (TimedOps.take_span)."""

    start_s: float  # no earlier than: the first started
    end_s: float  # finished by: the last one's read-back
    # The first change (a link end or carrier set) was made by then: its host's kernel had
    # acknowledged it, and a read-back after confirmed it. Where any one change alone puts the
    # fault in force (an end of a cut link), it was in force by then.
    first_change_s: float


# --------------------------------------------------------------------------- the backend


class Backend(Protocol):
    """Deploy a topology for a run; give its node operations; tear down whatever that run's
    journal lists."""

    name: str
    engines: Mapping[str, str]  # link -> the engine serving it ("kernel" or "userspace"), after deploy

    def capabilities(self) -> Capabilities:
        """What this backend can do on this host (keys above), probed once and cached."""

    def deploy(self, topology: Topology, run: Run) -> None:
        """Create every object, journaling each before it exists. On error, raise; the caller
        tears down from the journal."""

    def ops(self, run: Run, clock: Clock) -> NodeOps:
        """The node operations of a deployed run, timed on `clock` (confirmation polls included)."""

    def teardown(self, run: Run) -> TeardownReport:
        """Remove every object in `run`'s journal. Idempotent; never touches anything else."""

    def namespace_of(self, run: Run, node: str) -> str:
        """Name of the network namespace holding `node` on this host (`drill exec`, `drill ls`)."""

"""The embedded default testbed: one network namespace per node, one veth pair per link (or,
for a link served by the userspace engine, a TAP pair joined by a relay: drills.userspace).

Deploy runs in four batched phases, each journaled (one fsync) before it touches the kernel:
namespaces (with the routing sysctls), veth pairs (each end born in its namespace), per-node
configuration (addresses, links up, user sysctls, link profiles, routes), then services.
Teardown reads only the journal: it stops the run's processes, then removes its namespaces,
which takes their veths, addresses and routes with them.

The pipeline (`NetnsBackend.deploy_with`) is the one every backend made of namespaces runs: the
container backend joins it at two points (`Joins`: its containers' namespaces before the links,
their own start-up after the services) instead of keeping a copy that drifts.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.backend import NFTABLES, Capabilities, NodeOps, TeardownReport
from drills.clock import Clock, SystemClock
from drills.errors import BackendError
from drills.journal import Checked
from drills.netns import batch, kernel, private_dirs, procs, qdisc, services
from drills.netns.handles import Handles
from drills.netns.nft import find_nft
from drills.netns.ops import NetnsOps
from drills.netns.segments import deploy_segments, port_engines, segment_namespaces
from drills.runs import Run
from drills.scenario import daemons
from drills.scenario.resolved import Link, Node, Service, Topology
from drills.userspace import select
from drills.userspace.deploy import RelayHandle, labelled_relays, relay_seed, start_relay, wait_ready
from drills.userspace.impair import Impairments
from drills.userspace.profile import profile_impairments

# Set in every node namespace before any interface exists, so `default` values reach them all.
NODE_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    # A route whose next hop lost carrier is skipped, so a backup route takes over, as on a
    # real router when a fibre is cut.
    ("net.ipv4.conf.all.ignore_routes_with_linkdown", "1"),
    ("net.ipv4.conf.default.ignore_routes_with_linkdown", "1"),
    ("net.ipv6.conf.all.ignore_routes_with_linkdown", "1"),
    ("net.ipv6.conf.default.ignore_routes_with_linkdown", "1"),
    # An interface set down keeps its IPv6 addresses (the kernel flushes them by default), as
    # it keeps its IPv4 ones: a link-down's revert then has nothing to re-add.
    ("net.ipv6.conf.all.keep_addr_on_down", "1"),
    ("net.ipv6.conf.default.keep_addr_on_down", "1"),
    # No duplicate address detection: IPv6 addresses are usable at once, not after ~1 s.
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
)

Log = Callable[[str], None]
CapabilityLookup = Callable[[], Mapping[str, bool]]


def host_capabilities() -> Mapping[str, bool]:
    """What this host's kernel can do (doctor's probes), and whether packet-filter rules can be
    run: the `nft` command is found (in sbin too), which is what the preflight refuses without."""
    from drills.netns.host_checks import kernel_capabilities  # a scratch namespace: only when asked

    programs = {daemons.capability(p): os.access(p, os.X_OK) for p in daemons.programs()}
    return {**kernel_capabilities(), NFTABLES: find_nft() is not None, **programs}


def namespace_name(run_id: str, node: str) -> str:
    return f"drill-{run_id}-{node}"


Namespaces = dict[str, str]  # node -> the name of its network namespace


def _nothing(_ns: Namespaces) -> None:
    pass


@dataclass(frozen=True)
class Joins:
    """Where another substrate joins the deploy pipeline (`NetnsBackend.deploy_with`). The
    namespace backend alone passes `Joins()`: every node a namespace of its own."""

    provided: frozenset[str] = frozenset()
    """Nodes whose namespace `provide` brings into being (containers, started or attached):
    the pipeline neither creates nor journals them, nor starts their services."""
    found: frozenset[str] = frozenset()
    """Nodes left as found (a lab's attached containers), a subset of `provided`: not
    configured, no routes; a link between two of them exists already: checked, never created,
    and not given its profile (only what the run creates is changed)."""
    provide: Callable[[Namespaces], None] = _nothing
    """Make every `provided` namespace exist, journaling each object before it does; called
    after the pipeline's own namespaces and before any link."""
    finish: Callable[[Namespaces], None] = _nothing
    """The provided nodes' own start-up, after the pipeline started the other nodes' services."""


class NetnsBackend:
    """Backend of network namespaces on this host (needs root and nothing else)."""

    name = "netns"
    batched_netlink = True
    """Deploy's rtnetlink requests built with struct and sent in batches (drills.netns.batch);
    False: through pyroute2, one request at a time, as before (bench/profile_deploy.py runs both,
    interleaved, and checks they build the same testbed)."""

    def __init__(
        self,
        log: Log | None = None,
        service_cwd: Path | None = None,
        *,
        seed: int | None = None,
        capabilities: CapabilityLookup | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._log = log or (lambda _msg: None)
        self._clock = clock or SystemClock()  # deploy's waits (a relay, a service's readiness)
        self._service_cwd = service_cwd or Path.cwd()
        self._seed = seed  # the drill's: relays' random choices derive from it
        self._capabilities = capabilities  # default: doctor.kernel_capabilities, asked only if needed
        self._caps: dict[str, bool] | None = None
        self._topology: Topology | None = None
        self.engines: Mapping[str, str] = {}  # link -> engine that served it (after deploy; the seam reads it)
        self.relays: dict[str, RelayHandle] = {}  # link -> its relay (userspace links)

    def capabilities(self) -> Capabilities:
        if self._caps is None:
            self._caps = dict((self._capabilities or host_capabilities)())
        return self._caps

    def ops(self, run: Run, clock: Clock) -> NodeOps:
        """The node operations of `run`, deployed by this backend (`deploy` sets the topology)."""
        assert self._topology is not None, "deploy first"
        namespaces = {node.name: self.namespace_of(run, node.name) for node in self._topology.nodes}
        namespaces |= segment_namespaces(run.run_id, self._topology)  # a member port's degrade
        return NetnsOps(run, self._topology, namespaces, self.engines, clock, self._log, self.start_service)

    def namespace_of(self, run: Run, node: str) -> str:
        return namespace_name(run.run_id, node)

    # ------------------------------------------------------------------ deploy

    def deploy(self, topology: Topology, run: Run) -> None:
        self.deploy_with(topology, run, Joins())

    def deploy_with(self, topology: Topology, run: Run, joins: Joins) -> None:
        """Deploy `topology`, every node a namespace of ours except those `joins` provides (see
        the module docstring for the phases). On error, raise; the caller tears down from the
        journal."""
        self._topology = topology
        kernel.require_root()
        ns = {node.name: namespace_name(run.run_id, node.name) for node in topology.nodes}
        started = time.perf_counter()

        own = [ns[node.name] for node in topology.nodes if node.name not in joins.provided]
        run.journal.record({"op": "netns", "name": name} for name in own)
        with run.journal.creating("netns", own):
            kernel.create_namespaces(own, NODE_SYSCTLS)
        joins.provide(ns)

        existing = {link.name for link in topology.links if {link.a.node, link.b.node} <= joins.found}
        new = [link for link in topology.links if link.name not in existing]
        _check_existing([link for link in topology.links if link.name in existing], ns)
        # A link that exists already is a veth pair of the lab's: the kernel serves it.
        chosen = select.engines(new, self._capabilities or host_capabilities)
        self.engines = {link.name: chosen.get(link.name, select.KERNEL) for link in topology.links}
        self.engines |= port_engines(topology)
        self._create_links(run, new, ns)
        attached = [m.endpoint for seg in topology.segments for m in seg.members if m.node in joins.found]
        if attached:
            raise BackendError(
                f"segment member {attached[0]} is an attached container's: a segment joins only nodes this run "
                "creates; make the lab's own switch a node, or create the container with `image:`"
            )
        deploy_segments(run, topology.segments, ns, self._log)

        nodes = {ns[node.name]: node for node in topology.nodes if node.name not in joins.found}
        if self.batched_netlink:
            kernel.visit_namespaces(list(nodes), lambda name: _in_namespace(nodes[name], batch.configure))
        else:
            kernel.in_each_namespace(list(nodes), lambda name, ipr: _configure(nodes[name], ipr))
        for handle in self.relays.values():
            wait_ready(handle, run.dir / f"relay-{handle.link}.log", self._clock)
        self._install_kernel_profiles(topology if not existing else _with_links(topology, new), ns)
        for link in topology.links:
            if link.name in existing and link.profile_spec is not None:
                self._log(f"link {link.name}: the lab's own link: profile {link.profile} left uninstalled")
        for handle in self.relays.values():
            self._log(f"link {handle.link}: userspace engine (relay pid {handle.pid}, seed {handle.seed})")
        routed = [name for name, node in nodes.items() if node.routes]
        if self.batched_netlink:
            kernel.visit_namespaces(routed, lambda name: _in_namespace(nodes[name], _batched_routes))
        else:
            kernel.in_each_namespace(routed, lambda name, ipr: install_routes(nodes[name], ipr, kernel.local_link_index))
        segments = f", {len(topology.segments)} segments" if topology.segments else ""
        self._log(f"{len(ns)} nodes and {len(topology.links)} links{segments} up in {time.perf_counter() - started:.3f} s")

        for node in topology.nodes:
            if node.name not in joins.provided:
                for service in node.services:
                    self.start_service(run, ns[node.name], node, service)
        for node in topology.nodes:
            for service in node.services:
                if service.settled is not None and node.name not in joins.provided:
                    services.wait_settled(ns[node.name], service, self._clock, self._private_env(run, node, service))
        joins.finish(ns)

    def _create_links(self, run: Run, links: list[Link], ns: Namespaces) -> None:
        """Veth pairs for the kernel's links (journaled first), a relay for each userspace one."""
        veths = [link for link in links if self.engines[link.name] == select.KERNEL]
        run.journal.record(
            {"op": "veth", "a": [ns[link.a.node], link.a.name], "b": [ns[link.b.node], link.b.name]}
            for link in veths
        )
        if self.batched_netlink:
            batch.create_veths(veths, ns, lambda name: str(kernel.netns_path(name)))
            veths = []
        root = kernel.root_netlink()
        try:
            for link in veths:
                kernel.add_veth(root, ns[link.a.node], link.a.name, ns[link.b.node], link.b.name)
        finally:
            root.close()
        for link in links:
            if self.engines[link.name] == select.USERSPACE:
                ends = ((ns[link.a.node], link.a.name), (ns[link.b.node], link.b.name))
                self.start_relay(run, link, ends, profile_impairments(link))

    def start_relay(
        self, run: Run, link: Link, ends: tuple[tuple[str, str], tuple[str, str]], initial: dict[str, Impairments]
    ) -> RelayHandle:
        """Start the relay of `link` (drills.userspace.deploy, journaled there) joining TAPs
        `ends` ((namespace, interface) of its a and b sides) with `initial` parameters per
        direction, seeded from the drill's seed; deploy waits for it to be ready."""
        (ns_a, name_a), (ns_b, name_b) = ends
        seed = relay_seed(run.run_id, link.name, self._seed)
        handle = start_relay(run, link, ns_a, ns_b, initial, seed, names=(name_a, name_b))
        self.relays[link.name] = handle
        return handle

    def _install_kernel_profiles(self, topology: Topology, ns: dict[str, str]) -> None:
        """A kernel-served link's profile, as qdiscs for the whole drill (a userspace link's relay
        started with it). Gone with the namespaces: nothing to journal."""
        profiled = [
            link for link in topology.links if link.profile_spec is not None and self.engines[link.name] == select.KERNEL
        ]
        if not profiled:
            return
        handles = Handles(ns)
        try:
            for link in profiled:
                qdisc.install_link_profile(handles, link)
        finally:
            handles.close()

    # ------------------------------------------------------------------ services

    def start_service(
        self, run: Run, namespace: str, node: Node, service: Service, on_started: Callable[[], None] | None = None
    ) -> int:
        """Start `service` of `node` inside `namespace` and wait until its readiness check passes
        (BackendError if it exits first or times out); returns its pid. `on_started()` is called
        once its process runs, before the readiness check. Deploy starts every service
        this way, and faults that stop a service or a whole node start it again this way, so a
        restarted process is journaled exactly like the first one and teardown and `drill clean`
        find it too."""
        # Not synced: a process started here dies with the machine, so only this process's death
        # matters, and the write survives that; a restart on the drill clock waits for no fsync.
        run.journal.record([{"op": "service", "ns": namespace, "node": node.name, "name": service.name}], sync=False)
        log_path = run.dir / f"{node.name}.{service.name}.log"
        if service.private is not None:  # a daemon's own paths (drills.scenario.daemons)
            private_dirs.prepare(run.dir, node.name, service.private)
        env = self._private_env(run, node, service)
        process = services.start(namespace, service, log_path, self._service_cwd, env)
        if on_started is not None:  # its shell runs (Popen returned): before the journal's write
            on_started()
        run.journal.record(
            [
                {
                    "op": "process",
                    "ns": namespace,
                    "pid": process.pid,
                    "start": kernel.process_start_ticks(process.pid),
                    "service": service.name,
                }
            ]
        )
        services.wait_ready(namespace, service, process, log_path, self._clock, env)
        self._log(f"service {node.name}/{service.name} started (pid {process.pid})")
        return process.pid

    @staticmethod
    def _private_env(run: Run, node: Node, service: Service) -> dict[str, str]:
        """DRILLS_DIR and DRILLS_LOG (the service's log) for a service with a private directory:
        its command and checks use them."""
        if service.private is None:
            return {}
        return {
            "DRILLS_DIR": str(private_dirs.path(run.dir, node.name, service.private)),
            "DRILLS_LOG": str(run.dir / f"{node.name}.{service.name}.log"),
        }

    def service_processes(self, run: Run, namespace: str, service: str) -> list[tuple[int, int | None]]:
        """(pid, start ticks) of every process journaled for `service` in `namespace`, oldest
        first, whether it still runs or not. A pid may have been reused since: signal one only
        if `kernel.process_start_ticks` still gives its start ticks."""
        return procs.journaled(run, namespace, service)

    # ------------------------------------------------------------------ teardown

    def teardown(self, run: Run) -> TeardownReport:
        """Stop the run's processes and remove its namespaces, as the journal names them; only
        entries that pass their check (drills.journal) are acted on, the rest are reported."""
        report = TeardownReport()
        journal = run.journal.checked()
        report.refused.extend(str(refused) for refused in journal.refused)
        namespaces = owned_namespaces(journal, "netns", report)
        processes = [(int(e["pid"]), int(e["start"])) for e in journal.entries if e["op"] == "process"]
        if any(e["op"] == "relay" for e in journal.entries):
            # A relay killed with its deployer before its pid was journaled is found by its label.
            journaled = {pid for pid, _ in processes}
            processes += [(pid, t) for pid, t in labelled_relays(run.run_id) if pid not in journaled and t is not None]
        ours = []
        for pid, ticks in processes:
            now = kernel.process_start_ticks(pid)
            if now == ticks:
                ours.append((pid, ticks))
            elif now is not None:  # gone is fine; alive with another start time is someone else
                report.refused.append(f"process {pid}: started at tick {now}, not {ticks} as journaled: not the run's, left alone")
        survivors = services.stop_processes(ours)
        report.removed.extend(f"process {pid}" for pid, _ in ours if pid not in survivors)
        # Anything else still running in the run's namespaces was born there (an exec, a
        # service's child that left its group): it belongs to the run too.
        stray = [pid for pids in kernel.pids_in_namespaces(namespaces).values() for pid in pids]
        survivors += services.kill_and_wait(stray)
        report.removed.extend(f"process {pid}" for pid in stray if pid not in survivors)
        report.left.extend(f"process {pid} (kill -9 {pid})" for pid in survivors)
        for name in reversed(namespaces):
            try:
                if kernel.delete_namespace(name):
                    report.removed.append(f"namespace {name}")
            except BackendError as exc:
                report.left.append(f"namespace {name}: {exc} (ip netns del {name})")
        return report


def owned_namespaces(journal: Checked, kind: str, report: TeardownReport) -> list[str]:
    """The namespaces (`kind`: netns or netns-attach) that teardown may remove, in journal
    order: not those whose create found the name taken, and never one that is the host's own
    network namespace or this process's (a binding of /proc/1/ns/net planted under a drills
    name would otherwise have every process of the host killed as a stray)."""
    foreign = journal.not_created(kind)
    protected = {kernel.process_namespace_inode(pid) for pid in (1, os.getpid())}
    names: dict[str, None] = {}  # ordered, each once
    for entry in journal.entries:
        name = str(entry.get("name"))
        if entry["op"] != kind or name in names:
            continue
        if name in foreign:
            report.refused.append(f"namespace {name}: existed before this run (its create failed): left alone")
        elif kernel.namespace_inode(name) in protected - {None}:
            report.refused.append(f"namespace {name}: is the host's own network namespace: left alone")
        else:
            names[name] = None
    return list(names)


def _check_existing(links: list[Link], ns: Namespaces) -> None:
    """Links between nodes left as found were made by their owner (a lab): check both ends exist."""
    for link in links:
        for end in (link.a, link.b):
            names = kernel.run_in_namespace(ns[end.node], _interface_names)
            if end.name not in names:
                raise BackendError(
                    f"link {link.name}: {end.endpoint} does not exist in the attached container "
                    f"(it has {', '.join(sorted(names))}); is this the lab's topology?"
                )


def _interface_names() -> list[str]:
    return [name for _index, name in socket.if_nameindex()]


def _with_links(topology: Topology, links: list[Link]) -> Topology:
    """The same nodes with only `links`."""
    return Topology(nodes=topology.nodes, links=tuple(links))


def _configure(node: Node, ipr: Any) -> None:
    """Addresses, links up, user sysctls. Runs in a thread inside the node's namespace, so
    interface indices come from if_nametoindex rather than a netlink lookup each."""
    lo = kernel.local_link_index("lo")
    kernel.set_link(ipr, "lo", up=True, index=lo)
    if node.loopback is not None:
        kernel.add_address(ipr, "lo", node.loopback, index=lo)
    for key, value in node.sysctls:
        kernel.write_sysctl(key, value)
    for iface in node.interfaces:
        index = kernel.local_link_index(iface.name)
        for address in (iface.ipv4, iface.ipv6):
            if address is not None:
                kernel.add_address(ipr, iface.name, address, index=index)
        kernel.set_link(ipr, iface.name, up=True, mtu=iface.mtu, index=index)


def _in_namespace(node: Node, fn: Callable[[Node, socket.socket, Callable[[str], int]], None]) -> None:
    """`fn(node, sock, index_of)` in a thread inside the node's namespace: a raw rtnetlink
    socket opened there, interface indices by if_nametoindex there."""
    sock = batch.open_socket()
    try:
        fn(node, sock, kernel.local_link_index)
    finally:
        sock.close()


def _batched_routes(node: Node, sock: socket.socket, index_of: Callable[[str], int]) -> None:
    batch.install_routes(node.routes, sock, index_of)


def install_routes(node: Node, ipr: Any, index_of: Callable[[str], int]) -> None:
    """Install (or re-install: `replace` is idempotent) a node's static routes; `index_of` maps
    an interface name of this node to its index. The kernel deletes the routes through an
    interface that is set administratively down, so the fault engine calls this again when it
    brings such an interface back."""
    for route in node.routes:
        kernel.add_route(
            ipr,
            str(route.destination),
            str(route.gateway) if route.gateway else None,
            route.device,
            route.metric,
            str(route.source) if route.source else None,
            device_index=index_of(route.device) if route.device else None,
        )

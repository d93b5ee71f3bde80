"""The container backend: `kind: container` nodes as Docker containers, mixed with namespace nodes.

Each container is created with no network of Docker's (`network_mode=none`), labelled with the
run id and its node name, and journaled before it exists. Once it runs, its network namespace is
bound at /run/netns/drill-RUN-NODE (see nslink.py); from there on a container node is, to the
rest of drills, a namespace like any other: veth ends are born inside it, addresses, routes and
sysctls are set through netlink, probes open their sockets in it, and every link fault works
unchanged. Namespace nodes of the same scenario are made exactly as the namespace backend makes
them, so one scenario may mix both substrates, joined by veth pairs.

Nodes with `attach: CONTAINER` use a container that exists already (a containerlab lab): the run
binds its namespace and journals only that; it never configures, stops or removes the container,
and links between two attached nodes must exist already (they are checked, never created).

Deploy is the namespace backend's pipeline (`NetnsBackend.deploy_with`), joined at two points:
before any link, the containers are created and started (in parallel) and attached ones bound;
after the namespace nodes' services, the containers' exec lines, services and readiness checks.
Links, relays, addresses, link profiles and routes are the pipeline's, the same for both.

Teardown removes the run's containers (from the journal, and by label in case a crash left one
the journal does not name), unbinds attached namespaces, then hands the rest to the namespace
backend's teardown (processes, namespaces, and with them veths, addresses and routes).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from drills.backend import Capabilities, NodeOps, TeardownReport
from drills.clock import Clock, SystemClock
from drills.docker import nslink
from drills.docker.api import NODE_LABEL, RUN_LABEL, ContainerSpec, Docker
from drills.docker.nodes import run_exec_lines, set_node_sysctls
from drills.docker.ops import DockerOps
from drills.errors import BackendError, DrillError
from drills.netns import kernel
from drills.netns.backend import (
    CapabilityLookup,
    Joins,
    Namespaces,
    NetnsBackend,
    namespace_name,
    owned_namespaces,
)
from drills.netns.segments import segment_namespaces
from drills.runs import Run
from drills.scenario.resolved import Node, Service, Topology
from drills.userspace.deploy import RelayHandle

Log = Callable[[str], None]
START_WORKERS = 8  # containers started at once: the engine serialises much of it; more buys nothing here
SERVICE_POLL_S = 0.05
READY_POLL_S = 0.5  # a readiness command is a `docker exec` (~50 ms): do not hammer the engine


def container_name(run_id: str, node: Node) -> str:
    """The container of a node: the one it attaches to, or drill-RUN-NODE (as its namespace)."""
    assert node.container is not None
    return node.container.attach or namespace_name(run_id, node.name)


def spec_for(run_id: str, node: Node) -> ContainerSpec:
    box = node.container
    assert box is not None
    return ContainerSpec(
        name=container_name(run_id, node),
        image=box.image,
        command=box.command,
        environment=box.environment,
        binds=box.volumes,
        cap_add=box.capabilities,
        privileged=box.privileged,
        hostname=node.name,
        labels=((RUN_LABEL, run_id), (NODE_LABEL, node.name)),
    )


class DockerBackend:
    """Containers and namespaces, wired by veth pairs through the namespace path."""

    name = "docker"

    def __init__(
        self,
        log: Log | None = None,
        service_cwd: Path | None = None,
        docker: Docker | None = None,
        *,
        seed: int | None = None,
        capabilities: CapabilityLookup | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._log = log or (lambda _msg: None)
        self._clock = clock or SystemClock()  # deploy's waits (readiness of containers and services)
        # Deploys the namespace nodes, the links and the configuration of every node: the seed
        # (relays' random choices derive from it) and the capabilities (engine choice) are its.
        self._netns = NetnsBackend(log, service_cwd, seed=seed, capabilities=capabilities, clock=self._clock)
        self._docker = docker
        self._topology: Topology | None = None
        self.engines: Mapping[str, str] = {}  # link -> engine that served it (after deploy; the seam reads it)
        self.relays: dict[str, RelayHandle] = {}  # link -> its relay (userspace links)

    def docker(self) -> Docker:
        if self._docker is None:
            self._docker = Docker.connect()
        return self._docker

    def capabilities(self) -> Capabilities:
        return self._netns.capabilities()  # containers are namespaces on this host's kernel

    def ops(self, run: Run, clock: Clock) -> NodeOps:
        """The node operations of `run`, deployed by this backend (`deploy` sets the topology)."""
        assert self._topology is not None, "deploy first"
        namespaces = {node.name: self.namespace_of(run, node.name) for node in self._topology.nodes}
        namespaces |= segment_namespaces(run.run_id, self._topology)  # a member port's degrade
        return DockerOps(run, self._topology, namespaces, self.engines, clock, self._log, self.start_service, self.docker)

    def namespace_of(self, run: Run, node: str) -> str:
        return namespace_name(run.run_id, node)

    # ------------------------------------------------------------------ deploy

    def deploy(self, topology: Topology, run: Run) -> None:
        self._topology = topology
        kernel.require_root()
        started = time.perf_counter()
        boxes = [node for node in topology.nodes if node.kind == "container"]
        created = [node for node in boxes if node.container and not node.container.attach]
        attached = [node for node in boxes if node.container and node.container.attach]
        docker = self.docker()
        for image in sorted({node.container.image for node in created if node.container}):
            if not docker.image_exists(image):
                raise BackendError(f"image {image} not found; build it offline with `drill image build` (no registry here)")

        def provide(ns: Namespaces) -> None:
            # Attached containers are the lab's: only the namespace binding is ours ("netns-attach":
            # the namespace backend's teardown would kill every process in a namespace it journaled).
            run.journal.record({"op": "netns-attach", "name": ns[node.name]} for node in attached)
            for node in attached:
                with run.journal.creating("netns-attach", [ns[node.name]]):
                    self._attach(docker, node, ns[node.name])
            run.journal.record(
                entry
                for node in created
                for entry in (
                    {"op": "container", "name": container_name(run.run_id, node), "node": node.name},
                    {"op": "netns", "name": ns[node.name]},
                )
            )
            self._start_all(docker, run, created, ns)
            self._log(
                f"{len(created)} container(s) started, {len(attached)} attached in {time.perf_counter() - started:.2f} s"
            )

        def finish(ns: Namespaces) -> None:
            for node in created:
                run_exec_lines(docker, container_name(run.run_id, node), node)
                for service in node.services:
                    self.start_service(run, ns[node.name], node, service)
            for node in created:
                wait_ready(docker, container_name(run.run_id, node), ns[node.name], node, self._log, self._clock)

        joins = Joins(
            provided=frozenset(node.name for node in boxes),
            found=frozenset(node.name for node in attached),
            provide=provide,
            finish=finish,
        )
        try:
            self._netns.deploy_with(topology, run, joins)
        finally:  # what the pipeline chose and started, as far as it got
            self.engines = self._netns.engines
            self.relays = self._netns.relays

    def _attach(self, docker: Docker, node: Node, namespace: str) -> None:
        assert node.container is not None and node.container.attach is not None
        state = docker.state(node.container.attach)
        if state is None or not state.running:
            status = "does not exist" if state is None else f"is {state.status}"
            raise BackendError(f"node {node.name}: container {node.container.attach} {status}; deploy the lab first")
        nslink.bind(namespace, state.pid)

    def _start_all(self, docker: Docker, run: Run, nodes: list[Node], ns: Namespaces) -> None:
        """Create and start containers in parallel; bind each one's namespace as it comes up. On
        an error or a signal, every start already under way finishes before this raises, so the
        teardown that follows sees every container that exists (each was journaled first)."""

        def start(node: Node) -> None:
            state = docker.create_and_start(spec_for(run.run_id, node))
            if not state.running or not state.pid:
                raise BackendError(f"container {state.name} is {state.status} right after start (see `docker logs {state.name}`)")
            with run.journal.creating("netns", [ns[node.name]]):
                nslink.bind(ns[node.name], state.pid)
            set_node_sysctls(ns[node.name])

        if not nodes:
            return
        pool = ThreadPoolExecutor(max_workers=min(START_WORKERS, len(nodes)), thread_name_prefix="drills-docker")
        futures: list[Future[None]] = []
        try:
            futures = [pool.submit(start, node) for node in nodes]
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            while True:
                try:
                    pool.shutdown(wait=True)
                    break
                except BaseException:  # a second Ctrl-C: still wait, or a container escapes teardown
                    continue
            raise
        pool.shutdown(wait=True)

    # ------------------------------------------------------------------ services

    def start_service(
        self, run: Run, namespace: str, node: Node, service: Service, on_started: Callable[[], None] | None = None
    ) -> int:
        """Start a service (journaled as on namespaces) and wait until it is ready; returns its
        pid on the host. In a container node it runs inside the container (`docker exec`: its
        files, its cgroup, so `docker pause` and `kill` reach it), output in
        /var/log/drills-SERVICE.log there."""
        if node.kind != "container":
            return self._netns.start_service(run, namespace, node, service, on_started)
        container = container_name(run.run_id, node)
        # Not synced, as on namespaces: the container dies with the machine.
        run.journal.record([{"op": "service", "ns": namespace, "node": node.name, "name": service.name}], sync=False)
        log_inside = f"/var/log/drills-{service.name}.log"
        argv = ["/bin/sh", "-c", f"exec >>{log_inside} 2>&1 </dev/null; {service.command}"]
        _code, _output, pid = self.docker().exec(container, argv, detach=True, environment=dict(service.env))
        if not pid:
            raise BackendError(f"service {node.name}/{service.name} did not start in container {container}")
        if on_started is not None:
            on_started()
        ticks = kernel.process_start_ticks(pid)
        if ticks is not None:  # else it is gone already: nothing to stop, and a pid alone is never journaled
            run.journal.record([{"op": "process", "ns": namespace, "pid": pid, "start": ticks, "service": service.name}])
        _wait_service(self.docker(), container, namespace, node, service, pid, ticks, log_inside, self._clock)
        self._log(f"service {node.name}/{service.name} started in its container (pid {pid})")
        return pid

    def service_processes(self, run: Run, namespace: str, service: str) -> list[tuple[int, int | None]]:
        return self._netns.service_processes(run, namespace, service)

    # ------------------------------------------------------------------ teardown

    def teardown(self, run: Run) -> TeardownReport:
        report = TeardownReport()
        journal = run.journal.checked()
        names = [str(e["name"]) for e in journal.entries if e["op"] == "container"]
        if names:
            self._remove_containers(run, names, report)
        for name in owned_namespaces(journal, "netns-attach", report):
            try:
                if kernel.delete_namespace(name):  # only our binding: the lab's container lives on
                    report.removed.append(f"namespace binding {name}")
            except BackendError as exc:
                report.left.append(f"namespace binding {name}: {exc} (umount /run/netns/{name})")
        rest = self._netns.teardown(run)  # reads the journal again, and reports its refusals
        report.removed.extend(rest.removed)
        report.left.extend(rest.left)
        report.refused.extend(rest.refused)
        return report

    def _remove_containers(self, run: Run, journaled: list[str], report: TeardownReport) -> None:
        """Remove the run's containers: those carrying its label, found by label (so one the
        journal missed is found too). A journaled name whose container lacks the label is not
        the run's (a name clash at create, or a planted entry): left alone and reported."""
        try:
            docker = self.docker()
            labelled = [c.name for c in docker.find({RUN_LABEL: run.run_id})]
            for name in journaled:
                state = None if name in labelled else docker.state(name)
                if state is not None and state.labels.get(RUN_LABEL) != run.run_id:
                    report.refused.append(f"container {name}: no label {RUN_LABEL}={run.run_id}: not the run's, left alone")
        except DrillError as exc:
            report.left.extend(f"container {name}: {exc} (docker rm -f {name})" for name in journaled)
            return

        def remove(name: str) -> str | None:
            try:
                return f"container {name}" if docker.remove(name) else None
            except DrillError as exc:
                report.left.append(f"container {name}: {exc} (docker rm -f {name})")
                return None

        # In parallel, as they were started; every removal finishes before teardown goes on.
        with ThreadPoolExecutor(max_workers=max(1, min(START_WORKERS, len(labelled)))) as pool:
            report.removed.extend(done for done in pool.map(remove, labelled) if done)




def _port_open(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(docker: Docker, container: str, namespace: str, node: Node, log: Log, clock: Clock) -> None:
    """Block until a container node's readiness check passes (BackendError after its timeout)."""
    assert node.container is not None
    ready = node.container.ready
    if ready is None:
        return
    started = clock.now_s()
    output = ""
    while True:
        if ready.tcp_port is not None:
            if kernel.run_in_namespace(namespace, functools.partial(_port_open, ready.tcp_port)):
                break
        else:
            assert ready.command is not None
            code, output, _pid = docker.exec(container, ["/bin/sh", "-c", ready.command])
            if code == 0:
                break
        if clock.now_s() - started > ready.timeout_s:
            raise BackendError(
                f"node {node.name} not ready after {ready.timeout_s:g} s (check: {ready.command or ready.tcp_port}); "
                f"last output: {output.strip()[-300:]}"
            )
        clock.sleep_until(clock.now_s() + READY_POLL_S)
    log(f"node {node.name} ready after {clock.now_s() - started:.1f} s")


def _wait_service(
    docker: Docker,
    container: str,
    namespace: str,
    node: Node,
    service: Service,
    pid: int,
    ticks: int | None,
    log: str,
    clock: Clock,
) -> None:
    """Until a container service's readiness check passes (BackendError when it exits first, or
    after its timeout, with the end of its log)."""
    ready = service.ready
    what = f"service {node.name}/{service.name}"
    deadline = clock.now_s() + (ready.timeout_s if ready else 0.0)
    while True:
        alive = ticks is not None and kernel.process_start_ticks(pid) == ticks and not _zombie(pid)
        if not alive:
            tail = docker.exec(container, ["tail", "-n", "5", log])[1].strip()
            raise BackendError(f"{what} exited before it was ready; its log ends:\n{tail}")
        if ready is None:
            return
        if ready.tcp_port is not None:
            if kernel.run_in_namespace(namespace, functools.partial(_port_open, ready.tcp_port)):
                return
        elif ready.command is not None and docker.exec(container, ["/bin/sh", "-c", ready.command])[0] == 0:
            return
        if clock.now_s() > deadline:
            tail = docker.exec(container, ["tail", "-n", "5", log])[1].strip()
            raise BackendError(f"{what} not ready after {ready.timeout_s:g} s; its log ends:\n{tail}")
        clock.sleep_until(clock.now_s() + SERVICE_POLL_S)


def _zombie(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return raw[raw.rindex(")") + 2] in "ZX"

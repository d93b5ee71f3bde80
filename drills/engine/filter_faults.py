"""Faults made of nftables rules inside the run's own namespaces: `blackhole` and `partition`.

Each fault owns one table per node it changes, named after its step (`drills_<id>_<hash>`), and
never touches anything else: revert deletes exactly that table. The ruleset text and what the
kernel must list back are both derived from the same rule data at build time, before the drill
clock starts; applying costs one `nft` process per node (all started at once), then one
`nft -j list table` per node to confirm the kernel holds exactly those rules.

- `blackhole` (a gray failure): a `netdev` table in each end's namespace with an ingress chain
  bound to the link's interface, dropping every frame (ARP and neighbour discovery included).
  Carrier stays up on both ends, so routes through the link stay installed and no backup route
  takes over: what BFD exists to catch and carrier detection misses.
- `partition`: an `inet` table in every node of a group that must not hear another group, with
  one prerouting chain at raw priority (-300, before conntrack) dropping packets whose source is
  any address of a node in such a group. The drops are stateless, so established connections
  are cut too (iptables partitions that accept ESTABLISHED first leak them). A node of a group
  drops those packets whether they are for itself or in transit (it stands on the far side of
  the cut); nodes in no group forward unchanged.

`nft` comes from the Debian package `nftables`; `requirements()` says, before anything is
deployed, whether this host has it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from drills.engine.faults import FaultContext, register
from drills.errors import BackendError, EnvironmentProblem
from drills.netns import kernel
from drills.rules import Chain, Match, Rule, Table
from drills.scenario.resolved import Interface, Link, Node, Topology

NFT_PACKAGE = "nftables"  # Debian's (and RHEL's) package for the `nft` command
NFT_KINDS = ("blackhole", "partition")
NFT_TIMEOUT_S = 10.0
# Looked for beside PATH: sbin is often missing from an ordinary user's PATH, even under sudo.
_NFT_FALLBACKS = ("/usr/sbin/nft", "/sbin/nft")
# Before conntrack (-200): a dropped packet creates no conntrack entry, and no state can let an
# established flow through.
PARTITION_PRIORITY = -300
BLACKHOLE_PRIORITY = -500  # ahead of any other ingress chain a node's services might add
# Neighbour discovery passes a partition as ARP does (the inet family never sees ARP): the
# permitted direction of a one-way partition must still resolve its next hop. These messages
# cannot carry application data and never leave the link.
ND_TYPES = ("nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert")
LINK_LOCAL_V6 = "fe80::/10"


# --------------------------------------------------------------------------- the nft command


def find_nft(search_path: str | None = None, fallbacks: Sequence[str] = _NFT_FALLBACKS) -> str | None:
    """Path of the `nft` command (on `search_path`, by default $PATH, then in sbin), or None."""
    found = shutil.which("nft", path=search_path)
    if found is not None:
        return found
    return next((path for path in fallbacks if os.access(path, os.X_OK)), None)


def _missing_nft(kind: str) -> str:
    return (
        f"fault '{kind}' needs the `nft` command, which is not installed "
        f"(Debian/Ubuntu: apt-get install {NFT_PACKAGE}; RHEL: dnf install {NFT_PACKAGE})"
    )


def requirements(kind: str, find: Callable[[], str | None] = find_nft) -> list[str]:
    """What fault `kind` needs from this host and does not find, one sentence each; empty when
    nothing is missing (and for kinds this module does not build). Cheap (a PATH lookup):
    meant for the runner's preflight, before anything is deployed."""
    if kind in NFT_KINDS and find() is None:
        return [_missing_nft(kind)]
    return []


def require_nft(kind: str, find: Callable[[], str | None] = find_nft) -> str:
    """Path of `nft`, or EnvironmentProblem naming the package to install."""
    path = find()
    if path is None:
        raise EnvironmentProblem(_missing_nft(kind))
    return path


@dataclass(frozen=True)
class NftJob:
    """One `nft` invocation in one node's namespace."""

    node: str
    args: tuple[str, ...]


def run_nft(nft: str, namespaces: dict[str, str], jobs: Sequence[NftJob], what: str) -> list[str]:
    """Run the jobs, each in its node's namespace, all at once; return their standard outputs.

    Each process is started from a thread that entered the node's namespace, so it is born
    there (never in the host's). Commands go on the command line, not stdin: nothing to feed,
    and nft takes one argument of several `;`-separated commands as one atomic batch."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for job in jobs:
            argv = [nft, *job.args]

            def spawn(argv: list[str] = argv) -> subprocess.Popen[str]:
                return subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )

            try:
                procs.append(kernel.run_in_namespace(namespaces[job.node], spawn))
            except OSError as exc:
                raise BackendError(
                    f"{what}: cannot run {nft} in node {job.node}: {exc.strerror or exc} "
                    f"(the `nft` command comes from the {NFT_PACKAGE} package)"
                ) from exc
        deadline = time.monotonic() + NFT_TIMEOUT_S
        outputs = []
        for job, proc in zip(jobs, procs, strict=True):
            try:
                out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise BackendError(f"{what}: nft in node {job.node} did not finish in {NFT_TIMEOUT_S:g} s") from None
            if proc.returncode != 0:
                said = " ".join(line.strip() for line in err.strip().splitlines()[:1]) or f"status {proc.returncode}"
                raise BackendError(f"{what}: nft in node {job.node} failed: {said}")
            outputs.append(out)
        return outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def table_name(step: Any) -> str:
    """Our table for a step: its id (or fault kind), sanitised for nft, and a short hash of the
    whole step, so two steps never share a table even when their ids sanitise alike."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", getattr(step, "id", None) or str(step.fault))
    digest = hashlib.sha256(repr(step).encode()).hexdigest()[:6]
    return f"drills_{base}_{digest}"


# --------------------------------------------------------------------------- rules as data


def _apply(nft: str, ctx: FaultContext, tables: Sequence[Table], what: str) -> None:
    run_nft(nft, ctx.namespaces, [NftJob(t.node, (t.script(),)) for t in tables], what)
    jobs = [NftJob(t.node, ("-j", "list", "table", t.family, t.name)) for t in tables]
    for table, listing in zip(tables, run_nft(nft, ctx.namespaces, jobs, f"{what}: read back"), strict=True):
        table.check_listing(listing)


def _remove(nft: str, ctx: FaultContext, tables: Sequence[Table], what: str) -> None:
    run_nft(nft, ctx.namespaces, [NftJob(t.node, (t.delete_script(),)) for t in tables], what)
    jobs = [NftJob(t.node, ("-j", "list", "tables", t.family)) for t in tables]
    for table, listing in zip(tables, run_nft(nft, ctx.namespaces, jobs, f"{what}: read back"), strict=True):
        try:
            names = {o["table"]["name"] for o in json.loads(listing)["nftables"] if "table" in o}
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"{what}: node {table.node}: cannot read nft's listing ({exc})") from None
        if table.name in names:
            raise BackendError(f"{what}: node {table.node} still has table {table.family} {table.name}")


# --------------------------------------------------------------------------- blackhole


@dataclass(frozen=True)
class Blackhole:
    """Gray failure on a link: both ends keep carrier, every frame arriving at either end is dropped."""

    link: Link
    nft: str
    tables: tuple[Table, ...]
    reversible: bool = True

    @classmethod
    def from_step(cls, topology: Topology, step: Any) -> Blackhole:
        nft = require_nft("blackhole")
        link = topology.link(step.link)
        name = table_name(step)
        chains: dict[str, list[Chain]] = {}  # node -> chains (a link may loop back to its own node)
        for label, end in (("a", link.a), ("b", link.b)):
            rule = Rule((), "drop")
            chains.setdefault(end.node, []).append(
                Chain(f"ingress_{label}", "ingress", BLACKHOLE_PRIORITY, (rule,), device=end.name)
            )
        tables = tuple(Table(node, "netdev", name, tuple(c)) for node, c in chains.items())
        return cls(link, nft, tables)

    def describe(self, reverted: bool = False) -> str:
        if reverted:
            return f"link {self.link.name}: blackhole lifted"
        return f"link {self.link.name}: blackhole (carrier up, every packet dropped both ways)"

    def touches(self) -> list[str]:
        return [
            f"{t.node}:{c.device} nftables table netdev {t.name}, ingress chain {c.name} dropping every packet (deleted on revert)"
            for t in self.tables
            for c in t.chains
        ]

    def apply(self, ctx: FaultContext) -> None:
        _apply(self.nft, ctx, self.tables, f"blackhole on link {self.link.name}")
        self._confirm_carrier(ctx)

    def revert(self, ctx: FaultContext) -> None:
        _remove(self.nft, ctx, self.tables, f"lift blackhole on link {self.link.name}")

    def _confirm_carrier(self, ctx: FaultContext) -> None:
        """Carrier up on both ends: a gray failure, not a link-down. The lookup by name also
        proves each interface a chain is bound to exists in its node: this kernel (6.18)
        accepts a netdev chain naming a device that does not exist, and hooks nothing."""
        handles = ctx.handles
        for end in (self.link.a, self.link.b):
            state = kernel.link_state(handles.of(end.node), end.name, handles.index(end.node, end.name))
            if not (state.admin_up and state.carrier):
                raise BackendError(
                    f"{end.endpoint} has no carrier under blackhole: this is a link-down, not a gray failure"
                )


register("blackhole")(Blackhole.from_step)


# --------------------------------------------------------------------------- partition


def node_addresses(node: Node) -> tuple[list[IPv4Address], list[IPv6Address]]:
    """Every address a node's packets may carry as their source: loopback and every interface's
    IPv4 and IPv6 addresses (link-local ones are matched by interface, see `Partition`)."""
    v4 = [node.loopback.ip] if node.loopback is not None else []
    v6: list[IPv6Address] = []
    for iface in node.interfaces:
        if iface.ipv4 is not None:
            v4.append(iface.ipv4.ip)
        if iface.ipv6 is not None:
            v6.append(iface.ipv6.ip)
    return v4, v6


def _peer(topology: Topology, iface: Interface) -> Interface | None:
    for link in topology.links:
        if link.a == iface:
            return link.b
        if link.b == iface:
            return link.a
    return None


def blocked_pairs(groups: Sequence[Sequence[str]], one_way: bool) -> list[tuple[int, int]]:
    """(from group, to group) index pairs whose packets are dropped. Symmetric: every ordered pair
    of distinct groups. One way: a group never reaches a later one (with two groups, group 1's
    packets never reach group 2); later groups still reach earlier ones."""
    count = len(groups)
    return [(i, j) for i in range(count) for j in range(count) if i != j and (not one_way or i < j)]


@dataclass(frozen=True)
class Partition:
    """Groups of nodes cut from each other, both ways or one way.

    Each node of a group that must not hear group G gets a prerouting chain dropping packets
    sourced from any address of G's nodes, plus IPv6 link-local packets arriving on its
    interfaces that face a node of G (link-local sources are the kernel's, unknown before
    deploy, and can only come from a direct neighbour)."""

    groups: tuple[tuple[str, ...], ...]
    one_way: bool
    nft: str
    tables: tuple[Table, ...]
    sources: tuple[tuple[str, tuple[str, ...]], ...]  # target node -> the nodes it drops
    reversible: bool = True

    @classmethod
    def from_step(cls, topology: Topology, step: Any) -> Partition:
        nft = require_nft("partition")
        groups = tuple(tuple(group) for group in step.groups)
        one_way = bool(step.one_way)
        name = table_name(step)
        heard_from: dict[int, list[int]] = {}
        for src, dst in blocked_pairs(groups, one_way):
            heard_from.setdefault(dst, []).append(src)
        tables, sources = [], []
        for dst, srcs in sorted(heard_from.items()):
            cut = [member for src in srcs for member in groups[src]]
            v4: set[IPv4Address] = set()
            v6: set[IPv6Address] = set()
            for member in cut:
                a4, a6 = node_addresses(topology.node(member))
                v4.update(a4)
                v6.update(a6)
            for target in groups[dst]:
                node = topology.node(target)
                facing = sorted(
                    iface.name
                    for iface in node.interfaces
                    if (peer := _peer(topology, iface)) is not None and peer.node in cut
                )
                rules = [Rule((Match("icmpv6 type", "icmpv6.type", ND_TYPES),), "accept", counter=False)]
                if v4:
                    rules.append(Rule((_addresses("ip", v4),), "drop"))
                if v6:
                    rules.append(Rule((_addresses("ip6", v6),), "drop"))
                if facing:
                    by_iface = Match("iifname", "meta.iifname", tuple(facing), quoted=True)
                    rules.append(Rule((by_iface, Match("ip6 saddr", "ip6.saddr", (LINK_LOCAL_V6,))), "drop"))
                chain = Chain("partition", "prerouting", PARTITION_PRIORITY, tuple(rules))
                tables.append(Table(target, "inet", name, (chain,)))
                sources.append((target, tuple(cut)))
        return cls(groups, one_way, nft, tuple(tables), tuple(sources))

    def describe(self, reverted: bool = False) -> str:
        shown = [f"{{{', '.join(group)}}}" for group in self.groups]
        if self.one_way:
            text = f"partition {' -> '.join(shown)} (one way: packets never reach a later group)"
        else:
            text = f"partition {' | '.join(shown)}"
        return f"{text} healed" if reverted else text

    def touches(self) -> list[str]:
        return [
            f"{node}: nftables table inet {self.tables[0].name}, prerouting chain dropping packets from "
            f"{', '.join(cut)} (every address; deleted on revert)"
            for node, cut in self.sources
        ]

    def apply(self, ctx: FaultContext) -> None:
        _apply(self.nft, ctx, self.tables, "partition")

    def revert(self, ctx: FaultContext) -> None:
        _remove(self.nft, ctx, self.tables, "heal partition")


def _addresses(family: str, addresses: Iterable[IPv4Address | IPv6Address]) -> Match:
    ordered = sorted(addresses, key=lambda a: a.packed)
    return Match(f"{family} saddr", f"{family}.saddr", tuple(str(a) for a in ordered))


register("partition")(Partition.from_step)

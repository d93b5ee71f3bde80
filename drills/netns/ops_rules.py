"""Packet-filter operations on namespaces, through nf_tables: every node's table (or, armed,
its rules) committed, then each confirmed; deletes likewise, idempotent.

In-process, no process and no parser on the clock: each table goes as one netlink batch built
here (drills.netns.nfmsg, nft's own encoding) on a socket per node opened before the clock,
every node's batch sent before any acknowledgement is read, and is read back over the same
sockets (drills.netns.nfread). An armed table (put in place before the clock with its rules
loaded in chains nothing jumps to, read back then) is applied by one jump rule per base chain,
confirmed by the kernel's echo of the rules it committed, read with the acknowledgement: no
request after the commit. A table nfmsg cannot encode goes through libnftables in-process
(drills.netns.libnft, a context per node); without the library, through the `nft` command
(drills.netns.nft: a process per node and per read-back, a wider window for the fault's
instant, which the figures' accuracy then states). Those two read back nft's JSON listing
(`nft.check_listing`); nfread compares the same signatures."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from drills.errors import BackendError
from drills.netns import kernel, libnft, nfmsg, nfread, nft
from drills.netns.ops_base import OpsBase
from drills.rules import Table


class RuleOpsMixin(OpsBase):
    _nft_path: str | None = None
    _library: libnft.Library | None = None
    _library_looked_up = False
    _netlink_batches = True  # encodable tables go in and are read back over nf_tables netlink
    _contexts: dict[str, libnft.Context] | None = None
    _nf_sockets: dict[str, nfmsg.NfSocket] | None = None
    _batches: dict[tuple[str, Table], tuple[bytes, int]] | None = None
    # Tables armed before the clock (`arm_rules`: hooked base chains, empty, and the rules
    # loaded beside them): applying them adds a jump per base chain, reverting flushes those.
    _armed: set[Table] | None = None
    # Armed tables in force (applied, not yet reverted): applying one again would add its
    # jumps twice (a rules batch appends; only creating a table clashes, EEXIST).
    _ruled: set[Table] | None = None
    # False: an armed table is read back after the commit, as before its echo was used
    # (bench/apply_filters.py compares both in one run).
    echo_confirms = True

    def _nft(self) -> str:
        # Looked up once per run, before the first rule goes in (not on every apply).
        if self._nft_path is None:
            self._nft_path = nft.require_nft()
        return self._nft_path

    def nft_library(self) -> libnft.Library | None:
        """libnftables, loaded once per run (None: run the `nft` command instead)."""
        if not self._library_looked_up:
            self._library, self._library_looked_up = libnft.load(), True
            if self._library is None:
                self.log("nftables: libnftables not found; packet-filter faults run the `nft` command on the clock")
        return self._library

    def use_nft_library(self, library: libnft.Library | None, *, netlink: bool = True) -> None:
        """Use this library (None: the `nft` command) from now on, instead of looking it up;
        `netlink` False: every table through it (or the command), none as in-process batches."""
        self._close_contexts()
        self._library, self._library_looked_up = library, True
        self._netlink_batches = netlink

    def _context(self, node: str) -> libnft.Context | None:
        library = self.nft_library()
        if library is None:
            return None
        with self._lock:
            contexts = self._contexts if self._contexts is not None else {}
            self._contexts = contexts
            context = contexts.get(node)
        if context is None:
            context = libnft.Context.open(library, node, self.namespaces[node])
            with self._lock:
                contexts[node] = context
        return context

    def warm(self) -> None:
        super().warm()
        # A context per node before the clock: on it, a fault costs its commands only.
        library = self.nft_library()
        for node in self.topology.nodes:
            if library is not None:
                self._context(node.name)
            if self._netlink_batches:
                self._nf_socket(node.name)

    def _nf_socket(self, node: str) -> nfmsg.NfSocket:
        with self._lock:
            sockets = self._nf_sockets if self._nf_sockets is not None else {}
            self._nf_sockets = sockets
            found = sockets.get(node)
        if found is None:
            found = kernel.run_in_namespace(self.namespaces[node], lambda: nfmsg.open_socket(node))
            with self._lock:
                sockets[node] = found
        return found

    def _batch(self, kind: str, table: Table) -> tuple[bytes, int]:
        # Built once per table and kind (a fault applied again sends the same bytes).
        with self._lock:
            batches = self._batches if self._batches is not None else {}
            self._batches = batches
        key = (kind, table)
        if key not in batches:
            batches[key] = _BUILDERS[kind](table)
        return batches[key]

    def _is_armed(self, table: Table) -> bool:
        with self._lock:
            return table in (self._armed or ())

    def arm_rules(self, tables: Sequence[Table]) -> None:
        """Put each table in place now, before the clock, with nothing in force: its base
        chains hooked and empty (registering a hook can flip a kernel static key, code patched
        on every CPU, milliseconds on a busy machine), and its rules and sets loaded in regular
        chains nothing jumps to yet, all read back here. On the clock, applying is then one
        jump rule per base chain. Only on the netlink path; armed tables accept everything,
        and are deleted by `close` (with the node, when it goes first)."""
        if not self._netlink_batches:
            return
        fresh = [t for t in dict.fromkeys(tables) if nfmsg.encodable(t) and not self._is_armed(t)]
        if not fresh:
            return
        what = _what("prepare", fresh)
        self._send_batches(fresh, [self._batch("arm", t) for t in fresh], what)
        with self._lock:
            self._armed = (self._armed or set()) | set(fresh)
        for table in fresh:  # hooks and loaded rules, read back once here: applying confirms its jumps only
            nfread.check_armed(self._nf_socket(table.node), table, what)

    def forget(self, node: str) -> None:
        super().forget(node)
        with self._lock:
            self._armed = {t for t in self._armed or () if t.node != node}  # gone with the namespace
            self._ruled = {t for t in self._ruled or () if t.node != node}
            context = (self._contexts or {}).pop(node, None)
            sock = (self._nf_sockets or {}).pop(node, None)
        if context is not None:
            context.close()  # bound to the namespace that was replaced; the next use opens one
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self.disarm_rules()
        self._close_contexts()
        super().close()

    def disarm_rules(self) -> None:
        """Delete the tables `arm_rules` put in place (best effort: the run's own nodes go at
        teardown with them; an attached lab's containers stay, and must not keep them)."""
        with self._lock:
            armed, self._armed, self._ruled = list(self._armed or ()), None, None
        if armed:
            with contextlib.suppress(BackendError):
                self._send_batches(armed, [self._batch("delete", t) for t in armed], _what("remove", armed))

    def _close_contexts(self) -> None:
        with self._lock:
            contexts, self._contexts = self._contexts or {}, None
            sockets, self._nf_sockets = self._nf_sockets or {}, None
        for context in contexts.values():
            context.close()
        for sock in sockets.values():
            sock.close()

    def apply_rules(self, tables: Sequence[Table], on_applied: Callable[[], None] | None = None) -> None:
        what = _what("apply", tables)
        if self._netlink_batches and all(nfmsg.encodable(t) for t in tables):
            armed = [self._is_armed(t) for t in tables]
            with self._lock:
                ruled = self._ruled if self._ruled is not None else set()
                self._ruled = ruled
                twice = [t for t, a in zip(tables, armed, strict=True) if a and t in ruled]
                if not twice:
                    ruled.update(t for t, a in zip(tables, armed, strict=True) if a)
            if twice:
                raise BackendError(f"{what}: node {twice[0].node} has table {twice[0].name}'s rules in force already")
            batches = [self._batch("jumps" if a else "create", t) for t, a in zip(tables, armed, strict=True)]
            echoes: list[list[tuple[int, bytes]]] = [[] for _ in tables]
            self._send_batches(tables, batches, what, echoes)
            if on_applied is not None:
                on_applied()
            for table, was_armed, echo in zip(tables, armed, echoes, strict=True):
                if was_armed and self.echo_confirms:  # the kernel's echo of its commit shows the jumps
                    nfread.check_echo(nfmsg.jumps(table), echo, what)
                elif was_armed:
                    nfread.check_table(self._nf_socket(table.node), nfmsg.jumps(table), what)
                else:
                    nfread.check_table(self._nf_socket(table.node), table, what)
            return
        commands = [nft.script(t) for t in tables]
        reads = [f"list table {t.family} {t.name}" for t in tables]
        listings = self._run_all(tables, commands, reads, what, on_applied)
        for table, listing in zip(tables, listings, strict=True):
            nft.check_listing(table, listing)

    def remove_rules(self, tables: Sequence[Table]) -> None:
        what = _what("remove", tables)
        if self._netlink_batches and all(t.family in nfmsg.FAMILIES for t in tables):
            armed = [self._is_armed(t) for t in tables]
            with self._lock:
                self._ruled = (self._ruled or set()) - set(tables)
            self._send_batches(tables, [self._batch("flush" if a else "delete", t) for t, a in zip(tables, armed, strict=True)], what)
            for table, was_armed in zip(tables, armed, strict=True):
                if was_armed:  # the table stays armed: no jump may be left in a base chain
                    nfread.check_table(self._nf_socket(table.node), table.without_rules(), what)
                elif nfmsg.table_exists(self._nf_socket(table.node), table, f"{what}: read back"):
                    raise BackendError(f"{what}: node {table.node} still has table {table.family} {table.name}")
            return
        commands = [nft.delete_script(t) for t in tables]
        reads = [f"list tables {t.family}" for t in tables]
        for table, listing in zip(tables, self._run_all(tables, commands, reads, what), strict=True):
            if table.name in nft.listed_tables(listing, f"{what}: node {table.node}"):
                raise BackendError(f"{what}: node {table.node} still has table {table.family} {table.name}")

    def _run_all(
        self,
        tables: Sequence[Table],
        commands: list[str],
        reads: list[str],
        what: str,
        on_applied: Callable[[], None] | None = None,
    ) -> list[str]:
        """Every node's change (all acknowledged: `on_applied` is called then), then every
        node's read-back listing."""
        contexts = [self._context(t.node) for t in tables]
        if all(context is not None for context in contexts):
            live = [c for c in contexts if c is not None]
            for context, command in zip(live, commands, strict=True):
                context.run(command, what)  # returns once the kernel committed the batch
            if on_applied is not None:
                on_applied()
            return [context.run(read, f"{what}: read back") for context, read in zip(live, reads, strict=True)]
        path = self._nft()
        jobs = [nft.NftJob(t.node, (command,)) for t, command in zip(tables, commands, strict=True)]
        nft.run_nft(path, self.namespaces, jobs, what, self.clock)
        if on_applied is not None:
            on_applied()
        jobs = [nft.NftJob(t.node, ("-j", *read.split())) for t, read in zip(tables, reads, strict=True)]
        return nft.run_nft(path, self.namespaces, jobs, f"{what}: read back", self.clock)


    def _send_batches(
        self,
        tables: Sequence[Table],
        batches: Sequence[tuple[bytes, int]],
        what: str,
        echoes: Sequence[list[tuple[int, bytes]]] | None = None,
    ) -> None:
        """Every node's batch sent, then every one's acknowledgement read (and, into `echoes`,
        one list per table, what the kernel echoed before it). The kernel runs a batch within
        its `send` (nfnetlink works in the sender's context), so the commits follow each other
        without a read between them; nothing is parsed or fetched on the clock."""
        sent: list[tuple[nfmsg.NfSocket, int, list[tuple[int, bytes]] | None]] = []
        failure: BackendError | None = None
        for i, (table, (batch, acks)) in enumerate(zip(tables, batches, strict=True)):
            sock = self._nf_socket(table.node)
            try:
                sock.send(batch, what)
            except BackendError as exc:  # the batches already sent are still answered: read them
                failure = exc
                break
            sent.append((sock, acks, echoes[i] if echoes is not None else None))
        for sock, acks, echo in sent:
            try:
                sock.acknowledged(acks, what, echo)
            except BackendError as exc:  # the others' answers are still read: each socket stays in step
                failure = failure or exc
        if failure is not None:
            raise failure


def _what(verb: str, tables: Sequence[Table]) -> str:
    names = sorted({t.name for t in tables})
    return f"{verb} rules {', '.join(names)}"


_BUILDERS: dict[str, Callable[[Table], tuple[bytes, int]]] = {
    "create": nfmsg.create_batch,
    "arm": nfmsg.arm_batch,
    "jumps": nfmsg.jumps_batch,
    "flush": nfmsg.flush_batch,
    "delete": nfmsg.delete_batch,
}

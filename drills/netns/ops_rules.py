"""Packet-filter operations on namespaces, through nftables (drills.netns.nft): every node's
table created at once, then each read back; deletes likewise, idempotent."""

from __future__ import annotations

from collections.abc import Sequence

from drills.errors import BackendError
from drills.netns import nft
from drills.netns.ops_base import OpsBase
from drills.rules import Table


class RuleOpsMixin(OpsBase):
    _nft_path: str | None = None

    def _nft(self) -> str:
        # Looked up once per run, before the first rule goes in (not on every apply).
        if self._nft_path is None:
            self._nft_path = nft.require_nft()
        return self._nft_path

    def apply_rules(self, tables: Sequence[Table]) -> None:
        path, what = self._nft(), _what("apply", tables)
        jobs = [nft.NftJob(t.node, (nft.script(t),)) for t in tables]
        nft.run_nft(path, self.namespaces, jobs, what, self.clock)
        reads = [nft.NftJob(t.node, ("-j", "list", "table", t.family, t.name)) for t in tables]
        for table, listing in zip(
            tables, nft.run_nft(path, self.namespaces, reads, f"{what}: read back", self.clock), strict=True
        ):
            nft.check_listing(table, listing)

    def remove_rules(self, tables: Sequence[Table]) -> None:
        path, what = self._nft(), _what("remove", tables)
        jobs = [nft.NftJob(t.node, (nft.delete_script(t),)) for t in tables]
        nft.run_nft(path, self.namespaces, jobs, what, self.clock)
        reads = [nft.NftJob(t.node, ("-j", "list", "tables", t.family)) for t in tables]
        for table, listing in zip(
            tables, nft.run_nft(path, self.namespaces, reads, f"{what}: read back", self.clock), strict=True
        ):
            if table.name in nft.listed_tables(listing, f"{what}: node {table.node}"):
                raise BackendError(f"{what}: node {table.node} still has table {table.family} {table.name}")


def _what(verb: str, tables: Sequence[Table]) -> str:
    names = sorted({t.name for t in tables})
    return f"{verb} rules {', '.join(names)}"

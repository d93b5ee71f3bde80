"""Packet-filter operations on namespaces, through nftables. (Issue 12: filled in by the
filter-fault split.)"""

from __future__ import annotations

from collections.abc import Sequence

from drills.netns.ops_base import OpsBase
from drills.rules import Table


class RuleOpsMixin(OpsBase):
    def apply_rules(self, tables: Sequence[Table]) -> None:
        raise NotImplementedError

    def remove_rules(self, tables: Sequence[Table]) -> None:
        raise NotImplementedError

"""Impairment operations on namespaces: kernel qdiscs on a veth end, or the userspace relay of
a TAP-served link, behind one operation. (Issue 12: filled in by the degrade split.)"""

from __future__ import annotations

from collections.abc import Sequence

from drills.backend import Impairment
from drills.netns.ops_base import OpsBase


class ImpairmentOpsMixin(OpsBase):
    def impair(self, changes: Sequence[Impairment]) -> None:
        raise NotImplementedError

    def link_engine(self, link: str) -> str:
        return self.engines[link]

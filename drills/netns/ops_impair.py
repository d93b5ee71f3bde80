"""Impairment operations on namespaces: kernel qdiscs on a veth end (drills.netns.qdisc), or the
userspace relay of a TAP-served link (its control channel), behind one operation.

A relay connection, like a netlink socket, serves one caller at a time: each thread (the drill
clock's, a ramp's driver) gets its own per link, kept until `close`; those of a thread that has
ended are closed when the next thread opens one (a repeated ramp starts a driver thread each
time, and a relay serves a bounded number of control connections)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from drills.backend import Impairment
from drills.engines import USERSPACE
from drills.impairment import at_start
from drills.netns import qdisc, tc
from drills.netns.ops_base import OpsBase
from drills.scenario.resolved import Interface
from drills.userspace import control
from drills.userspace.control import RelayControl
from drills.userspace.impair import Impairments
from drills.userspace.profile import from_settings


class ImpairmentOpsMixin(OpsBase):
    def impair(self, changes: Sequence[Impairment]) -> None:
        """See `drills.backend.ImpairmentOps.impair`. Settings with a ramp or a handover go in at
        their start (`drills.impairment.at_start`), the kernel's as a netem its driver can change
        in place; kernel changes are all requested before any is read back."""
        kernel = [c for c in changes if self.engines[c.link.name] != USERSPACE]
        for change in kernel:  # all issued first ...
            end, ctl, index = self._egress(change)
            if change.settings is None:
                qdisc.remove(ctl, index, end, self.log)
            else:
                qdisc.install(ctl, index, end, change.settings, in_place=change.in_place)
        for change in changes:
            if self.engines[change.link.name] == USERSPACE:
                # No impairment is the relay passing frames through untouched; it reads back.
                params = from_settings(at_start(change.settings)) if change.settings is not None else Impairments()
                self._relay(change.link.name).set(change.direction, params)
        for change in kernel:  # ... then each read back
            end, ctl, index = self._egress(change)
            if change.settings is None:
                qdisc.confirm_removed(ctl, index, end)
            else:
                qdisc.confirm_installed(ctl, index, end, change.settings)

    def link_engine(self, link: str) -> str:
        return self.engines[link]

    def warm(self) -> None:
        super().warm()
        for link, engine in self.engines.items():
            if engine == USERSPACE:
                self._relay(link)  # connected before the clock starts, as netlink handles are

    def close(self) -> None:
        with self._lock:
            registry = self._relay_registry()
            for _thread, relays in registry:
                for relay in relays.values():
                    relay.close()
            registry.clear()
        super().close()

    def _relay_registry(self) -> list[tuple[threading.Thread, dict[str, RelayControl]]]:
        """Every thread's relay connections (under `_lock`)."""
        registry: list[tuple[threading.Thread, dict[str, RelayControl]]]
        registry = self.__dict__.setdefault("_relays", [])
        return registry

    def _egress(self, change: Impairment) -> tuple[Interface, tc.Tc, int]:
        """The sending end of the change's direction, the qdisc requests of its node (on this
        thread's struct-built rtnetlink socket), and its interface index."""
        end = change.link.a if change.direction == "a-to-b" else change.link.b
        handles = self.handles
        return end, tc.Tc(handles.raw(end.node)), handles.index(end.node, end.name)

    def _relay(self, link: str) -> RelayControl:
        """This thread's connection to the relay of `link` (opened once)."""
        mine: dict[str, RelayControl] | None = getattr(self._local, "relays", None)
        if mine is None:
            mine = self._local.relays = {}
            with self._lock:
                registry = self._relay_registry()
                for thread, relays in [entry for entry in registry if not entry[0].is_alive()]:
                    registry.remove((thread, relays))
                    for relay in relays.values():
                        relay.close()
                registry.append((threading.current_thread(), mine))
        if link not in mine:
            mine[link] = RelayControl(control.socket_path(self.run.dir, link))
        return mine[link]

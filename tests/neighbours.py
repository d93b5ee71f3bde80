"""Permanent neighbour entries for the two ends of a test link.

A test that impairs a link must measure the impairment alone. Without this, the first packets of
a flow wait for ARP, whose request crosses the impaired direction too: one lost request (10 % of
the time at 10 % loss) holds the flow for the kernel's 1 s retransmit while the unresolved queue
(unres_qlen_bytes, ~270 small packets) overflows, and ~700 packets of a 1000 packets/s flow are
lost outside netem. Later, an entry going stale is re-probed through the same lossy direction.
Pinned entries (NUD_PERMANENT) take ARP off the path: no resolution, no probe, nothing to lose.
"""

from __future__ import annotations

import json
import subprocess


def _mac(namespace: str, ifname: str) -> str:
    shown = subprocess.run(
        ["ip", "-n", namespace, "-j", "link", "show", "dev", ifname], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    return str(json.loads(shown)[0]["address"])


def pin(namespace: str, ifname: str, peer_namespace: str, peer_ifname: str, peer_address: str) -> None:
    """In `namespace`, a permanent entry for `peer_address` at the MAC of the peer's interface."""
    mac = _mac(peer_namespace, peer_ifname)
    subprocess.run(
        ["ip", "-n", namespace, "neigh", "replace", peer_address, "lladdr", mac, "dev", ifname, "nud", "permanent"],
        check=True, timeout=30,
    )  # fmt: skip


def pin_both(ends: tuple[tuple[str, str, str], tuple[str, str, str]]) -> None:
    """Each end (namespace, interface, IPv4 address) gets a permanent entry for the other."""
    (ns_a, if_a, addr_a), (ns_b, if_b, addr_b) = ends
    pin(ns_a, if_a, ns_b, if_b, addr_b)
    pin(ns_b, if_b, ns_a, if_a, addr_a)

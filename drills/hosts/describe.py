"""What `drill plan`, `drill validate` and `drill doctor` say about hosts and placement: plain
lines and JSON data (the face renders them; nothing here prints)."""

from __future__ import annotations

from typing import Any

from drills.backend import VXLAN_OVERHEAD_V4_BYTES, VXLAN_OVERHEAD_V6_BYTES, vxlan_overhead_bytes
from drills.hosts.records import Host, Inventory, Placement

MAX_LISTED_NODES = 12  # nodes named per host; the rest are counted


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def host_text(host: Host) -> str:
    """How a host is reached, and its tunnels' source: `r1: root@192.0.2.1:22, underlay ...`."""
    if host.local:
        reach = "this machine (ansible_connection=local)"
    else:
        user = f"{host.user}@" if host.user else ""
        reach = f"ssh {user}{host.address}:{host.port}" + (" with sudo" if host.become else "")
    underlay = host.underlay or "none (set drills_underlay)"
    return f"{host.name}: {reach}; underlay {underlay}, MTU {host.underlay_mtu}"


def inventory_lines(inventory: Inventory) -> list[str]:
    """The inventory's hosts, one line each (`drill doctor --inventory`)."""
    lines = [f"inventory {inventory.path}: {_plural(len(inventory.hosts), 'host')}"]
    lines.extend(f"  {host_text(host)}" for host in inventory.hosts)
    return lines


def plan_lines(inventory: Inventory, placement: Placement) -> list[str]:
    """`drill plan`: each host (address, underlay, its nodes), then each cross-host link (its
    hosts, VNI index, MTU, UDP port)."""
    how = "as given by the nodes' host:" if placement.how == "given" else "automatic: balanced, fewest cross-host links"
    lines = [f"placement on {_plural(len(placement.hosts), 'host')} of inventory {inventory.path} ({how})"]
    for host in inventory.hosts:
        nodes = placement.nodes_on(host.name)
        listed = ", ".join(nodes[:MAX_LISTED_NODES])
        more = f" and {len(nodes) - MAX_LISTED_NODES} more" if len(nodes) > MAX_LISTED_NODES else ""
        held = f"{_plural(len(nodes), 'node')}: {listed}{more}" if nodes else "no nodes"
        lines.append(f"  {host_text(host)}; {held}")
    if not placement.cross:
        lines.append("no link crosses hosts")
        return lines
    lines.append(
        f"{_plural(len(placement.cross), 'cross-host link')}, VXLAN over UDP port {placement.vxlan_port} "
        f"(VNI = the run's base + index; MTU = the smaller underlay MTU less {_overhead_text(inventory, placement)})"
    )
    for link in placement.cross:
        lines.append(f"  {link.link}: {link.host_a} <-> {link.host_b}, VNI index {link.vni}, MTU {link.mtu}")
    return lines


def _overhead_text(inventory: Inventory, placement: Placement) -> str:
    """The VXLAN overhead the cross links' MTUs were reduced by: IPv4's, IPv6's, or each where it applies."""
    used = {
        vxlan_overhead_bytes(inventory.host(link.host_a).underlay, inventory.host(link.host_b).underlay)
        for link in placement.cross
    }
    if used == {VXLAN_OVERHEAD_V4_BYTES}:
        return f"{VXLAN_OVERHEAD_V4_BYTES} bytes over an IPv4 underlay"
    if used == {VXLAN_OVERHEAD_V6_BYTES}:
        return f"{VXLAN_OVERHEAD_V6_BYTES} bytes over an IPv6 underlay"
    return f"{VXLAN_OVERHEAD_V4_BYTES} bytes over an IPv4 underlay, {VXLAN_OVERHEAD_V6_BYTES} over IPv6"


def validate_text(placement: Placement) -> str:
    """The summary `drill validate` adds for a drill across hosts."""
    return (
        f"{_plural(len(placement.hosts), 'host')} ({placement.how} placement), "
        f"{_plural(len(placement.cross), 'cross-host link')}"
    )


def plan_json(inventory: Inventory, placement: Placement) -> dict[str, Any]:
    """The placement as plain JSON data (`drill plan --json`)."""
    return {
        "inventory": str(inventory.path),
        "placement": placement.how,
        "vxlan_port": placement.vxlan_port,
        "hosts": [
            {
                "name": host.name,
                "address": host.address,
                "port": host.port,
                "local": host.local,
                "underlay": host.underlay,
                "underlay_mtu": host.underlay_mtu,
                "nodes": list(placement.nodes_on(host.name)),
            }
            for host in inventory.hosts
        ],
        "cross_links": [
            {"link": c.link, "host_a": c.host_a, "host_b": c.host_b, "vni_index": c.vni, "mtu": c.mtu}
            for c in placement.cross
        ],
    }

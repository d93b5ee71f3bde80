"""Records of a testbed spread over several hosts: the hosts as the inventory names them, and
where each node goes. Plain data: the inventory parser and the placement fill them, the
multi-host backend, `drill plan` and the reports read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

VXLAN_PORT = 14789  # containerlab's choice too: 4789 is often filtered between servers
UNDERLAY_MTU = 1500
AGENT_VENV = "/opt/drills/venv"  # where the `ansible/` role installs drills on a host


@dataclass(frozen=True)
class Host:
    """One host of an Ansible inventory, with what drills needs to reach it."""

    name: str  # the inventory hostname
    address: str  # ansible_host (default: the name)
    port: int = 22  # ansible_port
    user: str | None = None  # ansible_user
    key_file: str | None = None  # ansible_ssh_private_key_file
    ssh_args: tuple[str, ...] = ()  # ansible_ssh_common_args then ansible_ssh_extra_args, split
    local: bool = False  # ansible_connection=local: the controller's own machine, no SSH
    become: bool = False  # ansible_become: the agent runs through `sudo -n`
    underlay: str = ""  # drills_underlay: the tunnels' source address (default: address, if an IP)
    underlay_mtu: int = UNDERLAY_MTU  # drills_underlay_mtu
    venv: str = AGENT_VENV  # drills_venv: where drills is installed on the host
    vars: Mapping[str, str] = field(default_factory=dict)  # every host variable, as strings


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: tuple[Host, ...]

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


@dataclass(frozen=True)
class CrossLink:
    """A link whose ends are on two hosts: a VXLAN tunnel between them."""

    link: str
    vni: int
    host_a: str  # the host of the link's endpoint a
    host_b: str
    mtu: int  # the nodes' interface MTU on it (the smaller underlay MTU less the overhead)


@dataclass(frozen=True)
class Placement:
    """Which host holds each node, and the links that cross hosts."""

    host_of: Mapping[str, str]  # node -> host name
    cross: tuple[CrossLink, ...]
    vxlan_port: int = VXLAN_PORT
    how: str = "given"  # "given" (every node names its host) or "auto" (balanced, fewest cross links)

    def nodes_on(self, host: str) -> tuple[str, ...]:
        return tuple(node for node, where in self.host_of.items() if where == host)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.host_of.values()))

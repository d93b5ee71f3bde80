"""Import a containerlab lab (`*.clab.yml`) as a drills topology file.

`drill import LAB.clab.yml -o TOPOLOGY.yaml` writes a topology that a scenario includes with
`topology: TOPOLOGY.yaml`; the scenario then adds probes, a timeline and objectives. What is
mapped, and how:

- nodes, with containerlab's inheritance (defaults < kinds < groups < node): every node becomes a
  `kind: container` node. `linux` nodes (and any kind whose image is mapped with `--image`) are
  supported; other kinds (vendor NOSes: srl, ceos...) need `--image LAB_IMAGE=LOCAL`.
- images: this machine has no registry, so a lab's image name is mapped to a locally built one:
  `--image LAB_IMAGE=LOCAL` first (prefix match, so `quay.io/frrouting/frr=...` covers every tag),
  else images whose name contains `frr` become `drills-node:latest` running FRR (`frr-start`:
  watchfrr with the lab's /etc/frr/daemons), else plain `linux` images `drills-node:latest`.
- `binds` become `volumes` (host paths rewritten relative to the written file); `env`, `cmd`
  carried over; `exec` lines that set addresses, routes and link state (`ip addr add`, `ip route
  add`, `ip link set up`) become drills declarations, so drills knows the addresses (probes can
  name nodes); any other line stays an `exec` line, run in the container after its links are up.
- FRR configuration bound at /etc/frr/frr.conf: its `interface X` / `ip address A` stanzas give
  the interface addresses (and `interface lo` the loopback), so drills sets the same addresses
  FRR will, and knows them.
- `links[].endpoints` become links, named `NODE_A-NODE_B` (with `-2`, `-3` for parallel links).
  No management network (containerlab's eth0): test traffic cannot leave the lab.
- `--attach`: nodes use the containers containerlab deployed (`attach: CONTAINER`, named by the
  labels `containerlab=LAB` and `clab-node-name=NODE` of the running containers, or by
  `--topology-data clab-LAB/topology-data.json`; default `clab-LAB-NODE`): nothing is created or
  removed, links between them must exist already; a run adds only its faults and probes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drills.errors import BadInput
from drills.scenario import userfile
from drills.scenario.yamlpos import YamlError, read_plain

LOCAL_IMAGE = "drills-node:latest"
FRR_COMMAND = "frr-start"  # in drills-node (testbed/images/drills-node.yaml)
FRR_CAPABILITIES = ("NET_ADMIN", "NET_RAW", "SYS_ADMIN")
_NODE_KEYS = ("kind", "image", "binds", "env", "exec", "cmd", "startup-config", "group")

# Which lab containers exist, by node: (lab name, node) -> container name (Docker, at import).
ContainerLookup = Callable[[str], dict[str, str]]


@dataclass
class _Node:
    name: str
    props: dict[str, Any]
    addresses: dict[str, str] = field(default_factory=dict)  # iface -> address/prefix
    loopback: str | None = None
    routes: list[dict[str, Any]] = field(default_factory=list)
    exec: list[str] = field(default_factory=list)
    ospf: bool = False  # its FRR configuration runs OSPF
    ospf_networks: list[str] = field(default_factory=list)  # its `network PREFIX area A` lines


def _load(path: Path) -> dict[str, Any]:
    try:
        raw = read_plain(path)
    except YamlError as exc:
        raise BadInput("; ".join(str(p) for p in exc.problems)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("topology"), dict):
        raise BadInput(f"{path}: a containerlab file holds `name:` and `topology:` with `nodes:` and `links:`")
    return raw


def _merged(topology: dict[str, Any], name: str, node: dict[str, Any]) -> dict[str, Any]:
    """containerlab's inheritance: defaults, then the kind's, then the group's, then the node's."""
    merged: dict[str, Any] = dict(topology.get("defaults") or {})
    group = node.get("group") or {}
    group_props = (topology.get("groups") or {}).get(group, {}) if isinstance(group, str) else {}
    kind = node.get("kind") or group_props.get("kind") or merged.get("kind") or "linux"
    for layer in ((topology.get("kinds") or {}).get(kind) or {}, group_props, node):
        merged.update(layer)
    merged["kind"] = kind
    return merged


def _map_image(lab_image: str, kind: str, overrides: dict[str, str], node: str, path: Path) -> tuple[str, bool]:
    """(local image, runs FRR)."""
    for remote, local in sorted(overrides.items(), key=lambda kv: -len(kv[0])):
        if lab_image == remote or lab_image.startswith(remote.rstrip(":") + ":") or lab_image.startswith(remote + "/"):
            return local, "frr" in lab_image.lower()
    if "frr" in lab_image.lower():
        return LOCAL_IMAGE, True
    if kind == "linux":
        return LOCAL_IMAGE, False
    raise BadInput(
        f"{path}: node {node}: kind '{kind}' with image '{lab_image}' has no local image on this machine "
        f"(no registry); map it: drill import ... --image {lab_image.split(':')[0]}=LOCAL_IMAGE"
    )


_ADDR = re.compile(r"^ip\s+(?:-4\s+)?addr(?:ess)?\s+add\s+(\S+)\s+dev\s+(\S+)\s*$")
_ROUTE = re.compile(r"^ip\s+(?:-4\s+)?route\s+(?:add|replace)\s+(\S+)\s+via\s+(\S+)(?:\s+dev\s+(\S+))?\s*$")
_LINK_UP = re.compile(r"^ip\s+link\s+set\s+(?:dev\s+)?(\S+)\s+up\s*$")


def _translate_exec(node: _Node, lines: list[str]) -> None:
    for line in lines:
        text = " ".join(line.split())
        if m := _ADDR.match(text):
            node.addresses.setdefault(m.group(2), m.group(1))
        elif m := _ROUTE.match(text):
            route: dict[str, Any] = {"to": m.group(1), "via": m.group(2)}
            if m.group(3):
                route["dev"] = m.group(3)
            node.routes.append(route)
        elif _LINK_UP.match(text):
            continue  # drills brings every link interface up
        else:
            node.exec.append(line)


def _frr_addresses(node: _Node, conf: Path) -> None:
    """Interface addresses from an FRR configuration (`interface X` then ` ip address A`)."""
    try:
        lines = userfile.read_text(conf).splitlines()
    except userfile.FileRefused as exc:
        if exc.reason.startswith("file not found"):
            return
        raise BadInput(f"{conf}: {exc.reason}") from None
    section = ""  # the unindented line that opened the current block
    for raw in lines:
        line = raw.strip()
        if raw and not raw[0].isspace():
            section = line
            node.ospf = node.ospf or line.startswith("router ospf")
            continue
        if section.startswith("router ospf") and line.startswith("network ") and " area " in line:
            node.ospf_networks.append(line.split()[1])
        elif section.startswith("interface ") and line.startswith("ip address "):
            iface, address = section.split()[1], line.split()[2]
            if iface == "lo":
                node.loopback = node.loopback or address
            else:
                node.addresses.setdefault(iface, address)


def import_lab(
    lab_path: Path,
    out: Path,
    images: dict[str, str] | None = None,
    *,
    attach: bool = False,
    containers: ContainerLookup | None = None,
) -> dict[str, Any]:
    """Write the drills topology of a containerlab lab to `out`; returns it. With `attach`,
    `containers(lab)` names the running container of each node (default: clab-LAB-NODE)."""
    raw = _load(lab_path)
    lab = str(raw.get("name") or lab_path.name.split(".")[0])
    topology = raw["topology"]
    lab_dir = lab_path.resolve().parent
    out_dir = out.resolve().parent
    nodes: dict[str, _Node] = {}
    for name, given in (topology.get("nodes") or {}).items():
        props = _merged(topology, str(name), given or {})
        nodes[str(name)] = _Node(str(name), props)
    if not nodes:
        raise BadInput(f"{lab_path}: the lab has no nodes")
    running = containers(lab) if attach and containers is not None else {}
    prefix = raw.get("prefix", "clab")

    result_nodes: dict[str, Any] = {}
    for name, node in nodes.items():
        props = node.props
        image = str(props.get("image") or "")
        local, runs_frr = _map_image(image, str(props["kind"]), images or {}, name, lab_path)
        entry: dict[str, Any] = {"kind": "container"}
        if attach:
            default = f"{prefix}-{lab}-{name}" if prefix else name
            entry["attach"] = running.get(name, default)
        else:
            entry["image"] = local
        volumes = []
        for bind in props.get("binds") or []:
            host, _, inside = str(bind).partition(":")
            host_path = Path(host) if os.path.isabs(host) else lab_dir / host
            if inside.split(":")[0] == "/etc/frr/frr.conf":
                _frr_addresses(node, host_path)
            volumes.append(f"{os.path.relpath(host_path, out_dir)}:{inside}")
        _translate_exec(node, [str(line) for line in props.get("exec") or []])
        if not attach:
            if volumes:
                entry["volumes"] = volumes
            if props.get("env"):
                entry["environment"] = {str(k): str(v) for k, v in props["env"].items()}
            if props.get("cmd"):
                entry["command"] = str(props["cmd"])
            elif runs_frr:
                entry["command"] = FRR_COMMAND
            if runs_frr:
                # zebra and ospfd refuse to start without these (containerlab runs every node
                # privileged; drills adds only what FRR asks for).
                entry["capabilities"] = list(FRR_CAPABILITIES)
            if node.exec:
                entry["exec"] = node.exec
        entry["loopback"] = node.loopback or "none"
        if node.addresses:
            entry["interfaces"] = {iface: {"ipv4": addr} for iface, addr in sorted(node.addresses.items())}
        if node.routes:
            entry["routes"] = node.routes
        result_nodes[name] = entry

    links = []
    seen: dict[str, int] = {}
    peers: dict[str, int] = {}  # OSPF router -> links to other OSPF routers: its adjacencies
    for i, link in enumerate(topology.get("links") or []):
        endpoints = link.get("endpoints") if isinstance(link, dict) else None
        if not isinstance(endpoints, list) or len(endpoints) != 2:
            raise BadInput(f"{lab_path}: links[{i}]: only point-to-point links with two `endpoints` are supported")
        a, b = (str(e) for e in endpoints)
        base = f"{a.split(':')[0]}-{b.split(':')[0]}"
        seen[base] = seen.get(base, 0) + 1
        links.append({"name": base if seen[base] == 1 else f"{base}-{seen[base]}", "endpoints": [a, b]})
        ends = [nodes.get(e.split(":")[0]) for e in (a, b)]
        if all(end is not None and end.ospf for end in ends):
            for end in ends:
                assert end is not None
                peers[end.name] = peers.get(end.name, 0) + 1
    prefixes = sorted({p for node in nodes.values() for p in node.ospf_networks})
    for name, count in peers.items():
        if not attach:
            # Deploy waits until the router's adjacencies are Full (OSPF's wait timer on a
            # broadcast network is the dead interval: about 40 s with FRR's defaults) and every
            # prefix the lab's OSPF carries is in its kernel routing table (LSAs are throttled:
            # routes follow the adjacencies by seconds).
            check = f"test \"$(vtysh -c 'show ip ospf neighbor' 2>/dev/null | grep -c Full)\" -ge {count}"
            if prefixes:
                check += f" && for p in {' '.join(prefixes)}; do ip -4 route show $p | grep -q . || exit 1; done"
            result_nodes[name]["ready"] = {"command": check, "timeout": "180s"}
    result = {"nodes": result_nodes, "links": links}
    header = (
        f"# Imported from the containerlab lab {lab} ({os.path.relpath(lab_path.resolve(), out_dir)})\n"
        f"# by `drill import`{' --attach' if attach else ''}. Lab images are mapped to local ones "
        "(no registry here); see drills/containerlab.py.\n"
    )
    out.write_text(header + yaml.safe_dump(result, sort_keys=False, default_flow_style=None, width=110))
    return result


def parse_image_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        remote, sep, local = pair.partition("=")
        if not sep or not remote or not local:
            raise BadInput(
                f"--image {pair!r}: write LAB_IMAGE=LOCAL_IMAGE, e.g. quay.io/frrouting/frr=drills-node:latest"
            )
        mapping[remote] = local
    return mapping


def topology_data_containers(path: Path) -> ContainerLookup:
    """Node name -> container name from the `topology-data.json` containerlab writes in its lab
    directory (`clab-LAB/topology-data.json`: `nodes.NODE.longname`)."""
    try:
        data = json.loads(userfile.read_text(path))
        nodes = data["nodes"]
        found = {str(name): str(node["longname"]) for name, node in nodes.items()}
    except userfile.FileRefused as exc:
        raise BadInput(f"cannot read {path}: {exc.reason}") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise BadInput(f"{path}: not a containerlab topology-data.json (no `nodes` with `longname`)") from None
    return lambda _lab: found


def running_lab_containers(lab: str) -> dict[str, str]:
    """Node name -> container name of a lab containerlab deployed, from its container labels."""
    from drills.docker.api import CLAB_LAB_LABEL, CLAB_NODE_LABEL, Docker

    docker = Docker.connect()
    try:
        found = docker.find({CLAB_LAB_LABEL: lab})
    finally:
        docker.close()
    return {c.labels[CLAB_NODE_LABEL]: c.name for c in found if CLAB_NODE_LABEL in c.labels}

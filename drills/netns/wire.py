"""Cross-host links as VXLAN: this host's ends of the links whose other end is on another host.

For each `CrossEnd` of a host's part, in the run's wire namespace on this host
(`drill-RUN-_HOST`):
- a veth pair: the node's interface (`ifname`, in the node's namespace) and its hidden end
  `wv<VNI>` (in the wire namespace); or, for a link the userspace engine serves on this host,
  a TAP pair of the same names joined by a relay (`TapPair`, made by drills.netns.part), which
  impairs what the node sends;
- a VXLAN device `wx<VNI>` (VNI, local and remote underlay addresses, UDP port, learning off),
  created from the underlay's namespace (the host's own, or a named one in the tests) directly
  inside the wire namespace: its UDP socket and its route to the other host stay in the
  underlay's namespace, while no interface of the run ever exists there;
- a bridge `wb<VNI>` joining the hidden end and the VXLAN device (STP off, so forwarding at
  once; multicast snooping off, so it passes every frame as a wire would).

Every object is journaled before it exists: the wire namespace (which teardown removes like any
namespace of the run, taking all of the above with it), its veths, and a record of each VXLAN
device. Each object is read back after creation: the kernel must show the VNI, port, addresses,
MTU and bridge port asked.

A tunnel does not carry carrier: the far end of a VXLAN link stays up when the near end is cut.
So a link cut acts on both hosts: the node's own end is set down where the cut is made, and
on the other host the hidden end of the far node's veth is set down (`Wire.set_far_end`), which
takes the far node's carrier away (NO-CARRIER) as a cut fibre would. With a TAP pair the relay
does the same: it keeps both TAPs' carrier only while both are up, as a veth pair does.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from ipaddress import ip_address
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from drills.backend import VXLAN_OVERHEAD_V4_BYTES, VXLAN_OVERHEAD_V6_BYTES, CrossEnd, LinkState
from drills.errors import BackendError, BadInput, EnvironmentProblem
from drills.journal import HOST_NAME, VNI_MAX
from drills.netns import kernel
from drills.netns.rtnl import RawLinks
from drills.runs import Run

Log = Callable[[str], None]
# Make a cross end's node interface and hidden end as a TAP pair joined by a relay, journaled
# first: given the end and the wire namespace (which exists by then; the bridge comes after).
TapPair = Callable[[CrossEnd, str], None]

# Set in the wire namespace before any interface exists: its interfaces carry frames and nothing
# of their own (no IPv6 link-local address, router solicitation or MLD report over the tunnel).
WIRE_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
)
# Link-local groups a bridge may pass (01:80:C2:00:00:0X, bit X): all but 0-2 (STP, pause,
# LACP), which the kernel never lets a bridge forward.
GROUP_FWD_MASK = 0xFFF8
MIN_MTU = 68  # IPv4's minimum


def wire_namespace(run_id: str, host: str) -> str:
    """The name of run `run_id`'s wire namespace on `host` (BadInput for a host name the
    journal would refuse: it could not be torn down)."""
    if not HOST_NAME.fullmatch(host):
        raise BadInput(
            f"host name {host!r} cannot name a wire namespace: use letters, digits, '_', '.', '-' "
            "(at most 63, beginning with a letter or digit)"
        )
    return f"drill-{run_id}-_{host}"


def hidden_ifname(vni: int) -> str:
    """The hidden end of the node's veth, in the wire namespace."""
    return f"wv{vni}"


def vxlan_ifname(vni: int) -> str:
    return f"wx{vni}"


def bridge_ifname(vni: int) -> str:
    return f"wb{vni}"


def check_ends(ends: Sequence[CrossEnd], namespaces: Mapping[str, str]) -> None:
    """Every problem with `ends` at once (BadInput), before anything is journaled or made."""
    problems = []
    vnis: dict[int, str] = {}
    for end in ends:
        what = f"cross link {end.link} ({end.node}:{end.ifname})"
        if end.node not in namespaces:
            problems.append(f"{what}: node {end.node} is not on this host")
        if not 0 < end.vni <= VNI_MAX:
            problems.append(f"{what}: VNI {end.vni} is not 1 to {VNI_MAX}")
        elif end.vni in vnis:
            problems.append(f"{what}: VNI {end.vni} is also cross link {vnis[end.vni]}'s (one VNI per link)")
        vnis.setdefault(end.vni, end.link)
        if not 0 < end.port < 65536:
            problems.append(f"{what}: UDP port {end.port} is not 1 to 65535")
        if not MIN_MTU <= end.mtu <= 65535:
            problems.append(f"{what}: MTU {end.mtu} is not {MIN_MTU} to 65535")
        try:
            local, remote = ip_address(end.local_ip), ip_address(end.remote_ip)
        except ValueError as exc:
            problems.append(f"{what}: {exc}")
            continue
        if local.version != remote.version:
            problems.append(f"{what}: underlay addresses {local} and {remote} are of different IP versions")
        elif local == remote:
            problems.append(f"{what}: local and remote underlay addresses are both {local}")
    if problems:
        raise BadInput("cannot make the cross-host links:\n" + "\n".join(problems))


def create(
    run: Run,
    host: str,
    namespaces: Mapping[str, str],
    ends: Sequence[CrossEnd],
    underlay_ns: str | None = None,
    log: Log | None = None,
    tap_pairs: Mapping[str, TapPair] | None = None,
) -> None:
    """Make this host's ends of its cross-host links (see the module docstring), all journaled
    first: `namespaces` maps each node of this host to its namespace, which must exist already.
    `underlay_ns` None is this process's namespace (the host's), else a named namespace that
    plays the host (tests). `tap_pairs` maps a link the userspace engine serves here to what
    makes its TAP pair (in place of the veth). BackendError when an object cannot be made or
    does not read back."""
    if not ends:
        return
    check_ends(ends, namespaces)
    relayed = dict(tap_pairs or {})
    wire = wire_namespace(run.run_id, host)
    entries: list[dict[str, Any]] = [{"op": "netns", "name": wire}]
    for end in ends:
        if end.link not in relayed:
            entries.append({"op": "veth", "a": [namespaces[end.node], end.ifname], "b": [wire, hidden_ifname(end.vni)]})
        entries.append(
            {
                "op": "vxlan",
                "ns": wire,
                "name": vxlan_ifname(end.vni),
                "link": end.link,
                "vni": end.vni,
                "local": end.local_ip,
                "remote": end.remote_ip,
                "port": end.port,
            }
        )
    with closing(_underlay(underlay_ns)) as underlay:
        _check_underlay(underlay, ends)
        run.journal.record(entries)
        with run.journal.creating("netns", [wire]):
            kernel.create_namespaces([wire], WIRE_SYSCTLS)
        for end in ends:
            if end.link not in relayed:
                kernel.add_veth(underlay, namespaces[end.node], end.ifname, wire, hidden_ifname(end.vni))
        _add_vxlans(underlay, wire, ends)
    for end in ends:
        if end.link in relayed:
            relayed[end.link](end, wire)
    kernel.in_each_namespace([wire], lambda _name, ipr: _bridge_and_verify(ipr, ends))
    say = log or (lambda _msg: None)
    for end in ends:
        say(
            f"link {end.link}: {end.node}:{end.ifname} ({'a TAP, through a relay' if end.link in relayed else 'a veth'}) "
            f"crosses to {end.remote_ip} over VXLAN "
            f"(VNI {end.vni}, UDP {end.port}, from {end.local_ip}); MTU {end.mtu}, the underlay's less "
            "the VXLAN overhead"
        )


def check_underlay(ends: Sequence[CrossEnd], underlay_ns: str | None = None) -> None:
    """EnvironmentProblem naming every end whose tunnel this host cannot carry as asked: its
    local address is not one of the host's, the other host's address has no route, or the
    route's MTU is below the end's MTU plus the VXLAN overhead (packets would be fragmented, or
    lost). Reads only: call it before anything is made."""
    with closing(_underlay(underlay_ns)) as underlay:
        _check_underlay(underlay, ends)


def _underlay(underlay_ns: str | None) -> Any:
    return kernel.open_netlink(underlay_ns) if underlay_ns is not None else kernel.root_netlink()


def _check_underlay(underlay: Any, ends: Sequence[CrossEnd]) -> None:
    with kernel.netlink_errors("list this host's addresses"):
        own = {
            ip_address(value)
            for msg in underlay.addr("dump")
            for value in (msg.get_attr("IFA_LOCAL"), msg.get_attr("IFA_ADDRESS"))
            if value is not None
        }
    routes: dict[str, tuple[str, int] | str] = {}  # remote -> (device, MTU), or why there is no route
    for remote in dict.fromkeys(end.remote_ip for end in ends):  # one lookup per other host
        try:
            route = underlay.route("get", dst=remote)[0]
            device = underlay.link("get", index=route.get_attr("RTA_OIF"))[0]
        except NetlinkError as exc:
            routes[remote] = os.strerror(exc.code)
            continue
        metrics = route.get_attr("RTA_METRICS")
        route_mtu = metrics.get_attr("RTAX_MTU") if metrics is not None else None
        mtu = int(device.get_attr("IFLA_MTU"))
        routes[remote] = (str(device.get_attr("IFLA_IFNAME")), min(mtu, int(route_mtu)) if route_mtu else mtu)
    problems = []
    for end in ends:
        what = f"cross link {end.link} ({end.node}:{end.ifname})"
        if ip_address(end.local_ip) not in own:
            problems.append(f"{what}: {end.local_ip} is not an address of this host: check its underlay address in the inventory")
        found = routes[end.remote_ip]
        if isinstance(found, str):
            problems.append(f"{what}: this host has no route to {end.remote_ip} ({found})")
            continue
        device, mtu = found
        overhead = VXLAN_OVERHEAD_V6_BYTES if ip_address(end.remote_ip).version == 6 else VXLAN_OVERHEAD_V4_BYTES
        if end.mtu + overhead > mtu:
            problems.append(
                f"{what}: MTU {end.mtu} needs an underlay MTU of {end.mtu + overhead} ({overhead} bytes of VXLAN "
                f"overhead), and the route to {end.remote_ip} through {device} carries {mtu}: "
                f"set drills_underlay_mtu={mtu} for this host in the inventory"
            )
    if problems:
        raise EnvironmentProblem("this host cannot carry its cross-host links as asked:\n" + "\n".join(problems))


def _add_vxlans(underlay: Any, wire: str, ends: Sequence[CrossEnd]) -> None:
    """Each end's VXLAN device, asked of the underlay's namespace and born in the wire one."""
    fd = os.open(kernel.netns_path(wire), os.O_RDONLY | os.O_CLOEXEC)
    try:
        for end in ends:
            v6 = ip_address(end.local_ip).version == 6
            addresses = (
                {"vxlan_local6": end.local_ip, "vxlan_group6": end.remote_ip}
                if v6
                else {"vxlan_local": end.local_ip, "vxlan_group": end.remote_ip}
            )
            what = f"link {end.link}: create VXLAN {vxlan_ifname(end.vni)} (VNI {end.vni}, UDP {end.port}) in {wire}"
            with _explained(what, errno.EEXIST, VNI_TAKEN):
                underlay.link(
                    "add",
                    ifname=vxlan_ifname(end.vni),
                    kind="vxlan",
                    net_ns_fd=fd,
                    mtu=end.mtu,
                    vxlan_id=end.vni,
                    vxlan_port=end.port,
                    vxlan_learning=0,
                    **addresses,
                )
    finally:
        os.close(fd)


# What a refusal means here, where it has one meaning only: the interface names are new in a new
# namespace, so EEXIST at a VXLAN's creation is the kernel's rule that one namespace's VXLAN
# devices on a port are told apart by VNI; EADDRINUSE at its start, another program's socket.
VNI_TAKEN = (
    "this host has a VXLAN device with that VNI on that port already (another run's cross link?); "
    "VNIs must differ between runs sharing a host and port"
)
PORT_TAKEN = "another program on this host has a socket on that UDP port: stop it, or choose another port"


@contextmanager
def _explained(what: str, code: int, meaning: str) -> Iterator[None]:
    """A netlink refusal with errno `code` while doing `what` raised as `meaning`, in words."""
    try:
        with kernel.netlink_errors(what):
            yield
    except BackendError as exc:
        if isinstance(exc.__cause__, NetlinkError) and exc.__cause__.code == code:
            raise BackendError(f"{what}: {meaning}") from exc
        raise


def _bridge_and_verify(ipr: Any, ends: Sequence[CrossEnd]) -> None:
    """In the wire namespace: a bridge per end joining its hidden veth end and VXLAN device,
    everything up; then each object read back."""
    for end in ends:
        bridge, hidden, vxlan = bridge_ifname(end.vni), hidden_ifname(end.vni), vxlan_ifname(end.vni)
        what = f"link {end.link}: bridge {bridge} of {hidden} and {vxlan} (UDP {end.port})"
        with _explained(what, errno.EADDRINUSE, PORT_TAKEN):
            ipr.link("add", ifname=bridge, kind="bridge", br_stp_state=0, br_mcast_snooping=0, br_group_fwd_mask=GROUP_FWD_MASK)
            index = kernel.local_link_index(bridge)
            for port in (hidden, vxlan):  # the VXLAN device opens its UDP socket as it goes up
                ipr.link("set", index=kernel.local_link_index(port), master=index, mtu=end.mtu, state="up")
            ipr.link("set", index=index, state="up")
    for end in ends:
        _verify(ipr, end)


def _verify(ipr: Any, end: CrossEnd) -> None:
    """The kernel shows the wire objects of `end` as asked (BackendError naming what differs)."""
    bridge = kernel.local_link_index(bridge_ifname(end.vni))
    for name in (hidden_ifname(end.vni), vxlan_ifname(end.vni)):
        with kernel.netlink_errors(f"link {end.link}: read {name}"):
            msg = ipr.link("get", index=kernel.local_link_index(name))[0]
        shown = {"master": msg.get_attr("IFLA_MASTER"), "mtu": msg.get_attr("IFLA_MTU"), "up": bool(msg["flags"] & 1)}
        asked = {"master": bridge, "mtu": end.mtu, "up": True}
        if shown != asked:
            raise BackendError(f"link {end.link}: {name} reads back as {shown}, asked {asked}")
    data = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    v6 = ip_address(end.local_ip).version == 6
    seen = {
        "vni": data.get_attr("IFLA_VXLAN_ID"),
        "port": data.get_attr("IFLA_VXLAN_PORT"),
        "local": data.get_attr("IFLA_VXLAN_LOCAL6" if v6 else "IFLA_VXLAN_LOCAL"),
        "remote": data.get_attr("IFLA_VXLAN_GROUP6" if v6 else "IFLA_VXLAN_GROUP"),
        "learning": data.get_attr("IFLA_VXLAN_LEARNING"),
    }
    wanted = {"vni": end.vni, "port": end.port, "local": end.local_ip, "remote": end.remote_ip, "learning": 0}
    if {k: str(v) for k, v in seen.items()} != {k: str(v) for k, v in wanted.items()}:
        raise BackendError(f"link {end.link}: VXLAN {vxlan_ifname(end.vni)} reads back as {seen}, asked {wanted}")


# --------------------------------------------------------------------------- the far end, on the clock


class Wire:
    """Handles on one host's wire namespace of a run, kept for the drill: cutting a cross link's
    far end costs one request and a read-back, no namespace switch or lookup (`warm` first).
    Safe to call from several threads (one request at a time)."""

    def __init__(self, run_id: str, host: str, ends: Sequence[CrossEnd]) -> None:
        self.namespace = wire_namespace(run_id, host)
        self._ends = {end.link: end for end in ends}
        self._raw: RawLinks | None = None
        self._indices: dict[str, int] = {}
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Open the socket and look up every hidden end now, before the drill clock starts."""
        with self._lock:
            for link in self._ends:
                self._index(link)

    def set_far_end(self, link: str, up: bool) -> None:
        """Set the hidden end of this host's node's veth (or TAP pair: its relay mirrors the
        state as carrier) on cross link `link` up or down (its node's interface gains or loses
        carrier), read back: BackendError unless the kernel shows the admin state asked."""
        with self._lock:
            index, raw = self._index(link), self._socket()
            raw.set_link(index, up)
            admin_up, _carrier = raw.link_state(index)
        if admin_up != up:
            raise BackendError(f"link {link}: hidden end {hidden_ifname(self._ends[link].vni)} in {self.namespace} stays {'up' if admin_up else 'down'}")

    def far_end_state(self, link: str) -> LinkState:
        """The hidden end of cross link `link` on this host, as the kernel shows it now."""
        with self._lock:
            admin_up, carrier = self._socket().link_state(self._index(link))
        return LinkState(admin_up, carrier)

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None

    def _socket(self) -> RawLinks:
        if self._raw is None:
            with kernel.netlink_errors(f"open wire namespace {self.namespace}"):
                self._raw = RawLinks(kernel.run_in_namespace(self.namespace, RawLinks.new_socket))
        return self._raw

    def _index(self, link: str) -> int:
        if link not in self._indices:
            end = self._ends.get(link)
            if end is None:
                raise BackendError(f"link {link} has no end crossing from this host (known: {', '.join(sorted(self._ends)) or 'none'})")
            name = hidden_ifname(end.vni)
            with kernel.netlink_errors(f"look up {name} in {self.namespace}"):
                self._indices[link] = kernel.run_in_namespace(self.namespace, lambda: kernel.local_link_index(name))
        return self._indices[link]


def set_far_end(run: Run, host: str, end: CrossEnd, up: bool) -> None:
    """One-off `Wire.set_far_end` (a drill keeps a warmed `Wire` instead)."""
    with closing(Wire(run.run_id, host, [end])) as wire:
        wire.set_far_end(end.link, up)


def far_end_state(run: Run, host: str, end: CrossEnd) -> LinkState:
    """One-off `Wire.far_end_state`."""
    with closing(Wire(run.run_id, host, [end])) as wire:
        return wire.far_end_state(end.link)

"""Deploy's batched rtnetlink (drills.netns.batch) and the pipelined namespace creation
(kernel.create_namespaces), on the real kernel. The deploy path as a whole is covered by
test_netns_integration.py and test_backends.py (the same testbed as before)."""

from __future__ import annotations

import errno
import socket
import subprocess
import uuid
from collections.abc import Iterator
from ipaddress import IPv4Network

import pytest

from drills.errors import NameExists
from drills.netns import batch, kernel, rtnl

pytestmark = pytest.mark.netns


@pytest.fixture
def prefix() -> Iterator[str]:
    tag = f"drill-t{uuid.uuid4().hex[:8]}-"
    yield tag
    for path in kernel.NETNS_RUN_DIR.glob(f"{tag}*"):
        kernel.delete_namespace(path.name)


def test_a_refused_request_is_named_and_the_rest_of_the_batch_still_applies(prefix: str) -> None:
    name = prefix + "a"
    kernel.create_namespaces([name], [])

    def work() -> rtnl.NetlinkFailure:
        sock = batch.open_socket()
        try:
            lo = socket.if_nametoindex("lo")
            refused = batch.Batch()
            refused.add(batch.RTM_NEWLINK, 0, batch._ifinfo(999_999, rtnl.IFF_UP, rtnl.IFF_UP), "set bogus up")
            refused.add(batch.RTM_NEWLINK, 0, batch._ifinfo(lo, rtnl.IFF_UP, rtnl.IFF_UP), "set lo up")
            with pytest.raises(rtnl.NetlinkFailure) as caught:
                refused.send(sock)
            return caught.value
        finally:
            sock.close()

    failure = kernel.run_in_namespace(name, work)
    assert failure.code == errno.ENODEV
    assert str(failure).startswith("set bogus up: ")
    # The request after the refused one was applied: lo is up.
    up = kernel.run_in_namespace(name, _lo_flags)
    assert up & rtnl.IFF_UP


def _lo_flags() -> int:
    links = rtnl.RawLinks(rtnl.RawLinks.new_socket())
    try:
        admin_up, _carrier = links.link_state(socket.if_nametoindex("lo"))
    finally:
        links.close()
    return rtnl.IFF_UP if admin_up else 0


def test_a_taken_name_stops_creation_and_no_later_file_appears(prefix: str) -> None:
    names = [prefix + suffix for suffix in ("a", "b", "c", "d")]
    (kernel.NETNS_RUN_DIR / names[1]).touch()  # someone else's
    with pytest.raises(NameExists):
        kernel.create_namespaces(names, [])
    assert kernel.namespace_inode(names[0]) is not None  # made before the taken name
    assert not kernel.netns_path(names[2]).exists() and not kernel.netns_path(names[3]).exists()


def test_raw_links_replace_routes_in_chunks_names_a_refused_one_and_installs_the_rest(prefix: str) -> None:
    """The fault engine's re-install (a link's revert): 600 routes, three datagrams, one refused
    (an interface index that does not exist): the failure names it, every other route is in."""
    name = prefix + "r"
    kernel.create_namespaces([name], [])

    def work() -> tuple[rtnl.NetlinkFailure, int, int]:
        links = rtnl.RawLinks(rtnl.RawLinks.new_socket())
        try:
            lo = socket.if_nametoindex("lo")
            links.set_link(lo, up=True)
            specs = [rtnl.RouteSpec(IPv4Network(f"10.{i // 256}.{i % 256}.0/24"), None, lo, 10) for i in range(600)]
            specs[300] = rtnl.RouteSpec(IPv4Network("10.99.0.0/24"), None, 999_999, 10)
            with pytest.raises(rtnl.NetlinkFailure) as caught:
                links.replace_routes(specs)
            links.set_link(lo, up=True)  # the socket's numbering goes on after a batch
            out = subprocess.run(["ip", "-4", "route", "show", "proto", "static"], capture_output=True, text=True, check=True)
            installed = out.stdout.count("dev lo")
            return caught.value, installed, links.link_state(lo)[0]
        finally:
            links.close()

    failure, installed, lo_up = kernel.run_in_namespace(name, work)
    assert failure.code == errno.ENODEV and "10.99.0.0/24" in str(failure)
    assert installed == 599 and lo_up

"""Deploy's batched rtnetlink (drills.netns.batch) and the pipelined namespace creation
(kernel.create_namespaces), on the real kernel. The deploy path as a whole is covered by
test_netns_integration.py and test_backends.py (the same testbed as before)."""

from __future__ import annotations

import errno
import socket
import uuid
from collections.abc import Iterator

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

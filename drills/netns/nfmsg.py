"""nf_tables netlink messages built in-process: a table of rules (drills.rules) as the one batch
the `nft` command would send for `nft.script(table)`, and a socket to send it on.

Applying a filter fault on the clock then costs one `send` per node and the kernel's commit,
acknowledged, with no parser, no cache fetch and no process (libnftables spends ~0.3 ms per
table on those; nftables' own encoding, read with `nft --debug=netlink`, is reproduced here).
The read-back (drills.netns.nfread) decodes what the kernel holds on the same socket; that
these batches load exactly what `nft` loads, and that the read-back accepts what `nft` loaded,
is checked against nft itself in tests/test_libnft.py. Deleting a table is a batch too.

Encoded: tables of the `inet` family whose matches are IPv4/IPv6 sources (addresses, or one
prefix), input interface names and ICMPv6 types, and match-less rules in any family (a
blackhole's netdev chains). Anything else (`encodable` is False) goes through libnftables.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from ipaddress import ip_address, ip_network

from drills.errors import BackendError
from drills.rules import (
    ICMPV6_TYPE,
    IN_INTERFACE,
    IPV4_SOURCE,
    IPV6_SOURCE,
    NEIGHBOR_ADVERTISEMENT,
    NEIGHBOR_SOLICITATION,
    ROUTER_ADVERTISEMENT,
    ROUTER_SOLICITATION,
    Match,
    Rule,
    Table,
)

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM = 0, 3, 6, 9, 12
NFT_MSG_GETTABLE, NFT_MSG_DELTABLE, NFT_MSG_DELRULE = 1, 2, 8
NLM_F_REQUEST, NLM_F_ACK, NLM_F_ECHO, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x1, 0x4, 0x8, 0x200, 0x400, 0x800
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_DUMP = 0x300
NLA_F_NESTED = 0x8000
FAMILIES = {"inet": 1, "ip": 2, "ip6": 10, "netdev": 5}
HOOKS = {"prerouting": 0, "ingress": 0}  # NF_INET_PRE_ROUTING, NF_NETDEV_INGRESS
NF_DROP, NF_ACCEPT, NFT_JUMP = 0, 1, -3
VERDICTS = {"drop": NF_DROP, "accept": NF_ACCEPT}
JUMP = "jump "  # an armed base chain's one rule while applied: "jump <its loaded chain>"
NFPROTO_IPV4, NFPROTO_IPV6 = 2, 10
IPPROTO_ICMPV6 = 58
NFT_META_IIFNAME, NFT_META_NFPROTO, NFT_META_L4PROTO = 6, 15, 16
NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER = 1, 2
NFT_REG_VERDICT, NFT_REG_1 = 0, 1
NFT_SET_ANONYMOUS, NFT_SET_CONSTANT = 0x1, 0x2
IFNAMSIZ = 16
# nftables' datatype ids (src/datatype.h), stored as an anonymous set's key type: nft's listing
# prints the elements through them ("nd-router-solicit", not 133).
TYPE_IPADDR, TYPE_IP6ADDR, TYPE_ICMP6_TYPE, TYPE_IFNAME = 7, 8, 29, 41
ICMPV6_TYPES = {ROUTER_SOLICITATION: 133, ROUTER_ADVERTISEMENT: 134, NEIGHBOR_SOLICITATION: 135, NEIGHBOR_ADVERTISEMENT: 136}
ANSWER_BYTES = 65536
RECV_TIMEOUT_S = 5.0  # a bound, never a figure: a local kernel acknowledges in microseconds

_NLMSG = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")  # family, version, res_id (big endian, packed by hand)
_NLA = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    data = _NLA.pack(_NLA.size + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _nest(kind: int, *parts: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(parts))


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack(">I", value))


def _text(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def _data(kind: int, value: bytes) -> bytes:
    return _nest(kind, _attr(1, value))  # NFTA_DATA_VALUE


def _expr(name: str, *attrs: bytes) -> bytes:
    return _nest(1, _text(1, name), _nest(2, *attrs))  # NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA }


def _meta(key: int) -> bytes:
    return _expr("meta", _u32(2, key), _u32(1, NFT_REG_1))  # NFTA_META_KEY, NFTA_META_DREG


def _cmp_eq(value: bytes) -> bytes:
    return _expr("cmp", _u32(1, NFT_REG_1), _u32(2, 0), _data(3, value))  # SREG, OP eq, DATA


def _payload(base: int, offset: int, length: int) -> bytes:
    # NFTA_PAYLOAD_DREG, BASE, OFFSET, LEN
    return _expr("payload", _u32(1, NFT_REG_1), _u32(2, base), _u32(3, offset), _u32(4, length))


@dataclass(frozen=True)
class _Field:
    key_type: int
    key_len: int
    load: tuple[bytes, ...]  # the dependency checks and the load into register 1


_FIELDS = {
    IPV4_SOURCE: _Field(
        TYPE_IPADDR, 4, (_meta(NFT_META_NFPROTO), _cmp_eq(bytes([NFPROTO_IPV4])), _payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4))
    ),
    IPV6_SOURCE: _Field(
        TYPE_IP6ADDR, 16, (_meta(NFT_META_NFPROTO), _cmp_eq(bytes([NFPROTO_IPV6])), _payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16))
    ),
    IN_INTERFACE: _Field(TYPE_IFNAME, IFNAMSIZ, (_meta(NFT_META_IIFNAME),)),
    ICMPV6_TYPE: _Field(
        TYPE_ICMP6_TYPE,
        1,
        (
            _meta(NFT_META_NFPROTO),
            _cmp_eq(bytes([NFPROTO_IPV6])),
            _meta(NFT_META_L4PROTO),
            _cmp_eq(bytes([IPPROTO_ICMPV6])),
            _payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1),
        ),
    ),
}


def _value(field: str, value: str) -> bytes:
    if field in (IPV4_SOURCE, IPV6_SOURCE):
        return ip_address(value).packed
    if field == IN_INTERFACE:
        name = value.encode()
        if not 0 < len(name) < IFNAMSIZ:
            raise ValueError(f"interface name {value!r}")
        return name.ljust(IFNAMSIZ, b"\0")
    return bytes([ICMPV6_TYPES[value]])


def encodable(table: Table) -> bool:
    """Whether `batch` can encode the table as nft would (else libnftables runs it)."""
    if table.family not in FAMILIES or any(chain.hook not in HOOKS for chain in table.chains):
        return False
    for chain in table.chains:
        for rule in chain.rules:
            if rule.verdict not in VERDICTS or (rule.matches and table.family != "inet"):
                return False
            for match in rule.matches:
                if match.field not in _FIELDS or not match.values:
                    return False
                prefixes = [v for v in match.values if "/" in v]
                if prefixes and (len(match.values) > 1 or match.field not in (IPV4_SOURCE, IPV6_SOURCE)):
                    return False  # an interval set: left to nft
                try:
                    for v in match.values:
                        _ = ip_network(v) if "/" in v else _value(match.field, v)
                except (ValueError, KeyError):
                    return False
    return True


class _Batch:
    def __init__(self, family: int, table: str) -> None:
        self.family, self.table = family, table
        self.messages: list[bytes] = []
        self.set_ids = iter(range(1, 1 << 16))

    def add(self, kind: int, flags: int, *attrs: bytes, family: int | None = None, res_id: int = 0) -> None:
        body = _NFGEN.pack(self.family if family is None else family, 0, socket.htons(res_id)) + b"".join(attrs)
        msg_type = kind if kind in (NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END) else (NFNL_SUBSYS_NFTABLES << 8) | kind
        seq = len(self.messages)
        self.messages.append(_NLMSG.pack(_NLMSG.size + len(body), msg_type, NLM_F_REQUEST | flags, seq, 0) + body)


def _match(batch: _Batch, chain_table: str, match: Match) -> Iterator[bytes]:
    field = _FIELDS[match.field]
    yield from field.load
    if len(match.values) == 1 and "/" in match.values[0]:
        net = ip_network(match.values[0])
        mask, base = net.netmask.packed, net.network_address.packed
        # NFTA_BITWISE_SREG, DREG, LEN, MASK, XOR; then compare the masked source
        yield _expr("bitwise", _u32(1, NFT_REG_1), _u32(2, NFT_REG_1), _u32(3, len(mask)), _data(4, mask), _data(5, bytes(len(mask))))
        yield _cmp_eq(base)
        return
    if len(match.values) == 1:
        yield _cmp_eq(_value(match.field, match.values[0]))
        return
    set_id = next(batch.set_ids)
    name = "__set%d"
    batch.add(
        NFT_MSG_NEWSET, NLM_F_CREATE,
        _text(1, chain_table), _text(2, name), _u32(3, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT),
        _u32(4, field.key_type), _u32(5, field.key_len), _nest(9, _u32(1, len(match.values))), _u32(10, set_id),
    )  # fmt: skip
    elements = b"".join(_nest(1, _data(1, _value(match.field, v))) for v in match.values)  # LIST_ELEM { KEY }
    batch.add(NFT_MSG_NEWSETELEM, NLM_F_CREATE, _text(1, chain_table), _text(2, name), _nest(3, elements), _u32(4, set_id))
    yield _expr("lookup", _text(1, name), _u32(2, NFT_REG_1), _u32(4, set_id))  # SET, SREG, SET_ID


def _rule_exprs(batch: _Batch, rule: Rule) -> bytes:
    exprs = [e for m in rule.matches for e in _match(batch, batch.table, m)]
    if rule.counter:
        exprs.append(_expr("counter", _attr(1, struct.pack(">Q", 0)), _attr(2, struct.pack(">Q", 0))))
    if rule.verdict.startswith(JUMP):  # DATA { VERDICT { CODE, CHAIN } }
        verdict = _nest(2, _nest(2, _u32(1, NFT_JUMP & 0xFFFFFFFF), _text(2, rule.verdict.removeprefix(JUMP))))
    else:  # DATA { VERDICT { CODE } }
        verdict = _nest(2, _nest(2, _u32(1, VERDICTS[rule.verdict])))
    exprs.append(_expr("immediate", _u32(1, NFT_REG_VERDICT), verdict))
    return _nest(4, *exprs)  # NFTA_RULE_EXPRESSIONS


def create_batch(table: Table) -> tuple[bytes, int]:
    """The batch creating `table` (failing if it exists, as `nft create table`), and how many
    acknowledgements the kernel sends for it once committed. Only for `encodable` tables."""
    batch = _begin(table)
    _frame(batch, table)
    _rules(batch, table)
    return _end(batch)


def arm_batch(table: Table) -> tuple[bytes, int]:
    """The batch arming `table` before the clock (failing if it exists): the table, its base
    chains hooked and empty, and beside each a regular chain (`loaded_chain`) holding the base
    chain's rules, which nothing jumps to yet. Every hook is registered, and every rule and
    anonymous set allocated and validated, then, so that putting the fault in force is one jump
    rule per base chain (`jumps_batch`), and reverting it is flushing the base chains."""
    batch = _begin(table)
    _frame(batch, table)
    for chain in table.chains:
        batch.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, _text(1, table.name), _text(3, loaded_chain(chain.name)))
    _rules(batch, table, chain_name=loaded_chain)
    return _end(batch)


def loaded_chain(chain: str) -> str:
    """The regular chain an armed table's base chain `chain` jumps to while the fault is applied."""
    return f"{chain}_rules"


def jumps(table: Table) -> Table:
    """An armed table as the kernel holds it while applied: each base chain's one rule, a jump
    to its loaded chain (what `jumps_batch` commits and `nfread.check_echo` expects echoed)."""
    return replace(
        table,
        chains=tuple(replace(c, rules=(Rule((), JUMP + loaded_chain(c.name), counter=False),)) for c in table.chains),
    )


def jumps_batch(table: Table) -> tuple[bytes, int]:
    """The batch putting an armed table (`arm_batch`) in force: in each base chain, one rule
    jumping to the chain loaded with its rules, acknowledged once committed. The kernel then
    allocates one expression per chain on the clock, and no set. Each rule asks for its echo
    (NLM_F_ECHO, as `nft --echo`): the kernel sends back what it committed, built from its own
    objects, before the acknowledgement, so the same receive that waits for the commit reads
    what the kernel holds (drills.netns.nfread.check_echo), with no read-back on the clock."""
    batch = _begin(table)
    _rules(batch, jumps(table), echo=True)
    return _end(batch)


def flush_batch(table: Table) -> tuple[bytes, int]:
    """The batch deleting every rule of `table`'s chains (a rule delete naming a chain and no
    handle: `nft flush chain`), the table and its chains left in place; acknowledged."""
    batch = _begin(table)
    for chain in table.chains:
        batch.add(NFT_MSG_DELRULE, 0, _text(1, table.name), _text(2, chain.name))
    return _end(batch)


def _begin(table: Table) -> _Batch:
    batch = _Batch(FAMILIES[table.family], table.name)
    batch.add(NFNL_MSG_BATCH_BEGIN, 0, family=0, res_id=NFNL_SUBSYS_NFTABLES)
    return batch


def _frame(batch: _Batch, table: Table) -> None:
    batch.add(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, _text(1, table.name), _u32(2, 0))
    for chain in table.chains:
        hook = [_u32(1, HOOKS[chain.hook]), _u32(2, chain.priority & 0xFFFFFFFF)]
        if chain.device:
            hook.append(_text(3, chain.device))
        batch.add(
            NFT_MSG_NEWCHAIN, NLM_F_CREATE,
            _text(1, table.name), _text(3, chain.name), _nest(4, *hook), _u32(5, NF_ACCEPT), _text(7, "filter"),
        )  # fmt: skip


def _rules(batch: _Batch, table: Table, *, echo: bool = False, chain_name: Callable[[str], str] = str) -> None:
    for chain in table.chains:
        for rule in chain.rules:
            exprs = _rule_exprs(batch, rule)  # adds the rule's anonymous sets first
            flags = NLM_F_CREATE | NLM_F_APPEND | (NLM_F_ECHO if echo else 0)
            batch.add(NFT_MSG_NEWRULE, flags, _text(1, table.name), _text(2, chain_name(chain.name)), exprs)


def _end(batch: _Batch) -> tuple[bytes, int]:
    # One acknowledgement, asked by the last message: the kernel answers a batch's messages in
    # order once it committed (or aborted) the whole, and a refused message always answers with
    # its error, so an error is read before that acknowledgement, and the acknowledgement means
    # committed. (One per message would cost a receive each on the clock.)
    last = batch.messages[-1]
    flags = _NLMSG.unpack_from(last)[2] | NLM_F_ACK
    batch.messages[-1] = last[:6] + struct.pack("=H", flags) + last[8:]
    batch.add(NFNL_MSG_BATCH_END, 0, family=0, res_id=NFNL_SUBSYS_NFTABLES)
    return b"".join(batch.messages), 1


def delete_batch(table: Table) -> tuple[bytes, int]:
    """The batch deleting `table`, idempotent as `nft.delete_script` (the table added first,
    which is no change where it exists), acknowledged once committed."""
    batch = _Batch(FAMILIES[table.family], table.name)
    batch.add(NFNL_MSG_BATCH_BEGIN, 0, family=0, res_id=NFNL_SUBSYS_NFTABLES)
    batch.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, _text(1, table.name))
    batch.add(NFT_MSG_DELTABLE, NLM_F_ACK, _text(1, table.name))
    batch.add(NFNL_MSG_BATCH_END, 0, family=0, res_id=NFNL_SUBSYS_NFTABLES)
    return b"".join(batch.messages), 1


def table_exists(sock: NfSocket, table: Table, what: str) -> bool:
    """Whether the node's kernel still lists the table (a get of it: ENOENT when gone)."""
    try:
        return bool(sock.request(NFT_MSG_GETTABLE, FAMILIES[table.family], _text(1, table.name), what))
    except BackendError as exc:
        if "ENOENT" in str(exc):
            return False
        raise


class NfSocket:
    """A NETLINK_NETFILTER socket in one namespace (opened by a thread inside it)."""

    def __init__(self, sock: socket.socket, node: str) -> None:
        self.sock, self.node = sock, node
        self.seq = 1 << 16  # reads are numbered from here; a batch's messages, from 0
        sock.settimeout(RECV_TIMEOUT_S)

    def send(self, batch: bytes, what: str) -> None:
        try:
            self.sock.send(batch)
        except OSError as exc:
            raise BackendError(f"{what}: node {self.node}: cannot send to nf_tables: {exc.strerror or exc}") from None

    def acknowledged(self, count: int, what: str, echoes: list[tuple[int, bytes]] | None = None) -> None:
        """Wait for `count` acknowledgements (the kernel sends them once the batch committed);
        BackendError naming the kernel's refusal (a table of the same name: EEXIST). The
        kernel's echoes of what it committed come first; into `echoes`, when given, as
        (nf_tables message type, attributes after the nfgenmsg)."""
        seen = 0
        try:
            while seen < count:
                data = self.sock.recv(ANSWER_BYTES)
                offset = 0
                while offset + _NLMSG.size <= len(data):
                    length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
                    if length < _NLMSG.size:
                        break
                    if kind == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, offset + _NLMSG.size)
                        if code != 0:
                            self._drain()
                            name = errno.errorcode.get(-code, str(-code))
                            raise BackendError(f"{what}: nf_tables in node {self.node} refused the batch: {name} ({os.strerror(-code)})")
                        seen += 1
                    elif echoes is not None and kind >> 8 == NFNL_SUBSYS_NFTABLES:
                        echoes.append((kind & 0xFF, data[offset + _NLMSG.size + _NFGEN.size : offset + length]))
                    offset += (length + 3) & ~3
        except TimeoutError:
            raise BackendError(f"{what}: nf_tables in node {self.node} did not answer in {RECV_TIMEOUT_S:g} s") from None

    def request(self, kind: int, family: int, attrs: bytes, what: str, *, dump: bool = False) -> list[bytes]:
        """One nf_tables request (a dump of many objects with `dump`); the attributes of each
        object answered, after its nfgenmsg. BackendError naming the kernel's refusal."""
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        body = _NFGEN.pack(family, 0, 0) + attrs
        self.seq = self.seq + 1 if self.seq < 0xFFFFFFFF else 1 << 16
        seq = self.seq
        self.send(_NLMSG.pack(_NLMSG.size + len(body), (NFNL_SUBSYS_NFTABLES << 8) | kind, flags, seq, 0) + body, what)
        found: list[bytes] = []
        try:
            while True:
                data = self.sock.recv(ANSWER_BYTES)
                offset = 0
                while offset + _NLMSG.size <= len(data):
                    length, msg_type, _flags, answered, _pid = _NLMSG.unpack_from(data, offset)
                    if length < _NLMSG.size:
                        return found
                    if answered != seq:  # a late answer to an earlier request: not this one's
                        offset += (length + 3) & ~3
                        continue
                    if msg_type == NLMSG_DONE:
                        return found
                    if msg_type == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, offset + _NLMSG.size)
                        if code != 0:
                            name = errno.errorcode.get(-code, str(-code))
                            raise BackendError(f"{what}: nf_tables in node {self.node} refused a read: {name} ({os.strerror(-code)})")
                        return found  # the acknowledgement of a plain get, after its answer
                    found.append(data[offset + _NLMSG.size + _NFGEN.size : offset + length])
                    offset += (length + 3) & ~3
        except TimeoutError:
            raise BackendError(f"{what}: nf_tables in node {self.node} did not answer in {RECV_TIMEOUT_S:g} s") from None

    def _drain(self) -> None:
        """Drop the rest of a refused batch's answers, so the next batch reads its own."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(ANSWER_BYTES)
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self.sock.settimeout(RECV_TIMEOUT_S)

    def close(self) -> None:
        self.sock.close()


def open_socket(node: str) -> NfSocket:
    """Called by a thread inside the node's namespace (`kernel.run_in_namespace`)."""
    return NfSocket(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER), node)


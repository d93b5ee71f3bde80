"""A table of ours read back from nf_tables over netlink, in-process: each chain's hook, priority
and device, and each rule decoded into the order-free form `Rule.signature` gives.

What `nft -j list table` shows, without nft's parser, cache or JSON (libnftables spends
0.3-0.6 ms a table on those): a get per chain, a dump of the table's rules and a dump of each
anonymous set's elements, all on the node's socket opened before the clock. The decoder knows
the expressions drills.netns.nfmsg (and nft) build for drills' matches; anything else decodes
to a field no rule of ours has, so it never compares equal. tests/test_libnft.py checks it
accepts what `nft` itself loads and refuses a rule that differs.

An armed table (drills.netns.nfmsg.arm_batch) is read back once, before the clock
(`check_armed`: empty hooked base chains, rules in the loaded chains); applying it is confirmed
from the kernel's echo of the commit (`check_echo`): the same decoder over the NEWRULE messages
the kernel sends back before its acknowledgement, so the fault is confirmed with no request
after the commit.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_network
from types import MappingProxyType

from drills.errors import BackendError
from drills.netns.nfmsg import (
    FAMILIES,
    HOOKS,
    ICMPV6_TYPES,
    JUMP,
    NFPROTO_IPV4,
    NFPROTO_IPV6,
    NFT_JUMP,
    NFT_META_IIFNAME,
    NFT_META_L4PROTO,
    NFT_META_NFPROTO,
    NFT_MSG_NEWRULE,
    NFT_PAYLOAD_NETWORK_HEADER,
    NFT_PAYLOAD_TRANSPORT_HEADER,
    NfSocket,
    loaded_chain,
)
from drills.rules import ICMPV6_TYPE, IN_INTERFACE, IPV4_SOURCE, IPV6_SOURCE, Rule, Signature, Table, signature

NFT_MSG_GETCHAIN, NFT_MSG_GETRULE, NFT_MSG_GETSETELEM = 4, 7, 13
NF_DROP, NF_ACCEPT = 0, 1
_NLA = struct.Struct("=HH")
_VERDICT_NAMES = {NF_DROP: "drop", NF_ACCEPT: "accept"}
_ICMPV6_NAMES = {code: name for name, code in ICMPV6_TYPES.items()}
UNKNOWN = "unknown expression"  # a field no rule of ours matches on


@lru_cache(maxsize=4096)
def _attrs(buf: bytes) -> Mapping[int, bytes]:
    """Top-level netlink attributes of `buf` by type (nested flag cleared); the last wins.
    Cached: a fault read back again gets the same expressions' bytes, decoded once (the
    decoding in Python was most of a read-back's cost)."""
    return MappingProxyType(dict(_attr_list(buf)))


@lru_cache(maxsize=4096)
def _attr_list(buf: bytes) -> tuple[tuple[int, bytes], ...]:
    found, offset = [], 0
    while offset + _NLA.size <= len(buf):
        length, kind = _NLA.unpack_from(buf, offset)
        if length < _NLA.size:
            break
        found.append((kind & 0x3FFF, buf[offset + _NLA.size : offset + length]))
        offset += (length + 3) & ~3
    return tuple(found)


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace")


def _u32(value: bytes) -> int:
    return int(struct.unpack(">I", value[:4])[0])


def _i32(value: bytes) -> int:
    return int(struct.unpack(">i", value[:4])[0])


def _data(value: bytes) -> bytes:
    return _attrs(value).get(1, b"")  # NFTA_DATA_VALUE


def _named(kind: int, text: str) -> bytes:
    data = text.encode() + b"\0"
    out = _NLA.pack(_NLA.size + len(data), kind) + data
    return out + b"\0" * (-len(out) % 4)


def _value(field: str, raw: bytes) -> str:
    if field == IPV4_SOURCE and len(raw) == 4:
        return str(IPv4Address(raw))
    if field == IPV6_SOURCE and len(raw) == 16:
        return str(IPv6Address(raw))
    if field == IN_INTERFACE:
        return raw.split(b"\0", 1)[0].decode(errors="replace")
    if field == ICMPV6_TYPE and len(raw) == 1:
        return _ICMPV6_NAMES.get(raw[0], str(raw[0]))
    return raw.hex()


# A set's element list attributes (NFTA_SET_ELEM_LIST_ELEMENTS payloads) by the set's name.
SetElements = Callable[[str], list[bytes]]


class _Rule:
    """Decodes one rule's expressions, tracking what register 1 holds."""

    def __init__(self, elements: SetElements) -> None:
        self.elements = elements
        self.loaded: str | None = None  # the field in register 1
        self.mask: bytes | None = None
        self.verdict = ""
        self.matches: list[tuple[str, list[str]]] = []

    def expr(self, name: str, data: Mapping[int, bytes]) -> None:
        if name == "meta":
            key = _u32(data.get(2, b"\xff\xff\xff\xff"))
            self.loaded, self.mask = {NFT_META_NFPROTO: "nfproto", NFT_META_L4PROTO: "l4proto", NFT_META_IIFNAME: IN_INTERFACE}.get(key, UNKNOWN), None
        elif name == "payload":
            place = (_u32(data.get(2, b"\0" * 4)), _u32(data.get(3, b"\0" * 4)), _u32(data.get(4, b"\0" * 4)))
            fields = {
                (NFT_PAYLOAD_NETWORK_HEADER, 12, 4): IPV4_SOURCE,
                (NFT_PAYLOAD_NETWORK_HEADER, 8, 16): IPV6_SOURCE,
                (NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1): ICMPV6_TYPE,
            }
            self.loaded, self.mask = fields.get(place, UNKNOWN), None
        elif name == "bitwise":
            xor = _data(data.get(5, b""))
            self.mask = _data(data.get(4, b"")) if not any(xor) else b""
        elif name == "cmp":
            self._compare(data)
        elif name == "lookup":
            self._lookup(data)
        elif name == "immediate":
            verdict = _attrs(_attrs(data.get(2, b"")).get(2, b""))  # DATA { VERDICT { CODE, CHAIN } }
            code = _i32(verdict.get(1, b"\xff\xff\xff\xff"))
            self.verdict = JUMP + _text(verdict.get(2, b"")) if code == NFT_JUMP else _VERDICT_NAMES.get(code, UNKNOWN)
        elif name != "counter":
            self.matches.append((UNKNOWN, [name]))

    def _compare(self, data: Mapping[int, bytes]) -> None:
        value, op = _data(data.get(3, b"")), _u32(data.get(2, b"\xff\xff\xff\xff"))
        field = self.loaded or UNKNOWN
        if op != 0:
            self.matches.append((UNKNOWN, [f"cmp op {op}"]))
        elif field == "nfproto":
            if value not in (bytes([NFPROTO_IPV4]), bytes([NFPROTO_IPV6])):
                self.matches.append((UNKNOWN, [f"nfproto {value.hex()}"]))
        elif field == "l4proto":
            if value != bytes([58]):
                self.matches.append((UNKNOWN, [f"l4proto {value.hex()}"]))
        elif self.mask:
            prefix = sum(bin(b).count("1") for b in self.mask)
            self.matches.append((field, [f"{ip_network((value, prefix), strict=False)}"]))
        else:
            self.matches.append((field, [_value(field, value)]))
        self.loaded, self.mask = None, None

    def _lookup(self, data: Mapping[int, bytes]) -> None:
        field, name = self.loaded or UNKNOWN, _text(data.get(1, b""))
        if _u32(data.get(5, b"\0" * 4)) != 0:  # an inverted lookup (`!=`) is not one of ours
            self.matches.append((UNKNOWN, ["inverted lookup"]))
            return
        values = [_value(field, _data(_attrs(elem).get(1, b""))) for elem in self.elements(name)]
        self.matches.append((field, values))
        self.loaded = None

    def signature(self) -> Signature:
        return signature(self.verdict, self.matches)


def check_table(sock: NfSocket, table: Table, what: str) -> None:
    """BackendError unless the node's kernel holds exactly the table's chains (hook, priority,
    device) and rules, as `nft.check_listing` requires of nft's listing."""
    where = f"node {table.node}: table {table.family} {table.name}"
    for chain in table.chains:
        attrs = _named(1, table.name) + _named(3, chain.name)
        replies = sock.request(NFT_MSG_GETCHAIN, FAMILIES[table.family], attrs, f"{what}: read back")
        if not replies:
            raise BackendError(f"{where}: chain {chain.name} is missing; the fault did not take effect")
        hook = _attrs(_attrs(replies[0]).get(4, b""))
        hooknum, prio = _u32(hook.get(1, b"\xff" * 4)), _i32(hook.get(2, b"\0" * 4))
        if (hooknum, prio) != (HOOKS[chain.hook], chain.priority):
            raise BackendError(f"{where}: chain {chain.name} is hooked at {hooknum} priority {prio}, not {chain.hook} priority {chain.priority}")
        device = _text(hook.get(3, b"")) if 3 in hook else None
        if chain.device and device is not None and device != chain.device:
            raise BackendError(f"{where}: chain {chain.name} is bound to {device}, not {chain.device}")
        _check_rules(sock, table, chain.name, chain.rules, what)


def check_armed(sock: NfSocket, table: Table, what: str) -> None:
    """BackendError unless the node's kernel holds the table armed (`nfmsg.arm_batch`): its
    base chains hooked and empty, and each one's loaded chain holding exactly its rules."""
    check_table(sock, table.without_rules(), what)
    for chain in table.chains:
        _check_rules(sock, table, loaded_chain(chain.name), chain.rules, what)


def _check_rules(sock: NfSocket, table: Table, chain: str, wanted: Sequence[Rule], what: str) -> None:
    """The rules of the table's chain named `chain`, dumped and decoded, against `wanted`."""
    family = FAMILIES[table.family]

    def elements(name: str) -> list[bytes]:
        """A set's elements (NFTA_SET_ELEM_LIST_ELEMENTS' entries), dumped from the kernel."""
        found: list[bytes] = []
        request = _named(1, table.name) + _named(2, name)
        for reply in sock.request(NFT_MSG_GETSETELEM, family, request, f"{what}: read back", dump=True):
            found += [elem for kind, payload in _attr_list(reply) if kind == 3 for _k, elem in _attr_list(payload)]
        return found

    rules = sock.request(
        NFT_MSG_GETRULE, family, _named(1, table.name) + _named(2, chain), f"{what}: read back", dump=True
    )
    listed: Counter[Signature] = Counter()
    for reply in rules:
        top = _attrs(reply)
        if _text(top.get(2, b"")) != chain:  # a kernel that ignored the dump's filter
            continue
        listed[_decode(top, elements)] += 1
    where = f"node {table.node}: table {table.family} {table.name}"
    _compare(where, chain, listed, Counter(rule.signature() for rule in wanted))


def check_echo(table: Table, echoes: Sequence[tuple[int, bytes]], what: str) -> None:
    """BackendError unless the kernel's echo of a batch (its NEWRULE messages, built from the
    objects it committed) shows exactly the table's rules, chain by chain, and nothing else.
    Only rules that use no set are confirmed this way (a set's elements are not echoed): the
    table is an armed one's `nfmsg.jumps(...)`, one jump per base chain. Its chains (hook, priority, device) and the loaded chains' rules were read back when
    it was armed, before the clock (`check_armed`); that no other rule is in a base chain is
    its state then (read back empty), kept by `RuleOpsMixin` refusing a table applied twice."""
    where = f"node {table.node}: table {table.family} {table.name}"
    rules: list[Mapping[int, bytes]] = []
    for kind, payload in echoes:
        if kind != NFT_MSG_NEWRULE:
            continue  # the commit's new generation (NEWGEN), echoed too
        top = _attrs(payload)
        if _text(top.get(1, b"")) != table.name:
            raise BackendError(f"{where}: the kernel echoed an object of table {_text(top.get(1, b''))!r}; {what} did not take effect as built")
        rules.append(top)

    def no_elements(_name: str) -> list[bytes]:
        return []  # a lookup decodes to no value: no rule of the table compares equal to it

    for chain in table.chains:
        listed = Counter(_decode(top, no_elements) for top in rules if _text(top.get(2, b"")) == chain.name)
        _compare(where, chain.name, listed, Counter(rule.signature() for rule in chain.rules))
    strays = {_text(top.get(2, b"")) for top in rules} - {chain.name for chain in table.chains}
    if strays:
        raise BackendError(f"{where}: the kernel echoed rules in chain(s) {', '.join(sorted(strays))}, not ours")


def _decode(top: Mapping[int, bytes], elements: SetElements) -> Signature:
    """One rule's signature from its attributes (NFTA_RULE_*)."""
    decoded = _Rule(elements)
    for _kind, elem in _attr_list(top.get(4, b"")):  # NFTA_RULE_EXPRESSIONS
        expr = _attrs(elem)
        decoded.expr(_text(expr.get(1, b"")), _attrs(expr.get(2, b"")))
    return decoded.signature()


def _compare(where: str, chain: str, listed: Counter[Signature], wanted: Counter[Signature]) -> None:
    if listed != wanted:
        raise BackendError(
            f"{where}: chain {chain} lists {listed.total()} rule(s) other than the {wanted.total()} loaded; "
            "the fault did not take effect as built"
        )

"""Packet-filter rules as data: tables of chains of match-and-verdict rules, one table per node.

A fault builds these before the drill clock starts; a backend puts them in force and reads them
back (the namespace backend through nftables: drills.netns.nft renders them and parses what the
kernel lists). A leaf: records and nothing else, in no filter tool's syntax.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

# What a match looks at. A backend maps each to its filter's own expression.
IPV4_SOURCE = "ipv4 source"  # values: addresses or prefixes ("198.18.0.1", "10.0.0.0/8")
IPV6_SOURCE = "ipv6 source"
IN_INTERFACE = "input interface"  # values: interface names of the table's node
ICMPV6_TYPE = "icmpv6 type"  # values: the message types below

# ICMPv6 neighbour discovery messages (RFC 4861), by the names a Match carries.
ROUTER_SOLICITATION = "router-solicitation"
ROUTER_ADVERTISEMENT = "router-advertisement"
NEIGHBOR_SOLICITATION = "neighbor-solicitation"
NEIGHBOR_ADVERTISEMENT = "neighbor-advertisement"

FIELDS = (IPV4_SOURCE, IPV6_SOURCE, IN_INTERFACE, ICMPV6_TYPE)

Signature = tuple[str, frozenset[tuple[str, frozenset[str]]]]


@dataclass(frozen=True)
class Match:
    """A packet matches when its `field` equals one of `values`."""

    field: str  # one of FIELDS
    values: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    """Every match must hold (an empty rule matches every packet); then `verdict`."""

    matches: tuple[Match, ...]
    verdict: str  # "drop" | "accept"
    counter: bool = True  # count the packets it matched (a backend may show the count)

    def signature(self) -> Signature:
        """The rule without order: verdict and each match's field with its set of values. What
        a backend reads back is compared in this form (a filter may list sets in its own order)."""
        return signature(self.verdict, ((m.field, m.values) for m in self.matches))


def signature(verdict: str, matches: Iterable[tuple[str, Iterable[str]]]) -> Signature:
    """The order-free form of a rule from its verdict and (field, values) pairs."""
    return (verdict, frozenset((field, frozenset(values)) for field, values in matches))


@dataclass(frozen=True)
class Chain:
    name: str
    hook: str  # "ingress" (netdev family: bound to `device`) | "prerouting"
    priority: int  # lower runs first; -300 is before connection tracking
    rules: tuple[Rule, ...]
    device: str | None = None  # ingress chains: the interface the hook is bound to
    # Every chain accepts what no rule dropped: a fault removes traffic, never adds a default.


@dataclass(frozen=True)
class Table:
    """One table of ours in one node: `family` "netdev" (per-interface ingress) or "inet"
    (IPv4 and IPv6). The name is the owning step's (drills.scenario.steps.table_name)."""

    node: str
    family: str
    name: str
    chains: tuple[Chain, ...]

    def without_rules(self) -> Table:
        """The table's frame: its chains, hooked as they are, with no rule (a flushed fault)."""
        return replace(self, chains=tuple(replace(c, rules=()) for c in self.chains))

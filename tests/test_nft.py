"""nftables for the namespace backend on its own (drills.netns.nft): rule records rendered as the
script nft loads, and the JSON nft lists read back and compared with what was loaded. Pure: no
kernel, no `nft` run. The listings below are nft 1.0.6's, captured from the scripts rendered here."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from drills.errors import BackendError
from drills.netns import nft
from drills.rules import (
    ICMPV6_TYPE,
    IN_INTERFACE,
    IPV4_SOURCE,
    IPV6_SOURCE,
    NEIGHBOR_ADVERTISEMENT,
    NEIGHBOR_SOLICITATION,
    ROUTER_ADVERTISEMENT,
    ROUTER_SOLICITATION,
    Chain,
    Match,
    Rule,
    Table,
)

ND = (ROUTER_SOLICITATION, ROUTER_ADVERTISEMENT, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT)
PARTITION = Table(
    "b",
    "inet",
    "drills_apart_abc123",
    (
        Chain(
            "partition",
            "prerouting",
            -300,
            (
                Rule((Match(ICMPV6_TYPE, ND),), "accept", counter=False),
                Rule((Match(IPV4_SOURCE, ("198.18.60.1", "198.19.60.3")),), "drop"),
                Rule((Match(IPV6_SOURCE, ("fd00:d811:60::1",)),), "drop"),
                Rule((Match(IN_INTERFACE, ("lo",)), Match(IPV6_SOURCE, ("fe80::/10",))), "drop"),
            ),
        ),
    ),
)
BLACKHOLE = Table(
    "a", "netdev", "drills_gray_abc123", (Chain("ingress_a", "ingress", -500, (Rule((), "drop"),), device="lo"),)
)

_META = {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}


def _rule(table: str, handle: int, *expr: dict[str, Any]) -> dict[str, Any]:
    return {"rule": {"family": "inet", "table": table, "chain": "partition", "handle": handle, "expr": list(expr)}}


def _match(left: dict[str, Any], right: Any) -> dict[str, Any]:
    return {"match": {"op": "==", "left": left, "right": right}}


COUNTER = {"counter": {"packets": 0, "bytes": 0}}
PARTITION_LISTING: dict[str, Any] = {
    "nftables": [
        _META,
        {"table": {"family": "inet", "name": "drills_apart_abc123", "handle": 1}},
        {"chain": {"family": "inet", "table": "drills_apart_abc123", "name": "partition", "handle": 1,
                   "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
        _rule("drills_apart_abc123", 3,
              _match({"payload": {"protocol": "icmpv6", "field": "type"}},
                     {"set": ["nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert"]}),
              {"accept": None}),
        _rule("drills_apart_abc123", 5,
              _match({"payload": {"protocol": "ip", "field": "saddr"}}, {"set": ["198.18.60.1", "198.19.60.3"]}),
              COUNTER, {"drop": None}),
        _rule("drills_apart_abc123", 6,
              _match({"payload": {"protocol": "ip6", "field": "saddr"}}, "fd00:d811:60::1"), COUNTER, {"drop": None}),
        _rule("drills_apart_abc123", 7,
              _match({"meta": {"key": "iifname"}}, "lo"),
              _match({"payload": {"protocol": "ip6", "field": "saddr"}}, {"prefix": {"addr": "fe80::", "len": 10}}),
              COUNTER, {"drop": None}),
    ]
}  # fmt: skip
BLACKHOLE_LISTING: dict[str, Any] = {
    "nftables": [
        _META,
        {"table": {"family": "netdev", "name": "drills_gray_abc123", "handle": 1}},
        {"chain": {"family": "netdev", "table": "drills_gray_abc123", "name": "ingress_a", "handle": 1,
                   "type": "filter", "hook": "ingress", "prio": -500, "policy": "accept"}},
        {"rule": {"family": "netdev", "table": "drills_gray_abc123", "chain": "ingress_a", "handle": 2,
                  "expr": [COUNTER, {"drop": None}]}},
    ]
}  # fmt: skip


def test_a_table_renders_as_one_atomic_nft_batch() -> None:
    assert nft.script(PARTITION) == (
        "create table inet drills_apart_abc123; "
        "add chain inet drills_apart_abc123 partition { type filter hook prerouting priority -300; policy accept; }; "
        "add rule inet drills_apart_abc123 partition icmpv6 type "
        "{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept; "
        "add rule inet drills_apart_abc123 partition ip saddr { 198.18.60.1, 198.19.60.3 } counter drop; "
        "add rule inet drills_apart_abc123 partition ip6 saddr fd00:d811:60::1 counter drop; "
        'add rule inet drills_apart_abc123 partition iifname "lo" ip6 saddr fe80::/10 counter drop'
    )
    assert nft.script(BLACKHOLE) == (
        "create table netdev drills_gray_abc123; "
        'add chain netdev drills_gray_abc123 ingress_a { type filter hook ingress device "lo" priority -500; '
        "policy accept; }; "
        "add rule netdev drills_gray_abc123 ingress_a counter drop"
    )
    # Interface names are quoted one by one inside a set.
    assert nft.render_match(Match(IN_INTERFACE, ("a", "b"))) == 'iifname { "a", "b" }'


def test_a_delete_is_idempotent() -> None:
    # `add` first: deleting a table never created (a half-failed apply) is not an error.
    assert nft.delete_script(PARTITION) == "add table inet drills_apart_abc123; delete table inet drills_apart_abc123"


def test_the_listing_of_what_was_loaded_passes_in_any_order() -> None:
    nft.check_listing(PARTITION, json.dumps(PARTITION_LISTING))
    nft.check_listing(BLACKHOLE, json.dumps(BLACKHOLE_LISTING))
    shuffled = copy.deepcopy(PARTITION_LISTING)
    shuffled["nftables"][3:] = reversed(shuffled["nftables"][3:])
    shuffled["nftables"][5]["rule"]["expr"][0]["match"]["right"]["set"].reverse()  # the ip saddr set
    nft.check_listing(PARTITION, json.dumps(shuffled))
    # Later nft versions list a netdev chain's device; the right one passes.
    with_device = copy.deepcopy(BLACKHOLE_LISTING)
    with_device["nftables"][2]["chain"]["dev"] = "lo"
    nft.check_listing(BLACKHOLE, json.dumps(with_device))
    assert [nft.listed_signature(o["rule"]) for o in PARTITION_LISTING["nftables"][3:]] == [
        rule.signature() for rule in PARTITION.chains[0].rules
    ]


def _without(listing: dict[str, Any], index: int) -> str:
    objects = [o for i, o in enumerate(listing["nftables"]) if i != index]
    return json.dumps({"nftables": objects})


def test_a_listing_other_than_what_was_loaded_is_refused() -> None:
    with pytest.raises(BackendError, match="chain partition lists 3 rule"):
        nft.check_listing(PARTITION, _without(PARTITION_LISTING, 6))
    with pytest.raises(BackendError, match="chain partition is missing"):
        nft.check_listing(PARTITION, _without(PARTITION_LISTING, 2))
    with pytest.raises(BackendError, match="lists 0 rule"):
        nft.check_listing(BLACKHOLE, _without(BLACKHOLE_LISTING, 3))
    # One address short: the same number of rules, still not the rules loaded.
    short = copy.deepcopy(PARTITION_LISTING)
    short["nftables"][4]["rule"]["expr"][0]["match"]["right"] = "198.18.60.1"
    with pytest.raises(BackendError, match=r"lists 4 rule\(s\) other than the 4 loaded"):
        nft.check_listing(PARTITION, json.dumps(short))
    moved = copy.deepcopy(PARTITION_LISTING)
    moved["nftables"][2]["chain"]["prio"] = 0
    with pytest.raises(BackendError, match="hooked at prerouting priority 0, not prerouting priority -300"):
        nft.check_listing(PARTITION, json.dumps(moved))
    elsewhere = copy.deepcopy(BLACKHOLE_LISTING)
    elsewhere["nftables"][2]["chain"]["dev"] = ["eth0"]
    with pytest.raises(BackendError, match=r"bound to \['eth0'\], not lo"):
        nft.check_listing(BLACKHOLE, json.dumps(elsewhere))
    for garbage in ("", "[]", '{"nftables": [{}]}', '{"nftables": 3}'):
        with pytest.raises(BackendError, match="cannot read nft's listing"):
            nft.check_listing(PARTITION, garbage)


def test_listed_tables() -> None:
    listing = {"nftables": [_META, {"table": {"family": "netdev", "name": "drills_gray_abc123", "handle": 1}}]}
    assert nft.listed_tables(json.dumps(listing), "here") == {"drills_gray_abc123"}
    assert nft.listed_tables(json.dumps({"nftables": [_META]}), "here") == set()
    with pytest.raises(BackendError, match="here: cannot read nft's listing"):
        nft.listed_tables("not json", "here")

"""Packet-filter rules as data: tables of chains of match-and-verdict rules, one table per node.

A fault builds these before the drill clock starts; a backend puts them in force (the namespace
backend through nftables: drills.netns) and reads them back. A leaf: records and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from drills.errors import BackendError


@dataclass(frozen=True)
class Match:
    """One `left == value(s)` match of a rule, as nft reads it (`text`) and lists it (`key`)."""

    text: str  # "ip saddr", "iifname", "icmpv6 type"
    key: str  # the JSON listing's left side: "ip.saddr", "meta.iifname", "icmpv6.type"
    values: tuple[str, ...]
    quoted: bool = False  # interface names are strings in nft's grammar

    def render(self) -> str:
        items = [f'"{v}"' if self.quoted else v for v in self.values]
        return f"{self.text} {items[0]}" if len(items) == 1 else f"{self.text} {{ {', '.join(items)} }}"


@dataclass(frozen=True)
class Rule:
    matches: tuple[Match, ...]
    verdict: str  # "drop" | "accept"
    counter: bool = True

    def render(self) -> str:
        return " ".join([*(m.render() for m in self.matches), *(["counter"] if self.counter else []), self.verdict])

    def signature(self) -> tuple[str, frozenset[tuple[str, frozenset[str]]]]:
        return (self.verdict, frozenset((m.key, frozenset(m.values)) for m in self.matches))


@dataclass(frozen=True)
class Chain:
    name: str
    hook: str
    priority: int
    rules: tuple[Rule, ...]
    device: str | None = None  # netdev chains: the interface the hook is bound to


@dataclass(frozen=True)
class Table:
    """One table of ours in one node's namespace."""

    node: str
    family: str
    name: str
    chains: tuple[Chain, ...]

    def script(self) -> str:
        """The commands creating it, as one atomic batch. `create` fails if the table exists:
        an earlier occurrence of the same step still applied is a clash, not something to merge."""
        lines = [f"create table {self.family} {self.name}"]
        for chain in self.chains:
            device = f' device "{chain.device}"' if chain.device else ""
            lines.append(
                f"add chain {self.family} {self.name} {chain.name} "
                f"{{ type filter hook {chain.hook}{device} priority {chain.priority}; policy accept; }}"
            )
            lines += [f"add rule {self.family} {self.name} {chain.name} {rule.render()}" for rule in chain.rules]
        return "; ".join(lines)

    def delete_script(self) -> str:
        # `add` first makes the delete idempotent (nft 1.0.6 has no `destroy`): a revert after
        # an apply that failed half way must not fail on the nodes that never got the table.
        return f"add table {self.family} {self.name}; delete table {self.family} {self.name}"

    def check_listing(self, listing: str) -> None:
        """BackendError unless `nft -j list table` output shows exactly our chains and rules."""
        where = f"node {self.node}: table {self.family} {self.name}"
        try:
            objects = [next(iter(o.items())) for o in json.loads(listing)["nftables"]]
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            raise BackendError(f"{where}: cannot read nft's listing ({exc})") from None
        chains = {o["name"]: o for kind, o in objects if kind == "chain"}
        for chain in self.chains:
            found = chains.get(chain.name)
            if found is None:
                raise BackendError(f"{where}: chain {chain.name} is missing; the fault did not take effect")
            if (found.get("hook"), found.get("prio")) != (chain.hook, chain.priority):
                raise BackendError(
                    f"{where}: chain {chain.name} is hooked at {found.get('hook')} priority {found.get('prio')}, "
                    f"not {chain.hook} priority {chain.priority}"
                )
            # nft 1.0.6 leaves a netdev chain's device out of its JSON; later versions list it.
            devices = found.get("dev")
            if chain.device and devices is not None and chain.device not in _as_list(devices):
                raise BackendError(f"{where}: chain {chain.name} is bound to {devices}, not {chain.device}")
            listed = sorted(_signature(o) for kind, o in objects if kind == "rule" and o.get("chain") == chain.name)
            wanted = sorted(rule.signature() for rule in chain.rules)
            if listed != wanted:
                raise BackendError(
                    f"{where}: chain {chain.name} lists {len(listed)} rule(s) other than the {len(wanted)} loaded; "
                    "the fault did not take effect as built"
                )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _value(item: Any) -> str:
    if isinstance(item, dict) and "prefix" in item:
        return f"{item['prefix']['addr']}/{item['prefix']['len']}"
    return str(item)


def _signature(rule: dict[str, Any]) -> tuple[str, frozenset[tuple[str, frozenset[str]]]]:
    """A listed rule in the form `Rule.signature` gives: verdict and matches, order-free."""
    verdict = ""
    matches = set()
    for expr in rule.get("expr", []):
        if "match" in expr:
            left, right = expr["match"]["left"], expr["match"]["right"]
            if "payload" in left:
                key = f"{left['payload'].get('protocol')}.{left['payload'].get('field')}"
            elif "meta" in left:
                key = f"meta.{left['meta'].get('key')}"
            else:
                key = json.dumps(left, sort_keys=True)
            values = right["set"] if isinstance(right, dict) and "set" in right else [right]
            matches.add((key, frozenset(_value(v) for v in values)))
        elif "drop" in expr:
            verdict = "drop"
        elif "accept" in expr:
            verdict = "accept"
    return (verdict, frozenset(matches))



"""nftables for the namespace backend: rule records (drills.rules) as `nft` scripts, the `nft`
command run inside nodes' namespaces, and its JSON listings read back and compared.

Applying a set of tables costs one `nft` process per node, all started at once (each born in
its node's namespace), then one `nft -j list` per node: the kernel must list exactly the
chains and rules loaded. Nothing here knows a fault; `drills.netns.ops_rules` composes it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drills.clock import Clock
from drills.errors import BackendError, EnvironmentProblem
from drills.netns import kernel
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
    Signature,
    Table,
    signature,
)

NFT_PACKAGE = "nftables"  # Debian's (and RHEL's) package for the `nft` command
NFT_TIMEOUT_S = 10.0
# Looked for beside PATH: sbin is often missing from an ordinary user's PATH, even under sudo.
_NFT_FALLBACKS = ("/usr/sbin/nft", "/sbin/nft")


@dataclass(frozen=True)
class _Expr:
    text: str  # as nft reads it: "ip saddr"
    key: str  # its JSON listing's left side: "ip.saddr"
    quoted: bool = False  # interface names are strings in nft's grammar


_EXPRS = {
    IPV4_SOURCE: _Expr("ip saddr", "ip.saddr"),
    IPV6_SOURCE: _Expr("ip6 saddr", "ip6.saddr"),
    IN_INTERFACE: _Expr("iifname", "meta.iifname", quoted=True),
    ICMPV6_TYPE: _Expr("icmpv6 type", "icmpv6.type"),
}
_FIELD_OF_KEY = {expr.key: field for field, expr in _EXPRS.items()}
_ICMPV6_NAMES = {
    ROUTER_SOLICITATION: "nd-router-solicit",
    ROUTER_ADVERTISEMENT: "nd-router-advert",
    NEIGHBOR_SOLICITATION: "nd-neighbor-solicit",
    NEIGHBOR_ADVERTISEMENT: "nd-neighbor-advert",
}
_ICMPV6_OF_NAME = {name: ours for ours, name in _ICMPV6_NAMES.items()}


# --------------------------------------------------------------------------- the nft command


def find_nft(search_path: str | None = None, fallbacks: Sequence[str] = _NFT_FALLBACKS) -> str | None:
    """Path of the `nft` command (on `search_path`, by default $PATH, then in sbin), or None."""
    found = shutil.which("nft", path=search_path)
    if found is not None:
        return found
    return next((path for path in fallbacks if os.access(path, os.X_OK)), None)


def require_nft(find: Callable[[], str | None] = find_nft) -> str:
    """Path of `nft`, or EnvironmentProblem naming the package to install. (A drill's preflight
    refuses a filter fault earlier, from the backend's declared capabilities.)"""
    path = find()
    if path is None:
        raise EnvironmentProblem(
            f"packet-filter rules need the `nft` command, which is not installed "
            f"(Debian/Ubuntu: apt-get install {NFT_PACKAGE}; RHEL: dnf install {NFT_PACKAGE})"
        )
    return path


@dataclass(frozen=True)
class NftJob:
    """One `nft` invocation in one node's namespace."""

    node: str
    args: tuple[str, ...]


def run_nft(nft: str, namespaces: Mapping[str, str], jobs: Sequence[NftJob], what: str, clock: Clock) -> list[str]:
    """Run the jobs, each in its node's namespace, all at once; return their standard outputs.
    They must all finish within NFT_TIMEOUT_S on `clock` (the drill's).

    Each process is started from a thread that entered the node's namespace, so it is born
    there (never in the host's). Commands go on the command line, not stdin: nothing to feed,
    and nft takes one argument of several `;`-separated commands as one atomic batch."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for job in jobs:
            argv = [nft, *job.args]

            def spawn(argv: list[str] = argv) -> subprocess.Popen[str]:
                return subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )

            try:
                procs.append(kernel.run_in_namespace(namespaces[job.node], spawn))
            except OSError as exc:
                raise BackendError(
                    f"{what}: cannot run {nft} in node {job.node}: {exc.strerror or exc} "
                    f"(the `nft` command comes from the {NFT_PACKAGE} package)"
                ) from exc
        deadline_s = clock.now_s() + NFT_TIMEOUT_S
        outputs = []
        for job, proc in zip(jobs, procs, strict=True):
            try:
                out, err = proc.communicate(timeout=max(0.0, deadline_s - clock.now_s()))
            except subprocess.TimeoutExpired:
                raise BackendError(f"{what}: nft in node {job.node} did not finish in {NFT_TIMEOUT_S:g} s") from None
            if proc.returncode != 0:
                said = " ".join(line.strip() for line in err.strip().splitlines()[:1]) or f"status {proc.returncode}"
                raise BackendError(f"{what}: nft in node {job.node} failed: {said}")
            outputs.append(out)
        return outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


# --------------------------------------------------------------------------- rendering


def render_match(match: Match) -> str:
    expr = _EXPRS[match.field]
    names = _ICMPV6_NAMES if match.field == ICMPV6_TYPE else {}
    items = [names.get(v, v) for v in match.values]
    items = [f'"{v}"' for v in items] if expr.quoted else items
    return f"{expr.text} {items[0]}" if len(items) == 1 else f"{expr.text} {{ {', '.join(items)} }}"


def render_rule(rule: Rule) -> str:
    return " ".join([*(render_match(m) for m in rule.matches), *(["counter"] if rule.counter else []), rule.verdict])


def script(table: Table) -> str:
    """The commands creating `table`, as one atomic batch. `create` fails if the table exists:
    an earlier occurrence of the same step still applied is a clash, not something to merge."""
    family, name = table.family, table.name
    lines = [f"create table {family} {name}"]
    for chain in table.chains:
        device = f' device "{chain.device}"' if chain.device else ""
        lines.append(
            f"add chain {family} {name} {chain.name} "
            f"{{ type filter hook {chain.hook}{device} priority {chain.priority}; policy accept; }}"
        )
        lines += [f"add rule {family} {name} {chain.name} {render_rule(rule)}" for rule in chain.rules]
    return "; ".join(lines)


def delete_script(table: Table) -> str:
    # `add` first makes the delete idempotent (nft 1.0.6 has no `destroy`): a revert after an
    # apply that failed half way must not fail on the nodes that never got the table.
    return f"add table {table.family} {table.name}; delete table {table.family} {table.name}"


# --------------------------------------------------------------------------- listings


def check_listing(table: Table, listing: str) -> None:
    """BackendError unless `nft -j list table` output shows exactly the table's chains and rules."""
    where = f"node {table.node}: table {table.family} {table.name}"
    try:
        objects = [next(iter(o.items())) for o in json.loads(listing)["nftables"]]
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise BackendError(f"{where}: cannot read nft's listing ({exc})") from None
    chains = {o["name"]: o for kind, o in objects if kind == "chain"}
    for chain in table.chains:
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
        # Compared as multisets: signatures hold frozensets, which `sorted` cannot order (subset order).
        listed = Counter(listed_signature(o) for kind, o in objects if kind == "rule" and o.get("chain") == chain.name)
        wanted = Counter(rule.signature() for rule in chain.rules)
        if listed != wanted:
            raise BackendError(
                f"{where}: chain {chain.name} lists {listed.total()} rule(s) other than the {wanted.total()} loaded; "
                "the fault did not take effect as built"
            )


def listed_tables(listing: str, where: str) -> set[str]:
    """Names of the tables in `nft -j list tables` output."""
    try:
        return {o["table"]["name"] for o in json.loads(listing)["nftables"] if "table" in o}
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"{where}: cannot read nft's listing ({exc})") from None


def listed_signature(rule: dict[str, Any]) -> Signature:
    """A listed rule in the form `Rule.signature` gives: verdict and matches, order-free. A match
    on something no rule of ours uses keeps nft's own JSON as its field, so it never compares equal."""
    verdict = ""
    matches: list[tuple[str, list[str]]] = []
    for expr in rule.get("expr", []):
        if "match" in expr:
            left, right = expr["match"]["left"], expr["match"]["right"]
            if "payload" in left:
                key = f"{left['payload'].get('protocol')}.{left['payload'].get('field')}"
            elif "meta" in left:
                key = f"meta.{left['meta'].get('key')}"
            else:
                key = json.dumps(left, sort_keys=True)
            field = _FIELD_OF_KEY.get(key, key)
            names = _ICMPV6_OF_NAME if field == ICMPV6_TYPE else {}
            values = right["set"] if isinstance(right, dict) and "set" in right else [right]
            matches.append((field, [names.get(v, v) if isinstance(v, str) else _value(v) for v in values]))
        elif "drop" in expr:
            verdict = "drop"
        elif "accept" in expr:
            verdict = "accept"
    return signature(verdict, matches)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _value(item: Any) -> str:
    if isinstance(item, dict) and "prefix" in item:
        return f"{item['prefix']['addr']}/{item['prefix']['len']}"
    return str(item)

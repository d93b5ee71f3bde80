"""Packet-filter faults without a process on the clock: nf_tables batches built in-process
(drills.netns.nfmsg), libnftables contexts bound to their node's namespace (drills.netns.libnft),
the `nft` command only where the library is missing. The fault semantics themselves are
tests/test_filter_faults.py's (they run on this path)."""

from __future__ import annotations

import random
import re
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from drills import lifecycle
from drills.clock import SystemClock
from drills.engine.faults import FaultContext, build
from drills.engine.filter_faults import Blackhole, Partition
from drills.errors import BackendError
from drills.netns import libnft, nfmsg, nfread, nft
from drills.netns.ops import NetnsOps
from drills.rules import ICMPV6_TYPE, IN_INTERFACE, IPV4_SOURCE, IPV6_SOURCE, Chain, Match, Rule, Table
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.scenario.resolved import Scenario

STAR = """
version: 1
name: lnft
topology:
  addressing: {ipv4: 198.18.70.0/24, loopbacks: 198.19.70.0/24, ipv6: "fd00:d811:70::/48"}
  nodes: {x: {}, a1: {}, a2: {}, b1: {}}
  links:
    - {name: a1x, endpoints: [a1:x, x:a1]}
    - {name: a2x, endpoints: [a2:x, x:a2]}
    - {name: b1x, endpoints: [b1:x, x:b1]}
timeline:
  - {id: gray, at: 1s, fault: blackhole, link: a1x, for: 1s}
  - {id: split, at: 3s, fault: partition, groups: [[a1, a2], [b1]], for: 1s}
duration: 5s
"""

PARTITION_TABLE = Table(
    "n", "inet", "drills_t_1",
    (Chain("partition", "prerouting", -300, (
        Rule((Match(ICMPV6_TYPE, ("router-solicitation", "neighbor-advertisement")),), "accept", counter=False),
        Rule((Match(IPV4_SOURCE, ("192.0.2.1", "192.0.2.2")),), "drop"),
        Rule((Match(IPV6_SOURCE, ("2001:db8::1",)),), "drop"),
        Rule((Match(IN_INTERFACE, ("eth1", "eth2")), Match(IPV6_SOURCE, ("fe80::/10",))), "drop"),
    )),),
)  # fmt: skip
BLACKHOLE_TABLE = Table("n", "netdev", "drills_t_2", (Chain("ingress_a", "ingress", -500, (Rule((), "drop"),), device="eth1"),))


# --------------------------------------------------------------------------- messages (no kernel)


def messages(batch: bytes) -> list[tuple[int, int]]:
    """(type, flags) of every netlink message in a batch."""
    found, offset = [], 0
    while offset < len(batch):
        length, kind, flags, _seq, _pid = struct.unpack_from("=IHHII", batch, offset)
        found.append((kind, flags))
        offset += length
    assert offset == len(batch)
    return found


def test_a_blackhole_table_is_one_batch_acknowledged_once() -> None:
    batch, acks = nfmsg.create_batch(BLACKHOLE_TABLE)
    kinds = [(kind & 0xFF if kind >> 8 else kind, flags) for kind, flags in messages(batch)]
    new = nfmsg.NLM_F_REQUEST | nfmsg.NLM_F_CREATE
    assert kinds == [
        (nfmsg.NFNL_MSG_BATCH_BEGIN, nfmsg.NLM_F_REQUEST),
        (nfmsg.NFT_MSG_NEWTABLE, new | nfmsg.NLM_F_EXCL),  # `create`: a clash, never a merge
        (nfmsg.NFT_MSG_NEWCHAIN, new),
        (nfmsg.NFT_MSG_NEWRULE, new | nfmsg.NLM_F_APPEND | nfmsg.NLM_F_ACK),  # the last asks for the one ack
        (nfmsg.NFNL_MSG_BATCH_END, nfmsg.NLM_F_REQUEST),
    ]
    assert acks == 1
    assert b"eth1\0" in batch and b"drills_t_2\0" in batch


def test_arming_loads_the_rules_beside_empty_base_chains_and_applying_is_one_echoed_jump_each() -> None:
    frame, acks = nfmsg.arm_batch(PARTITION_TABLE)
    kinds = [kind & 0xFF for kind, _flags in messages(frame)[1:-1]]
    newset, elems, rule, chain = (
        nfmsg.NFT_MSG_NEWSET,
        nfmsg.NFT_MSG_NEWSETELEM,
        nfmsg.NFT_MSG_NEWRULE,
        nfmsg.NFT_MSG_NEWCHAIN,
    )
    # the table, its base chain (hooked), the loaded chain (no hook), then the rules into it
    assert kinds == [0, chain, chain, newset, elems, rule, newset, elems, rule, rule, newset, elems, rule]
    assert b"partition_rules\0" in frame and acks == 1
    assert not any(flags & nfmsg.NLM_F_ECHO for _kind, flags in messages(frame))
    batch, acks = nfmsg.jumps_batch(PARTITION_TABLE)
    found = messages(batch)[1:-1]
    assert [(kind & 0xFF, flags & nfmsg.NLM_F_ECHO) for kind, flags in found] == [(rule, nfmsg.NLM_F_ECHO)]
    assert acks == 1 and found[-1][1] & nfmsg.NLM_F_ACK and b"partition_rules\0" in batch
    (jumping,) = nfmsg.jumps(PARTITION_TABLE).chains
    assert jumping.rules == (Rule((), "jump partition_rules", counter=False),) and jumping.hook == "prerouting"
    create, _ = nfmsg.create_batch(PARTITION_TABLE)  # created on the clock: read back, no echo asked
    assert not any(flags & nfmsg.NLM_F_ECHO for _kind, flags in messages(create))


def test_a_delete_adds_the_table_first_so_it_is_idempotent() -> None:
    batch, acks = nfmsg.delete_batch(PARTITION_TABLE)
    kinds = [(kind & 0xFF if kind >> 8 else kind, flags) for kind, flags in messages(batch)]
    assert kinds == [
        (nfmsg.NFNL_MSG_BATCH_BEGIN, nfmsg.NLM_F_REQUEST),
        (nfmsg.NFT_MSG_NEWTABLE, nfmsg.NLM_F_REQUEST | nfmsg.NLM_F_CREATE),  # no EXCL: no change if it exists
        (nfmsg.NFT_MSG_DELTABLE, nfmsg.NLM_F_REQUEST | nfmsg.NLM_F_ACK),
        (nfmsg.NFNL_MSG_BATCH_END, nfmsg.NLM_F_REQUEST),
    ]
    assert acks == 1


def test_a_set_valued_match_sends_its_anonymous_set_before_its_rule() -> None:
    batch, _acks = nfmsg.create_batch(PARTITION_TABLE)
    kinds = [kind & 0xFF for kind, _flags in messages(batch)[1:-1]]
    newset, elems, rule = nfmsg.NFT_MSG_NEWSET, nfmsg.NFT_MSG_NEWSETELEM, nfmsg.NFT_MSG_NEWRULE
    # ICMPv6 types, IPv4 sources, one IPv6 source (a compare), interfaces + a prefix (set + mask).
    assert kinds == [0, 3, newset, elems, rule, newset, elems, rule, rule, newset, elems, rule]
    assert b"eth2".ljust(16, b"\0") in batch and bytes([133]) in batch
    assert nfmsg.encodable(PARTITION_TABLE) and nfmsg.encodable(BLACKHOLE_TABLE)


@pytest.mark.parametrize(
    "rule",
    [
        Rule((Match(IPV4_SOURCE, ("10.0.0.0/8", "192.0.2.1")),), "drop"),  # an interval set
        Rule((Match(IN_INTERFACE, ("a-name-longer-than-15",)),), "drop"),
        Rule((Match("ipv4 destination", ("192.0.2.1",)),), "drop"),
        Rule((), "reject"),
    ],
)
def test_what_nfmsg_cannot_encode_is_left_to_libnftables(rule: Rule) -> None:
    assert not nfmsg.encodable(Table("n", "inet", "t", (Chain("c", "prerouting", -300, (rule,)),)))


def test_matches_in_a_netdev_table_are_left_to_libnftables() -> None:
    rule = Rule((Match(IPV4_SOURCE, ("192.0.2.1",)),), "drop")
    assert not nfmsg.encodable(Table("n", "netdev", "t", (Chain("c", "ingress", -500, (rule,), device="eth1"),)))


def test_a_host_without_libnftables_gets_none() -> None:
    assert libnft.load(sonames=("libdoes-not-exist.so.9",), find=lambda _name: None) is None
    assert libnft.load() is not None  # this machine has it (libnftables1, with nftables)


# --------------------------------------------------------------------------- real namespaces


@contextmanager
def star(tmp_path: Path, state_dir: Path) -> Iterator[tuple[Scenario, dict[str, str], NetnsOps]]:
    path = tmp_path / "lnft.yaml"
    path.write_text(STAR)
    scenario = load_scenario(path)
    up = lifecycle.up(path, state_dir)
    run = RunStore(state_dir).get(up.meta.run_id)

    def no_services(*_args: object) -> int:
        raise AssertionError("no services here")

    ops = NetnsOps(run, scenario.topology, up.meta.nodes, {}, SystemClock(), lambda _m: None, no_services)
    try:
        ops.warm()
        yield scenario, dict(up.meta.nodes), ops
    finally:
        ops.close()  # an open socket would keep its namespace alive
        lifecycle.down(state_dir, up.meta.run_id)


def ruleset(namespace: str) -> str:
    """`nft list ruleset` in a namespace, handles and counters left out."""
    out = subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "ruleset"], check=True, capture_output=True, text=True).stdout
    return re.sub(r"counter packets \d+ bytes \d+", "counter", out)


def tables_of(scenario: Scenario, step: str) -> tuple[Table, ...]:
    fault = build(next(s for s in scenario.steps if s.id == step))
    assert isinstance(fault, Blackhole | Partition)
    return fault.tables


@pytest.mark.netns
def test_a_context_commands_its_own_nodes_kernel_only(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    with star(tmp_path, state_dir) as (_scenario, namespaces, ops):
        library = ops.nft_library()
        assert library is not None
        context = ops._context("a1")
        assert context is not None
        context.run("create table inet drills_only_a1", "test")
        try:
            assert "drills_only_a1" in ruleset(namespaces["a1"])
            assert "drills_only_a1" not in ruleset(namespaces["a2"])
            host = subprocess.run(["nft", "list", "tables"], check=True, capture_output=True, text=True).stdout
            assert "drills_only_a1" not in host
            with pytest.raises(BackendError, match=r"node a1 failed: Error: .*exists|node a1 failed: .*File exists"):
                context.run("create table inet drills_only_a1", "test")
        finally:
            context.run("delete table inet drills_only_a1", "test")
        with pytest.raises(BackendError, match="nftables in node a1 failed: Error: syntax error"):
            context.run("add tablet inet oops", "test")
        ops.forget("a1")  # its namespace replaced: the context goes, the next use opens another
        assert ops._context("a1") is not context and context.handle is None
        with pytest.raises(BackendError, match="context is closed"):
            context.run("list tables", "test")


@pytest.mark.netns
def test_the_batches_built_here_load_exactly_what_nft_loads(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    with star(tmp_path, state_dir) as (scenario, namespaces, ops):
        for step in ("gray", "split"):
            tables = tables_of(scenario, step)
            assert all(nfmsg.encodable(t) for t in tables)
            marks: list[int] = []
            ops.apply_rules(tables, partial(marks.append, 1))  # in-process batches, read back through libnftables
            ours = {t.node: ruleset(namespaces[t.node]) for t in tables}
            ops.remove_rules(tables)
            assert all(f"table {t.family} {t.name}" not in ruleset(namespaces[t.node]) for t in tables)
            for table in tables:  # nft's own encoding of the same commands
                subprocess.run(["ip", "netns", "exec", namespaces[table.node], "nft", nft.script(table)], check=True)
            theirs = {t.node: ruleset(namespaces[t.node]) for t in tables}
            for table in tables:  # the in-process read-back accepts what nft loaded ...
                nfread.check_table(ops._nf_socket(table.node), table, "test")
            first = tables[0]  # ... and refuses a table other than the one loaded
            chain = first.chains[0]
            other = replace(first, chains=(replace(chain, rules=(*chain.rules, Rule((), "accept"))),))
            with pytest.raises(BackendError, match=r"lists \d+ rule\(s\) other than the \d+ loaded"):
                nfread.check_table(ops._nf_socket(first.node), other, "test")
            fewer = replace(first, chains=(replace(chain, rules=chain.rules[:-1]),))
            if chain.rules[:-1]:
                with pytest.raises(BackendError, match="other than"):
                    nfread.check_table(ops._nf_socket(first.node), fewer, "test")
            sets = [i for i, r in enumerate(chain.rules) if any(len(m.values) > 1 for m in r.matches)]
            for index in sets:  # a set's elements are read back too: one address fewer differs
                rule = chain.rules[index]
                short = replace(rule, matches=tuple(replace(m, values=m.values[1:]) for m in rule.matches))
                rules = (*chain.rules[:index], short, *chain.rules[index + 1 :])
                with pytest.raises(BackendError, match="other than"):
                    nfread.check_table(ops._nf_socket(first.node), replace(first, chains=(replace(chain, rules=rules),)), "test")
            assert step == "gray" or sets, "the partition's sets were not exercised"
            moved = replace(first, chains=(replace(chain, priority=chain.priority + 1),))
            with pytest.raises(BackendError, match="priority"):
                nfread.check_table(ops._nf_socket(first.node), moved, "test")
            ops.remove_rules(tables)
            assert marks == [1] and ours == theirs and all(f"table {t.family} {t.name}" in ours[t.node] for t in tables)


@pytest.mark.netns
def test_a_table_already_there_is_a_clash_and_the_sockets_stay_in_step(
    tmp_path: Path, state_dir: Path, host_snapshot: Any
) -> None:
    with star(tmp_path, state_dir) as (scenario, _namespaces, ops):
        tables = tables_of(scenario, "split")
        ops.apply_rules(tables)
        with pytest.raises(BackendError, match=r"refused the batch: EEXIST"):
            ops.apply_rules(tables)
        ops.remove_rules(tables)
        ops.apply_rules(tables)  # the refused batch's answers did not linger for this one
        ops.remove_rules(tables)


@pytest.mark.netns
def test_without_libnftables_the_nft_command_does_the_same(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    with star(tmp_path, state_dir) as (scenario, namespaces, ops):
        ops.use_nft_library(None, netlink=False)
        ctx = FaultContext(ops, SystemClock(), lambda _m: None, random.Random(0))
        for step in ("gray", "split"):
            fault = build(next(s for s in scenario.steps if s.id == step))
            ctx.in_force_s = None
            started_s = ctx.clock.now_s()
            fault.apply(ctx)
            assert ctx.in_force_s is not None and started_s <= ctx.in_force_s <= ctx.clock.now_s()
            for table in tables_of(scenario, step):
                assert f"table {table.family} {table.name}" in ruleset(namespaces[table.node])
            fault.revert(ctx)
            assert "drills_" not in "".join(ruleset(ns) for ns in namespaces.values())


@pytest.mark.netns
def test_an_armed_table_is_in_place_inert_before_and_after_and_gone_at_close(
    tmp_path: Path, state_dir: Path, host_snapshot: Any
) -> None:
    """Arming puts each table's hooked chains in place with no rule, and its rules (exactly
    what nft would load) in chains nothing jumps to; applying adds one jump per base chain;
    reverting flushes them and the table stays armed; applying again works; closing the
    operations deletes the tables."""
    with star(tmp_path, state_dir) as (scenario, namespaces, ops):
        for step in ("gray", "split"):
            tables = tables_of(scenario, step)
            ops.arm_rules(tables)
            ops.arm_rules(tables)  # twice (a repeated step's faults share tables): no clash
            for table in tables:
                nfread.check_armed(ops._nf_socket(table.node), table, "test")
                assert "jump" not in ruleset(namespaces[table.node])
            for _round in range(2):
                ops.apply_rules(tables)
                for table in tables:
                    nfread.check_table(ops._nf_socket(table.node), nfmsg.jumps(table), "test")
                    with pytest.raises(BackendError, match="other than"):  # the base chains hold jumps now
                        nfread.check_armed(ops._nf_socket(table.node), table, "test")
                    assert "jump" in ruleset(namespaces[table.node])
                ops.remove_rules(tables)
                for table in tables:
                    nfread.check_armed(ops._nf_socket(table.node), table, "test")
                    assert "jump" not in ruleset(namespaces[table.node])
        armed = tables_of(scenario, "gray") + tables_of(scenario, "split")
        ops.apply_rules(armed[:1])
        with pytest.raises(BackendError, match="in force already"):  # a rules batch would append them twice
            ops.apply_rules(armed[:1])
        ops.remove_rules(armed[:1])
        ops.close()
        for table in armed:
            assert f"table {table.family} {table.name}" not in ruleset(namespaces[table.node])


@pytest.mark.netns
def test_the_kernels_echo_of_the_jumps_confirms_exactly_what_was_committed_and_arming_reads_sets_back(
    tmp_path: Path, state_dir: Path, host_snapshot: Any
) -> None:
    """An armed table's rules are read back when it is armed (sets' elements included), and
    its jumps are confirmed from the kernel's echo of their commit: the echo accepts the jumps
    sent and refuses any table other than the one loaded."""
    with star(tmp_path, state_dir) as (scenario, _namespaces, ops):
        tables = tables_of(scenario, "split")
        ops.arm_rules(tables)
        table = next(t for t in tables if any(len(m.values) > 1 for c in t.chains for r in c.rules for m in r.matches))
        sock = ops._nf_socket(table.node)
        chain = table.chains[0]
        index = next(i for i, r in enumerate(chain.rules) if any(len(m.values) > 1 for m in r.matches))
        rule = chain.rules[index]
        short = replace(rule, matches=tuple(replace(m, values=m.values[1:]) for m in rule.matches))
        fewer = replace(table, chains=(replace(chain, rules=(*chain.rules[:index], short, *chain.rules[index + 1 :])),))
        with pytest.raises(BackendError, match="other than"):  # a loaded set's elements are read back
            nfread.check_armed(sock, fewer, "test")
        batch, acks = nfmsg.jumps_batch(table)
        sock.send(batch, "test")
        echoes: list[tuple[int, bytes]] = []
        sock.acknowledged(acks, "test", echoes)
        assert nfread.NFT_MSG_NEWRULE in {kind for kind, _ in echoes}
        jumped = nfmsg.jumps(table)
        nfread.check_echo(jumped, echoes, "test")
        nfread.check_table(sock, jumped, "test")  # what the echo showed is what a read-back shows
        (base,) = jumped.chains
        extra = replace(jumped, chains=(replace(base, rules=(*base.rules, Rule((), "accept"))),))
        with pytest.raises(BackendError, match="other than"):
            nfread.check_echo(extra, echoes, "test")
        elsewhere = replace(jumped, chains=(replace(base, rules=(Rule((), "jump other_rules", counter=False),)),))
        with pytest.raises(BackendError, match="other than"):  # a jump to another chain is not ours
            nfread.check_echo(elsewhere, echoes, "test")
        with pytest.raises(BackendError, match="other than"):  # the rules themselves were not echoed
            nfread.check_echo(table, echoes, "test")
        with pytest.raises(BackendError, match="echoed an object of table"):
            nfread.check_echo(replace(jumped, name="drills_other"), echoes, "test")
        with pytest.raises(BackendError, match="other than"):  # no echo at all: nothing confirmed
            nfread.check_echo(jumped, [], "test")
        ops.remove_rules([table])

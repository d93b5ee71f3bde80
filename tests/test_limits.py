"""Bounds on scenario values (drills.scenario.limits): just inside is accepted, just outside is a
located problem at `drill validate`. Plus the hostile value corpus, checked in-process (the
subprocess runner, tests/test_hostile_corpus.py, checks exit codes and output as well)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from drills.cli import main
from drills.errors import ExitCode
from drills.netns import qdisc, tc
from drills.probes.pair_mesh import MAX_AGGREGATE_PPS, pair_rate_pps
from drills.scenario import limits, model, values
from drills.scenario.loader import validate_file

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "hostile" / "values"


def _ok(tp: object, value: object) -> None:
    TypeAdapter(tp).validate_python(value)


def _refused(tp: object, value: object, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(tp).validate_python(value)
    assert words in str(caught.value)


# --------------------------------------------------------------------------- text values


@pytest.mark.parametrize("name", ["eth1", "e1-1", "wan_0", "eth0.100", "a" * 15, "x"])
def test_interface_names_accepted(name: str) -> None:
    assert values.interface_name(name) is None


@pytest.mark.parametrize(
    "name",
    ["a" * 16, "é" * 8, ".", "..", "lo", 'e"x', "e'x", "e\\x", "e%d", "e*", "e\0", "e\x1b", "e x", "e/x", "e:x", ""],
)
def test_interface_names_refused(name: str) -> None:
    assert values.interface_name(name) is not None


def test_messages_escape_what_they_quote() -> None:
    message = values.interface_name("e\x1b[2J\0")
    assert message is not None and "\x1b" not in message and "\0" not in message and "\\x1b" in message


@pytest.mark.parametrize("key", ["A", "LOG_LEVEL", "lower.case-ok"])
def test_env_keys_accepted(key: str) -> None:
    assert values.environment({key: "value\twith tab"}) is None


@pytest.mark.parametrize(
    ("env", "words"), [({"A=B": "x"}, "'A=B'"), ({"": "x"}, "''"), ({"A\0": "x"}, "A\\x00"), ({"A": "x\0"}, "NUL")]
)
def test_env_refused(env: dict[str, str], words: str) -> None:
    problem = values.environment(env)
    assert problem is not None and words in problem


def test_command_text_bound() -> None:
    assert values.command_text("x" * limits.MAX_TEXT_BYTES) is None
    assert values.command_text("x" * (limits.MAX_TEXT_BYTES + 1)) is not None
    assert values.command_text("for i in 1 2; do\n\techo $i\ndone") is None
    assert values.command_text("a\0b") is not None


@pytest.mark.parametrize(
    "name", ["example.org", "example.org.", "_dmarc.example.org", "a-b.c", ".", "bücher.example", "x" * 63]
)
def test_dns_names_accepted(name: str) -> None:
    assert values.dns_name(name) is None


@pytest.mark.parametrize(
    "name", ["", "a..b", "-a.b", "a-.b", "x" * 64, ".".join(["x" * 63] * 4), "a b", "a\0b", "a$b", "a/b"]
)
def test_dns_names_refused(name: str) -> None:
    assert values.dns_name(name) is not None


def test_dns_name_length_boundary() -> None:
    longest = ".".join(["x" * 63, "x" * 63, "x" * 63, "x" * 61])  # 253 bytes
    assert len(longest) == 253 and values.dns_name(longest) is None
    assert values.dns_name(longest + "x") is not None


@pytest.mark.parametrize("path", ["/", "/health", "/a/b?c=d&e=%20", "/~x"])
def test_http_paths_accepted(path: str) -> None:
    assert values.http_path(path) is None


@pytest.mark.parametrize("path", ["", "health", "/a b", "/a\r\nX: 1", "/a\0", "/café", "/" + "a" * 8192])
def test_http_paths_refused(path: str) -> None:
    assert values.http_path(path) is not None


def test_capabilities() -> None:
    assert values.capability("NET_ADMIN") is None and values.capability("cap_net_raw") is None
    assert "did you mean NET_ADMIN" in (values.capability("NET_ADMN") or "")


def test_special_addresses() -> None:
    for fine in ("198.18.0.1/30", "10.0.0.1/31", "169.254.0.1/30", "fd00::1/64", "2001:db8::1/64"):
        assert values.interface_address(fine) is None, fine
    for bad in ("127.0.0.2/30", "224.0.0.1/32", "0.0.0.1/30", "255.255.255.255/32", "::1/128", "ff02::1/64"):
        assert values.interface_address(bad) is not None, bad
    assert values.address_pool("198.18.0.0/15") is None and values.address_pool("fd00::/8") is None
    for bad in ("0.0.0.0/0", "96.0.0.0/3", "::/0", "ff00::/48"):
        assert values.address_pool(bad) is not None, bad


# --------------------------------------------------------------------------- numbers


def test_huge_integers_are_described_not_printed() -> None:
    """Python refuses to print an int of over 4,300 digits; YAML builds one from a long hex literal."""
    huge = int("f" * 5000, 16)
    assert values.number(huge) == "a number of about 6021 digits"
    _refused(model.Seconds, huge, "a number of about 6021 digits")
    _refused(model.Repeat, {"every": "1s", "count": huge}, "")  # refused, and no ValueError from printing


def test_durations_up_to_a_week() -> None:
    _ok(model.Seconds, limits.MAX_DRILL_DURATION_S)
    _ok(model.Seconds, "168h")
    _refused(model.Seconds, limits.MAX_DRILL_DURATION_S + 0.001, "longest drill (7 days)")
    _refused(model.Seconds, "168h 1ms", "longest drill (7 days)")
    _refused(model.Seconds, 1e300, "longest drill")


def test_absurd_digit_counts_are_refused_before_arithmetic() -> None:
    _ok(model.Seconds, "0.00000001s")  # 9 digits
    _refused(model.Seconds, "1" * 13 + "ms", "13 digits")
    _refused(model.Seconds, "9" * 400 + ":00:00", "400 digits")
    _refused(model.Seconds, "1s " * 30, "characters long")
    _refused(model.Seconds, "T+" + "9" * 13 + ":00:00", "13 digits")
    _refused(model.RateBps, "1" * 13 + "bit", "13 digits")


def test_rates_tc_can_encode() -> None:
    _ok(model.RateBps, limits.MIN_RATE_BPS)
    _ok(model.RateBps, "400gbit")
    _refused(model.RateBps, limits.MIN_RATE_BPS - 1, "smallest rate")
    _refused(model.RateBps, "0.5bit", "smallest rate")
    _refused(model.RateBps, limits.MAX_RATE_BPS + 1, "largest rate limit")
    _refused(model.RateBps, 1e29, "largest rate limit")


def test_the_largest_rate_fits_tbf() -> None:
    """tbf's limit is a u32 count of bytes: at the largest rate, 50 ms of traffic still fits."""
    spec = qdisc.tbf_spec(limits.MAX_RATE_BPS, 9000)
    assert spec.limit_bytes <= tc.U32_MAX
    spec.encode()  # struct.error if any field overflowed
    assert qdisc.tbf_spec(2 * limits.MAX_RATE_BPS, 9000).limit_bytes > tc.U32_MAX  # the bound is not far off


def _probe(**fields: object) -> dict[str, object]:
    return {"name": "p", "type": "icmp", "from": "a", "to": "b", **fields}


def test_probe_interval_and_timeout() -> None:
    _ok(model.Probe, _probe(interval="10ms", timeout="1h"))
    _ok(model.Probe, _probe(interval="1h"))
    _refused(model.Probe, _probe(interval="9.999ms"), "at least 10.0 ms")
    _refused(model.Probe, _probe(interval=0), "at least 10.0 ms")
    _refused(model.Probe, _probe(interval="1h 1ms"), "at most")
    _refused(model.Probe, _probe(timeout=0), "more than 0")
    _refused(model.Probe, _probe(timeout="1h 1ms"), "at most")


def test_stream_rate() -> None:
    stream = {"name": "s", "type": "udp-stream", "from": "a", "to": "b"}
    _ok(model.Probe, {**stream, "rate_pps": limits.MAX_STREAM_RATE_PPS})
    _refused(model.Probe, {**stream, "rate_pps": limits.MAX_STREAM_RATE_PPS + 1}, "10000")


def test_periods() -> None:
    _ok(model.Repeat, {"every": "10ms", "count": 2})
    _refused(model.Repeat, {"every": "9ms", "count": 2}, "at least 10.0 ms")
    _refused(model.Handover, {"every": 0}, "at least 10.0 ms")


def test_seed_range() -> None:
    base = {"version": 1, "name": "s", "topology": {"nodes": {"a": {}}}}
    model.ScenarioFile.model_validate({**base, "seed": 2**64 - 1})
    with pytest.raises(ValidationError):
        model.ScenarioFile.model_validate({**base, "seed": 2**64})


# --------------------------------------------------------------------------- whole scenarios


def _scenario(tmp_path: Path, nodes: str, probes: str = "", timeline: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"version: 1\nname: s\ntopology:\n  nodes:\n{nodes}\nprobes:\n{probes or '  []'}\ntimeline:\n{timeline or '  []'}\n"
    )
    return path


def _messages(path: Path) -> list[str]:
    return [p.message for p in validate_file(path)]


def _nodes(prefix: str, count: int) -> str:
    return "\n".join(f"    {prefix}{i}: {{}}" for i in range(count))


def _group(prefix: str, count: int) -> str:
    return "[" + ", ".join(f"{prefix}{i}" for i in range(count)) + "]"


def test_pair_mesh_cap(tmp_path: Path) -> None:
    """20 × 20 nodes: 800 ordered pairs... 10 × 20 = 400 is the most, at 5 packets/s each."""
    assert limits.MAX_MESH_PAIRS == 400 and pair_rate_pps(400) * 400 <= MAX_AGGREGATE_PPS
    inside = _scenario(
        tmp_path,
        _nodes("x", 10) + "\n" + _nodes("y", 20),
        timeline=f"  - {{at: 1s, fault: partition, groups: [{_group('x', 10)}, {_group('y', 20)}]}}",
    )
    assert _messages(inside) == []
    outside = _scenario(
        tmp_path,
        _nodes("x", 10) + "\n" + _nodes("y", 21),
        timeline=f"  - {{at: 1s, fault: partition, groups: [{_group('x', 10)}, {_group('y', 21)}]}}",
    )
    (message,) = _messages(outside)
    assert "420 ordered node pairs" in message and "420 × 5 = 2,100 packets/s" in message


def test_pair_mesh_counts_distinct_pairs_across_partitions(tmp_path: Path) -> None:
    groups = f"[{_group('x', 10)}, {_group('y', 10)}]"  # 200 pairs, twice: still 200 distinct
    twice = f"  - {{at: 1s, fault: partition, groups: {groups}, for: 1s}}\n  - {{at: 5s, fault: partition, groups: {groups}, for: 1s}}"
    assert _messages(_scenario(tmp_path, _nodes("x", 10) + "\n" + _nodes("y", 10), timeline=twice)) == []


def test_offered_probe_traffic_cap(tmp_path: Path) -> None:
    nodes = "    a: {}\n    b: {}"
    link = "  links: [{endpoints: [a:e1, b:e1]}]"
    streams = "\n".join(f"  - {{name: s{i}, type: udp-stream, from: a, to: b, rate_pps: 10000}}" for i in range(10))
    one_way = "  - {name: w, type: udp-stream, from: a, to: b, rate_pps: 10000, echo: false}"
    assert _messages(_scenario(tmp_path, nodes + "\n" + link, streams)) == []  # 200,000 exactly
    (message,) = _messages(_scenario(tmp_path, nodes + "\n" + link, streams + "\n" + one_way))
    assert "210,000 packets/s" in message


def test_drill_ends_within_a_week(tmp_path: Path) -> None:
    nodes = "    a: {}\n    b: {}\n  links: [{name: l, endpoints: [a:e1, b:e1]}]"
    week = "  - {at: 84h, fault: link-down, link: l, for: 84h}"
    assert _messages(_scenario(tmp_path, nodes, timeline=week)) == []
    (message,) = _messages(_scenario(tmp_path, nodes, timeline=week.replace("for: 84h", "for: 84h 1s")))
    assert "past the longest drill (7 days)" in message


def test_plan_says_what_validate_says(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`drill plan` loads through the same checks: same problem, same exit code."""
    path = _scenario(
        tmp_path,
        "    a: {}\n    b: {}\n  links: [{endpoints: [a:e1, b:e1]}]",
        "  - {name: s, type: udp-stream, from: a, to: 10.9.9.9}",
    )
    outputs = []
    for command in ("validate", "plan"):
        assert main([command, str(path)]) == ExitCode.BAD_INPUT
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    assert all("s.yaml:9:46" in out and "no node of the testbed holds 10.9.9.9" in out for out in outputs), outputs


def test_examples_stay_valid() -> None:
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        assert validate_file(path) == [], path.name


# --------------------------------------------------------------------------- the corpus


CASES = sorted(CORPUS.glob("*.yaml"))


def test_corpus_size() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_case(path: Path) -> None:
    """Each case's first line pins (a substring of) its message; the problem names the file and
    line, and holds no control character."""
    expect = path.read_text(encoding="utf-8").splitlines()[0].removeprefix("# expect: ")
    problems = validate_file(path)
    assert any(expect in str(p) for p in problems), [str(p) for p in problems]
    assert all(p.file.endswith(path.name) and p.line > 0 for p in problems)
    # What the author wrote is quoted escaped: nothing in a message can drive the terminal.
    assert all(str(p).isprintable() for p in problems), [str(p) for p in problems]

"""The agent's codec and frames: every record the channel carries comes back equal (every example
scenario's topology and probe specs, the seam's records, ipaddress objects, enums, non-string
keys); a frame that names a class outside the allowlist, or is too long, or is cut short is
refused with a clear error, and a clean end of file is told apart from a bad frame."""

from __future__ import annotations

import os
import signal
import socket
import struct
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from drills.backend import CrossEnd, ExecResult, HostPart, Impairment, LinkState, TeardownReport
from drills.hosts.records import CrossLink, Host, Placement
from drills.impairment import Settings
from drills.records import ProbeHealth, Sample, StreamRecord
from drills.remote import codec
from drills.remote.frames import MAX_FRAME_BYTES, BadFrame, FrameReader, FrameWriter, encode_frame
from drills.rules import Chain, Match, Rule, Table
from drills.scenario import load_scenario
from drills.scenario.model_topology import GilbertElliott

SCENARIOS = sorted((Path(__file__).resolve().parent.parent / "scenarios").glob("*.yaml"))


def roundtrip(value: Any) -> Any:
    """Through the codec and a real frame, as the channel carries it."""
    read_fd, write_fd = os.pipe()
    try:
        message = {"v": codec.encode(value)}
        data = encode_frame(message)
        assert len(data) < 60000, "keep under a pipe's buffer: this helper writes before it reads"
        FrameWriter(write_fd).write(message)
        got = FrameReader(read_fd).read()
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert got is not None
    return codec.decode(got["v"])


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_example_topology_and_probe_spec_round_trips(path: Path) -> None:
    scenario = load_scenario(path)
    topology = codec.decode(codec.encode(scenario.topology))
    assert topology == scenario.topology
    # compare=False fields are compared by hand: a link's profile must travel too
    assert [link.profile_spec for link in topology.links] == [link.profile_spec for link in scenario.topology.links]
    assert type(topology.nodes) is tuple and type(topology.nodes[0].interfaces) is tuple
    for spec in scenario.probes:
        assert roundtrip(spec) == spec and type(roundtrip(spec)) is type(spec)
    for step in scenario.steps:
        assert codec.decode(codec.encode(step)) == step


def test_seam_and_host_records_round_trip() -> None:
    topology = load_scenario(SCENARIOS[0]).topology
    link = topology.links[0]
    settings = Settings(delay_s=0.01, loss_pct=1.5, loss_bursts=GilbertElliott(p=1.0, r=20.0), rate_bps=10**6)
    table = Table("a", "inet", "drill_x", (Chain("c", "prerouting", -300, (Rule((Match("ip saddr", ("1.2.3.4",)),), "drop"),)),))
    values: list[Any] = [
        LinkState(True, False),
        ExecResult(0, "out\n", ""),
        Impairment(link, "a-to-b", settings, in_place=True),
        Impairment(link, "b-to-a", None),
        TeardownReport(["namespace x"], [], ["process 1"]),
        HostPart("h1", ("a", "b"), (CrossEnd("l", "a", "e1", 7, "10.0.0.1", "10.0.0.2", 14789, 1450),)),
        table,
        Host("h2", "10.0.0.2", ssh_args=("-o", "X=y"), vars={"a": "b"}),
        Placement({"a": "h1", "b": "h2"}, (CrossLink("l", 7, "h1", "h2", 1450),)),
        StreamRecord("s", 100, 64, sent=[1.0, 2.0], received={0: 1.5, 7: 2.5}),
        [Sample(1.0, True, 0.001, ""), ProbeHealth("s", "udp-stream", 3, 2, None, 0.1, "ok")],
        signal.SIGTERM,
        (socket.AF_INET6, socket.SOCK_DGRAM),
        {IPv4Address("10.0.0.1"): "x", ("a", 1): [1, 2], "$odd": {"$t": 1}},
        [IPv4Interface("10.0.0.1/30"), IPv6Interface("fd00::1/64"), IPv6Network("fd00::/48"), IPv4Network("10.0.0.0/8")],
        (IPv4Address("198.19.0.1"), IPv6Address("fd00::ff"), IPv4Interface("10.0.0.1/32")),
        (Path("/tmp/x"), b"\x00\xff", frozenset({1, 2}), {3}),
        {"plain": [None, True, 1.5, "é"]},
    ]
    for value in values:
        back = roundtrip(value)
        assert back == value and type(back) is type(value), value


def test_decoding_refuses_classes_outside_the_allowlist() -> None:
    for name, tag in [
        ("os:system", "$dc"),
        ("subprocess:Popen", "$dc"),
        ("drills.netns.kernel:Whatever", "$dc"),
        ("drills.remote.frames:os", "$dc"),  # an attribute that is no class defined there
        ("drills.backend:Log", "$dc"),
        ("signal:Signals", "$dc"),  # signal is allowed for enums only
        ("drills.backend:LinkState", "$dc"),  # a named tuple, not a dataclass
        ("drills.backend:Nope", "$dc"),
        ("no-colon", "$dc"),
    ]:
        with pytest.raises(BadFrame):
            codec.decode({tag: name, "f": {}})
    with pytest.raises(BadFrame, match="cannot be rebuilt"):
        codec.decode({"$dc": "drills.backend:ExecResult", "f": {"returncode": 0}})
    with pytest.raises(BadFrame, match="ipaddress type"):
        codec.decode({"$ip": "IPv4Frob", "v": 1})
    for bad in ("1.2.3.4", True, [1, "24"], 2**40):
        with pytest.raises(BadFrame):
            codec.decode({"$ip": "IPv4Address", "v": bad})
    with pytest.raises(BadFrame, match="cannot be rebuilt"):
        codec.decode({"$ip": "IPv4Network", "v": [1, 24]})  # host bits set
    nested: Any = 1
    for _ in range(codec.MAX_DEPTH + 5):
        nested = [nested]
    with pytest.raises(BadFrame, match="levels deep"):
        codec.decode(nested)
    with pytest.raises(TypeError, match="does not carry"):
        codec.encode(object())


def test_frames_partial_reads_eof_and_bad_frames() -> None:
    read_fd, write_fd = os.pipe()
    try:
        reader = FrameReader(read_fd)
        data = encode_frame({"a": 1}) + encode_frame({"b": [2]})
        for i in range(len(data)):  # a byte at a time: every split point
            os.write(write_fd, data[i : i + 1])
        assert reader.read() == {"a": 1}
        assert reader.read() == {"b": [2]}
        os.write(write_fd, struct.pack(">I", MAX_FRAME_BYTES + 1))
        with pytest.raises(BadFrame, match="over the"):
            reader.read()
        for body in (b"[1]", b"\xff\xfe", b"{nope"):
            os.write(write_fd, struct.pack(">I", len(body)) + body)
            with pytest.raises(BadFrame):
                reader.read()
        os.write(write_fd, struct.pack(">I", 10) + b"{}")
        os.close(write_fd)
        write_fd = -1
        with pytest.raises(BadFrame, match="end of file inside a frame"):
            reader.read()
        assert reader.read() is None  # then a clean end of file
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def test_empty_channel_is_a_clean_end_of_file() -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    try:
        assert FrameReader(read_fd).read() is None
    finally:
        os.close(read_fd)

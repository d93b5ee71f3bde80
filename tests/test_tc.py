"""tc.py's encodings, byte by byte: netem and tbf options against the uapi layouts, decode of what
we encode, the distribution tables against iproute2's files, extended-ack errors, and, on a real
namespace, our tbf against the one iproute2's `tc` installs (netem's side is in the VM lane)."""

from __future__ import annotations

import errno
import struct
import subprocess
from pathlib import Path

import pytest

from drills.errors import BackendError
from drills.netns import kernel, netem_tables, tc
from drills.netns.rtnl import NetlinkFailure, RawLinks, attributes, error_of, rta

DIST_DIRS = (Path("/usr/lib/x86_64-linux-gnu/tc"), Path("/usr/lib/tc"), Path("/usr/lib64/tc"), Path("/usr/share/tc"))


def test_probabilities_are_fractions_of_2_to_the_32() -> None:
    assert tc.probability(100) == 0xFFFFFFFF
    assert tc.probability(0) == 0
    assert tc.probability(1) == 42_949_673  # tc: rint(0.01 * UINT32_MAX)
    assert tc.probability(150) == 0xFFFFFFFF
    assert round(tc.percent(tc.probability(12.5)), 6) == 12.5


def test_netem_qopt_then_attributes_in_the_kernels_layout() -> None:
    spec = tc.Netem(limit_packets=2000, delay_ns=50_000_000, jitter_ns=10_000_000, delay_corr_pct=25.0, loss_pct=1.0,
                    duplicate_pct=100.0, reorder_pct=5.0, gap=1, corrupt_pct=0.5)  # fmt: skip
    raw = spec.encode()
    # struct tc_netem_qopt: latency and jitter in 64 ns ticks, probabilities scaled.
    assert struct.unpack_from("=6I", raw) == (781_250, 2000, 42_949_673, 1, 0xFFFFFFFF, 156_250)
    found = attributes(raw, 24)
    assert struct.unpack("=q", found[tc.TCA_NETEM_LATENCY64]) == (50_000_000,)
    assert struct.unpack("=q", found[tc.TCA_NETEM_JITTER64]) == (10_000_000,)
    assert struct.unpack("=3I", found[tc.TCA_NETEM_CORR]) == (tc.probability(25), 0, 0)
    assert struct.unpack("=2I", found[tc.TCA_NETEM_REORDER]) == (tc.probability(5), 0)
    assert struct.unpack("=2I", found[tc.TCA_NETEM_CORRUPT]) == (tc.probability(0.5), 0)
    # Sent even when zero, so that a change in place clears what the previous settings had.
    assert struct.unpack("=IiIi", found[tc.TCA_NETEM_RATE]) == (0, 0, 0, 0)
    assert tc.TCA_NETEM_LOSS not in found and tc.TCA_NETEM_DELAY_DIST not in found
    assert tc.Netem.decode(raw).integers() == spec.integers()


def test_gilbert_elliott_nest_and_table_attribute() -> None:
    ge = tc.GilbertElliott(p_pct=1.0, r_pct=20.0, h_pct=0.0, k1_pct=0.5)
    table = netem_tables.table("normal")
    raw = tc.Netem(delay_ns=1_000_000, jitter_ns=100_000, loss_model=ge, distribution=table).encode()
    found = attributes(raw, 24)
    nest = attributes(found[tc.TCA_NETEM_LOSS])
    assert list(nest) == [tc.NETEM_LOSS_GE]
    assert struct.unpack("=4I", nest[tc.NETEM_LOSS_GE]) == (42_949_673, tc.probability(20), 0, tc.probability(0.5))
    assert struct.unpack(f"={len(table)}h", found[tc.TCA_NETEM_DELAY_DIST]) == table
    back = tc.Netem.decode(raw)
    assert back.loss_model is not None and back.loss_model.integers() == ge.integers()
    assert back.distribution == table


def test_tbf_options_and_rate64() -> None:
    raw = tc.Tbf(625_000, 3028, 34_278).encode()
    found = attributes(raw)
    fields = struct.unpack("=BBHhHI BBHhHI III", found[tc.TCA_TBF_PARMS])
    assert fields[1] == tc.TC_LINKLAYER_ETHERNET and fields[5] == 625_000 and fields[12] == 34_278
    assert fields[13] == 75_700  # the bucket as tc sends it: its transmit time in 64 ns ticks
    assert tc.TCA_TBF_RATE64 not in found and tc.TCA_TBF_BURST not in found
    assert tc.Tbf.decode(raw) == tc.Tbf(625_000, 3028, 34_278)
    fast = attributes(tc.Tbf(5_000_000_000, 20_000_000, 270_000_000).encode())  # 40 Gbit/s
    assert struct.unpack("=Q", fast[tc.TCA_TBF_RATE64]) == (5_000_000_000,)
    assert struct.unpack_from("=BBHhHI", fast[tc.TCA_TBF_PARMS])[5] == 0xFFFFFFFF


def test_qdisc_message_round_trip() -> None:
    body = tc.qdisc_message(7, 0xD5110000, tc.TC_H_ROOT, tc.Netem(delay_ns=5_000_000))
    parsed = tc.parse_qdisc(bytes(16) + body)
    assert (parsed.index, parsed.kind, parsed.handle, parsed.parent) == (7, "netem", 0xD5110000, tc.TC_H_ROOT)
    assert isinstance(parsed.options, tc.Netem) and parsed.options.delay_ns == 5_000_000


@pytest.mark.parametrize("name", netem_tables.DISTRIBUTIONS)
def test_distribution_tables_equal_iproute2s(name: str) -> None:
    files = [d / f"{name}.dist" for d in DIST_DIRS if (d / f"{name}.dist").is_file()]
    if not files:
        pytest.skip(f"iproute2's {name}.dist is not installed here")
    reference = netem_tables.parse_dist_file(files[0].read_text())
    assert netem_tables.table(name) == reference
    assert len(reference) == 4096


def test_extended_ack_message_is_kept() -> None:
    request = struct.pack("=IHHII", 36, 36, 5, 9, 0) + bytes(20)
    tlv = rta(1, b"Specified qdisc kind is unknown.\0")
    message = struct.pack("=IHHII", 0, 2, 0x200, 9, 0) + struct.pack("=i", -errno.ENOENT) + request + tlv
    assert error_of(message, 0x200) == (errno.ENOENT, "Specified qdisc kind is unknown.")  # the request echoed
    capped = struct.pack("=IHHII", 0, 2, 0x300, 9, 0) + struct.pack("=i", -errno.EINVAL) + request[:16] + tlv
    assert error_of(capped, 0x300) == (errno.EINVAL, "Specified qdisc kind is unknown.")


# --------------------------------------------------------------------------- a real kernel


class Bogus:
    kind = "drillsnosuchqdisc"

    def encode(self) -> bytes:
        return b""


@pytest.mark.netns
def test_against_iproute2_tc_in_a_namespace(foreign_netns: str) -> None:
    """tbf: what we install, tc reads as asked; what tc installs, we decode as asked. An unknown
    kind is MissingQdisc with the kernel's own words."""
    links = RawLinks(kernel.run_in_namespace(foreign_netns, RawLinks.new_socket))
    control = tc.Tc(links)
    index = kernel.run_in_namespace(foreign_netns, lambda: kernel.local_link_index("lo"))
    try:
        control.replace(index, 0xD5110000, tc.TC_H_ROOT, tc.Tbf(625_000, 3028, 34_278), "tbf on lo")
        shown = subprocess.run(
            ["tc", "-n", foreign_netns, "qdisc", "show", "dev", "lo"], check=True, capture_output=True, text=True, timeout=30
        ).stdout
        # (tc prints the burst a byte short, for its own tbf as for ours: its display rounding.)
        assert "tbf d511: root" in shown and "rate 5Mbit" in shown and "lat 50ms" in shown, shown
        ours = next(q for q in control.qdiscs(index) if q.handle == 0xD5110000)
        control.delete(index, 0xD5110000, tc.TC_H_ROOT, "delete tbf")
        assert not [q for q in control.qdiscs(index) if q.handle == 0xD5110000]
        subprocess.run(
            ["tc", "-n", foreign_netns, "qdisc", "replace", "dev", "lo", "root", "handle", "d511:", "tbf",
             "rate", "5mbit", "burst", "3028", "limit", "34278"],
            check=True, timeout=30,
        )  # fmt: skip
        theirs = next(q for q in control.qdiscs(index) if q.handle == 0xD5110000)
        assert theirs.options == ours.options == tc.Tbf(625_000, 3028, 34_278)
        with pytest.raises(tc.MissingQdisc, match="no drillsnosuchqdisc qdisc") as caught:
            control.replace(index, 0xD5130000, tc.TC_H_ROOT, Bogus(), "bogus")  # type: ignore[arg-type]
        assert isinstance(caught.value, BackendError)
        assert isinstance(caught.value.__cause__, NetlinkFailure) and caught.value.__cause__.code == errno.ENOENT
    finally:
        subprocess.run(["tc", "-n", foreign_netns, "qdisc", "del", "dev", "lo", "root"], check=False, timeout=30)
        links.close()

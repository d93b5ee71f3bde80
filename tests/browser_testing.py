"""What the HTML report tests share: a real headless chromium (Debian's `chromium` and
`chromium-driver`, driven through selenium), or a skip, or under CI a failure; a PNG reader for
the screenshots; and a results document that exercises every section of report.html.

Not a conftest: only the HTML report modules import it (`from browser_testing import ...`).
The browser runs headless, without its sandbox (the tests run as root), at a fixed window size
and a device scale factor of 1, so a screenshot's size is known; nothing it loads may come from
the network (every page is checked to have fetched no resource at all).
"""

from __future__ import annotations

import copy
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_reports import sample_results

CHROMIUM = "chromium"
CHROMEDRIVER = "chromedriver"
WINDOW = (1280, 1000)  # CSS pixels = screenshot pixels (scale factor 1)
PAGE_LOAD_TIMEOUT_S = 30


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip the test (no browser here); under CI, fail it: the browser lane must run there."""
    if _in_ci():
        pytest.fail(f"CI=true and the browser tests cannot run: {reason}; `./dev setup` installs chromium", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    """A headless chromium for the module's tests, quit at the end (its processes with it)."""
    yield from chromium(loopback=False)


@pytest.fixture(scope="module", name="browser")
def loopback_browser_fixture() -> Iterator[Any]:
    """The same chromium, but one that reaches servers on 127.0.0.1 (the control page): only
    loopback bypasses the dead proxy, so nothing else is reachable still."""
    yield from chromium(loopback=True)


def chromium(loopback: bool) -> Iterator[Any]:
    missing = [name for name in (CHROMIUM, CHROMEDRIVER) if shutil.which(name) is None]
    if missing:
        unavailable(f"{' and '.join(missing)} not installed: apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("the `selenium` Python package is missing: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(CHROMIUM) or CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--force-device-scale-factor=1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars",
        # No network: a page that needed any would show it as a failed resource (checked too).
        "--proxy-server=127.0.0.1:9", "--no-first-run", "--disable-extensions",
    ):  # fmt: skip
        options.add_argument(arg)
    if not loopback:  # chromium sends even loopback through the proxy: a page from disk reaches nothing
        options.add_argument("--proxy-bypass-list=<-loopback>")
    service = Service(shutil.which(CHROMEDRIVER) or CHROMEDRIVER)  # given: selenium-manager never downloads
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, path: Path) -> None:
    """Load a report from disk; check it fetched nothing beyond itself."""
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    fetched = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert fetched == [], f"the page fetched {fetched}: a report must be self-contained"


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def rows(driver: Any, table_selector: str) -> list[list[str]]:
    """The body rows of a table, as the cells' visible text."""
    out = []
    for row in css(driver, f"{table_selector} tbody tr"):
        out.append([cell.text for cell in row.find_elements("css selector", "td, th")])
    return out


# --------------------------------------------------------------------------- screenshots


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit, non-interlaced RGB or RGBA PNG (what
    chromium writes): enough to say whether a screenshot shows anything."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    out: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        previous = line
        out.append(bytes(b for i, b in enumerate(line) if channels == 3 or i % 4 != 3))
    return width, height, out


def pixel(png: tuple[int, int, list[bytes]], x: int, y: int) -> tuple[int, int, int]:
    row = png[2][y]
    return row[3 * x], row[3 * x + 1], row[3 * x + 2]


def colours(png: tuple[int, int, list[bytes]], step: int = 4) -> set[tuple[int, int, int]]:
    """The distinct colours on a grid of every `step`-th pixel."""
    return {pixel(png, x, y) for y in range(0, png[1], step) for x in range(0, png[0], step)}


# --------------------------------------------------------------------------- a full results document


def full_results(probes: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    """results.json and samples that fill every section: `probes` streams (a fault band, lost
    packets, a recovery each), a partition over three nodes (one pair as intended, one not, one
    unjudged), known answers (one pass, one fail), a time-varying fault's changes (one failed),
    two hosts' clocks and a userspace link. Deterministic: no randomness."""
    results = copy.deepcopy(sample_results(passed=False))
    samples: dict[str, Any] = {}
    base_metric = results["metrics"][0]
    base_phases = results["phases"]["voice"]
    results["metrics"], results["phases"], results["baselines"], results["availability"] = [], {}, {}, {}
    for k in range(probes):
        name = f"probe-{k:02d}"
        results["metrics"].append(base_metric | {"probe": name, "time_to_recover_s": 2.0 + 0.01 * k})
        whole = {"phase": "all", "sent": 9000, "lost": 2000 + k, "loss_pct": 22.2, "rtt_p50_s": 0.0001, "rtt_p95_s": 0.0002, "rtt_p99_s": 0.0003}
        results["phases"][name] = [*copy.deepcopy(base_phases), whole]
        results["baselines"][name] = {"sent": 1000, "lost": 0, "clean": True}
        results["availability"][name] = {"window_s": 1.0, "threshold": 0.5, "windows": 9, "unavailable": 2, "pct": 77.778}
        # 100 packets/s for 10 s; lost while the cut held (2.0 .. 4.0 s); round trips rise with k.
        sent = [i * 10.0 for i in range(1000)]
        samples[name] = {
            "rate_pps": 100, "sent_ms": sent, "duplicates": 0, "reordered": 0,
            "rtt_us": [-1 if 2000.0 <= t < 4000.0 else 100 + 10 * k + (i % 7) * 5 for i, t in enumerate(sent)],
        }  # fmt: skip
    results["verdicts"] = [
        {"objective": "expect[0]: recovery", "probe": "probe-00", "event": "cut (apply)", "measured": "2000.0 ms ± 1.5 ms", "bound": "<= 3 s", "passed": True},
        {"objective": "expect[1]: outage", "probe": "probe-00", "event": "cut (apply)", "measured": "2000.0 ms ± 1.5 ms", "bound": "<= 50 ms", "passed": False},
    ]  # fmt: skip
    results["timeline"] += [
        {"label": "split", "kind": "apply", "fault": "partition", "scheduled_s": 5.0, "issued_s": 5.0002, "confirmed_s": 5.003,
         "skew_s": 0.003, "detail": "partition [a] | [b, c]", "in_force_s": 5.001},
        {"label": "split", "kind": "revert", "fault": "partition", "scheduled_s": 7.0, "issued_s": 7.0002, "confirmed_s": 7.002,
         "skew_s": 0.002, "detail": "partition lifted", "in_force_s": None},
    ]  # fmt: skip
    pair = {
        "step": "split", "rate_pps": 100, "expected_cut": True, "baseline_sent": 100, "baseline_lost": 0, "fault_sent": 190,
        "fault_delivered": 0, "time_to_detect_s": 0.002, "detect_accuracy_s": 0.013, "time_to_recover_s": 0.004,
        "recover_accuracy_s": 0.012, "first_delivery_after_lift_s": 0.004, "reachable_in_baseline": True,
        "expected": "cut", "observed": "cut", "matches": True,
    }  # fmt: skip
    results["partition_pairs"] = [
        pair | {"source": "a", "target": "b"},
        pair | {"source": "b", "target": "a", "fault_delivered": 190, "observed": "open", "matches": False},
        pair | {"source": "a", "target": "c", "baseline_lost": 100, "reachable_in_baseline": False, "observed": "unreachable", "matches": None},
        pair | {"source": "c", "target": "a"},
    ]  # fmt: skip
    known = {
        "probe": "probe-00", "step": "cut", "event": "cut (apply)", "figure": "outage", "value_s": 2.0, "low_s": 1.99,
        "high_s": 2.01, "tolerance_s": 0.01, "source": "D = 2 s by construction", "measured_s": 2.0, "accuracy_s": 0.0015,
    }  # fmt: skip
    results["known_answers"] = [
        known | {"name": "cut-held", "verdict": "pass", "reason": "inside the window", "passed": True},
        known | {"name": "cut-short", "verdict": "fail", "measured_s": 2.05, "reason": "outside the window", "passed": False},
    ]
    results["timeline_changes"] = [
        {"label": "ramp", "direction": "a->b", "scheduled_s": 8.0, "issued_s": 8.0001, "confirmed_s": 8.001, "detail": "delay 20ms", "error": None},
        {"label": "ramp", "direction": "a->b", "scheduled_s": 9.0, "issued_s": 9.0001, "confirmed_s": 9.0001, "detail": "delay 40ms", "error": "RTNETLINK: no such device"},
    ]  # fmt: skip
    results["hosts"] = [
        {"host": "h1", "offset_s": 0.0, "bound_s": 0.0, "rtt_s": 0.0},
        {"host": "h2", "offset_s": -0.0012, "bound_s": 0.0003, "rtt_s": 0.0006},
    ]
    results["link_engines"] = {"l": "kernel", "sat": "userspace"}
    results["method"] |= {
        "application_outage": "from the first failed sample to the first success starting a sustained run (RFC 6413)",
        "tolerated_loss_pct": {"probe-01": 10.0},
        "tolerated_loss": "up to this share of samples may fail in isolation",
    }
    return results, samples

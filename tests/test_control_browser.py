"""Exercise control on a real drill from outside (`drill run --control` in a subprocess, namespaces): the
page in a real headless chromium (tests/browser_testing.py) and `drill control` from the terminal.

What is asserted is fixed by the commands, not by timing: under a controller a manual inject is
delivered only when fired, its cut lasts 60 s (the stop comes first and reverts it), the stop
ends the 90 s drill long before its planned end, and every wait is bounded (a failure, never a
hang).
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_testing import css, loopback_browser_fixture

from drills.runs import RunStore

pytestmark = pytest.mark.netns
browser = loopback_browser_fixture

EXERCISE = """
version: 1
name: control-bed
exercise:
  title: "Control bed"
  scenario_start: "2026-03-11T09:30"
topology:
  addressing: {ipv4: 198.18.47.0/24, loopbacks: 198.19.47.0/24}
  nodes:
    a: {routes: [{to: b, via: b:toa}]}
    b: {routes: [{to: a, via: a:tob}]}
  links: [{name: cable, endpoints: [a:tob, b:toa]}]
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 100}
timeline:
  - {id: brief, at: 1s, fault: note, text: "Situation brief", inject: {title: "Situation brief", to: "NOC"}}
  - id: cut
    at: 20s
    fault: link-down
    link: cable
    for: 60s
    trigger: manual
    inject: {title: "Subsea cable cut", to: "NOC", description: "The cable to b is cut"}
duration: 90s
"""
CLONE_NEWNET = 0x40000000
WAIT_S = 60.0  # every wait's bound: a loaded machine is slow, never this slow


class Drill:
    """`drill run --control` in a subprocess: its stderr lines collected by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_line(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                assert self.proc.poll() is None, f"the drill ended: {''.join(self.seen)}"
                continue
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line matching {pattern!r} in {WAIT_S} s: {''.join(self.seen)}")

    def end(self) -> int:
        code = self.proc.wait(timeout=WAIT_S)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


@pytest.fixture(name="exercise")
def exercise_fixture(tmp_path: Path, drill: Any, host_snapshot: object) -> Iterator[Callable[[], Drill]]:
    path = tmp_path / "bed.yaml"
    path.write_text(EXERCISE)
    started: list[Drill] = []

    def start() -> Drill:
        proc = drill.popen("run", "--no-live", "--control", str(path), "--out", str(tmp_path / "out"))
        started.append(Drill(proc))
        return started[-1]

    yield start
    for running in started:
        if running.proc.poll() is None:  # a failed test: end the drill as Ctrl-C would
            running.proc.send_signal(2)
            running.proc.wait(timeout=WAIT_S)


def until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {WAIT_S} s: {what}")


def the_run(state_dir: Path) -> tuple[str, dict[str, str]]:
    """The one run's id and its nodes' namespaces."""
    (run,) = until(lambda: list(RunStore(state_dir).runs()), "the drill's run directory")

    def nodes() -> dict[str, str] | None:
        try:
            return run.meta().nodes  # empty until deployed
        except FileNotFoundError:
            return None  # the directory is made before its meta.json

    return run.run_id, dict(until(nodes, "the run's namespaces"))


def admin_up(namespace: str, ifname: str) -> bool:
    out = subprocess.run(["ip", "-n", namespace, "-j", "link", "show", "dev", ifname], capture_output=True, text=True, timeout=30, check=True)
    return "UP" in json.loads(out.stdout)[0]["flags"]


class LinkWatch:
    """Every link change of a node's namespace, from a netlink socket opened in it (no process
    enters it, so the drill's teardown has nothing of ours to stop there): a revert made just
    before the namespace goes is seen, however soon it goes. The socket keeps the namespace's
    kernel object alive until `ups` closes it."""

    RTMGRP_LINK = 1
    RTM_NEWLINK = 16
    IFLA_IFNAME = 3
    IFF_UP = 1

    def __init__(self, namespace: str) -> None:
        opened: list[socket.socket] = []

        def open_inside() -> None:  # setns changes this thread's namespace only
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{namespace}", "rb") as ns:
                assert libc.setns(ns.fileno(), CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.bind((0, self.RTMGRP_LINK))
            opened.append(sock)

        thread = threading.Thread(target=open_inside)  # dies with its namespace: the test's stays
        thread.start()
        thread.join(timeout=WAIT_S)
        (self.sock,) = opened

    def ups(self) -> list[str]:
        """The interfaces seen administratively up since the watch began, in order."""
        self.sock.setblocking(False)
        seen: list[str] = []
        with self.sock:
            while True:
                try:
                    data = self.sock.recv(65536)
                except BlockingIOError:
                    return seen
                while len(data) >= 16:
                    length, kind = struct.unpack_from("=IH", data)
                    if kind == self.RTM_NEWLINK:
                        flags = struct.unpack_from("=BxHiII", data, 16)[3]
                        name = self._ifname(data[32:length])
                        if flags & self.IFF_UP and name:
                            seen.append(name)
                    data = data[(length + 3) & ~3 :] if length else b""

    def _ifname(self, attrs: bytes) -> str | None:
        while len(attrs) >= 4:
            length, kind = struct.unpack_from("=HH", attrs)
            if kind == self.IFLA_IFNAME:
                return attrs[4:length].rstrip(b"\0").decode()
            if length < 4:
                return None
            attrs = attrs[(length + 3) & ~3 :]
        return None


def text(driver: Any, selector: str) -> str:
    """The text of the first element matching `selector`, read in one script (never stale)."""
    found = driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", selector)
    return str(found)


def click(driver: Any, selector: str) -> None:
    """Click the first element matching `selector` in one script (found and clicked at once)."""
    driver.execute_script("document.querySelector(arguments[0]).click()", selector)


def test_the_page_holds_fires_and_stops_a_real_drill(exercise: Callable[[], Drill], state_dir: Path, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    run = exercise()
    url = run.wait_line(r"control page: (http://127\.0\.0\.1:\d+/\?token=\S+)").group(1)
    base = url.split("/?", 1)[0]
    assert httpx.get(f"{base}/", timeout=10).status_code == 403  # no token, no page
    assert httpx.post(f"{base}/command", json={"command": "stop", "reason": "x"}, timeout=10).status_code == 403

    browser.get(url)
    from selenium.common.exceptions import StaleElementReferenceException

    # The page re-renders the MSEL table on every state it receives: an element found before an
    # update may be gone when read. Rows are read and clicked in one script (`text`, `click`);
    # a wait tolerates a stale element and looks again.
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(lambda d: d.find_element("id", "phase").text == "running")
    assert browser.find_element("id", "title").text == "Control bed"
    run_id, ns = the_run(state_dir)
    # The clock advances (the page's own tick between the drill's updates).
    first = browser.find_element("id", "exercise-clock").text
    wait.until(lambda d: d.find_element("id", "exercise-clock").text != first)
    assert re.fullmatch(r"T\+00:00:\d\d", browser.find_element("id", "exercise-clock").text)
    assert browser.find_element("id", "scenario-clock").text.startswith("2026-03-11 09:30:")

    # Hold and resume.
    browser.find_element("id", "hold").click()
    wait.until(lambda d: d.find_element("id", "phase").text.startswith("HELD"))
    assert browser.find_element("id", "hold").text == "Resume"
    browser.find_element("id", "hold").click()
    wait.until(lambda d: d.find_element("id", "phase").text == "running")

    # The manual inject is pending until fired; fired, it is delivered and the link is down.
    row = 'tr[data-id="cut"]'
    assert "pending" in text(browser, f"{row} td.status")
    assert admin_up(ns["a"], "tob") and admin_up(ns["b"], "toa")
    click(browser, f"{row} button.fire")
    wait.until(lambda d: "delivered" in text(d, f"{row} td.status"))
    assert "fired" in text(browser, f"{row} td.status")
    until(lambda: not admin_up(ns["a"], "tob") and not admin_up(ns["b"], "toa"), "the cable down in the kernel")
    wait.until(lambda d: "cut: link-down" in d.find_element("id", "in-force").text)

    # An observation, then the stop word: every fault reverted at once, and the drill ends.
    browser.find_element("id", "obs-text").send_keys("NOC saw the alarm")
    browser.find_element("id", "obs-submit").click()
    wait.until(lambda d: "NOC saw the alarm" in d.find_element("id", "observations").text)
    watches = [LinkWatch(ns["a"]), LinkWatch(ns["b"])]
    browser.find_element("id", "stop").click()
    css(browser, 'input[name="stop-reason"][value="real-world emergency"]')[0].click()
    browser.find_element("id", "stop-confirm").click()
    code = run.end()
    assert code in (0, 1, 4), "".join(run.seen)  # the drill's verdict: not the test's concern here
    # Both ends brought up again by the stop, before the namespaces went.
    assert [set(w.ups()) for w in watches] == [{"tob"}, {"toa"}]
    results = json.loads((state_dir.parent / "out" / "results.json").read_text())
    exercise_ = results["exercise"]
    assert exercise_["controlled"] is True
    assert exercise_["stop"]["reason"] == "real-world emergency" and exercise_["stop"]["source"] == "page"
    assert [(h["source"]) for h in exercise_["holds"]] == ["page"]
    fired = next(i for i in exercise_["injects"] if i["id"] == "cut")
    assert (fired["status"], fired["how"], fired["source"]) == ("delivered", "fired", "page")
    assert [o["text"] for o in exercise_["observations"]] == ["NOC saw the alarm"]
    assert not RunStore(state_dir).root.joinpath(run_id, "control.sock").exists()


def test_drill_control_from_the_terminal(exercise: Callable[[], Drill], drill: Any, state_dir: Path) -> None:
    run = exercise()
    run.wait_line(r"control page: http://")
    run_id, ns = the_run(state_dir)
    until(lambda: (state_dir / "runs" / run_id / "control.sock").is_socket(), "the control socket")
    until(lambda: json.loads(drill("control", run_id, "state").stdout)["phase"] == "running", "the drill running")

    held = drill("control", run_id, "hold")
    assert held.returncode == 0, held.stdout + held.stderr
    assert json.loads(drill("control", run_id, "state").stdout)["phase"] == "held"
    again = drill("control", run_id, "hold")
    assert again.returncode == 1, again.stdout  # refused: already held
    assert drill("control", run_id, "resume").returncode == 0

    unknown = drill("control", run_id, "fire", "no-such-inject")
    assert unknown.returncode == 1 and unknown.stdout.strip()
    fired = drill("control", run_id, "fire", "cut")
    assert fired.returncode == 0, fired.stdout + fired.stderr
    until(lambda: not admin_up(ns["a"], "tob"), "the cable down in the kernel")

    watch = LinkWatch(ns["a"])
    stopped = drill("control", run_id, "stop", "ENDEX")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert run.end() in (0, 1, 4), "".join(run.seen)
    assert set(watch.ups()) == {"tob"}
    gone = drill("control", run_id, "hold")  # the run and its socket are gone with the drill
    assert gone.returncode == 2 and (f"no run '{run_id}'" in gone.stderr or "has no control socket" in gone.stderr)
    results = json.loads((state_dir.parent / "out" / "results.json").read_text())
    assert results["exercise"]["stop"]["source"] == "terminal"
    assert [c["command"] for c in results["exercise"]["log"] if c["source"] == "terminal"] == [
        "hold", "hold", "resume", "fire", "fire", "stop",
    ]  # fmt: skip

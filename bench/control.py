#!/usr/bin/env python3
"""Exercise control's cost to the measurement: the sender's lateness of the same drill with no
control, with `--control` served (page and socket, nobody connected), with a headless chromium
on the page (its event stream open), and with that browser's controller recording an
observation every second (each one a command run on the drill clock's thread and a new state
pushed to the page).

    .venv/bin/python bench/control.py [--runs 3] [--seconds 10] [--rate 1000] [--out bench/results/control.json]

The drill: two namespace nodes, one udp-stream probe at `--rate` packets/s, two 1 s link cuts,
`--seconds` long; run in this process by `lifecycle.run` (as `drill run` does), the page's
server in its own thread as `drill run --control` serves it. The modes alternate run by run, so
a burst of another job on the machine hits every mode alike. Reported per mode: the sender's
lateness p50 / p99 / max (actual - scheduled send instant, every packet of the stream) and the
worst step skew (issued - scheduled), each the median over the runs, and every run's figures.

Writes JSON (`--out`) and Markdown (same name, `.md`) and prints the Markdown. Everything
created is removed at the end, also on Ctrl-C or SIGTERM. Run as root, alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))  # bench/ is not a package: for common

import common  # noqa: E402
import httpx  # noqa: E402

from drills.control.session import ControlSession  # noqa: E402
from drills.engine.control import ExerciseControl  # noqa: E402
from drills.lifecycle import run as run_drill  # noqa: E402
from drills.measure import percentile  # noqa: E402

MODES = ("none", "control", "browser", "browser+commands")
TITLES = {
    "none": "no control",
    "control": "`--control`, no browser",
    "browser": "`--control`, headless chromium on the page",
    "browser+commands": "the same, an observation recorded each second",
}
OBSERVE_EVERY_S = 1.0


def chromium() -> Any:
    """A headless chromium through selenium (Debian's chromium and chromium-driver), as the
    browser tests start it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--proxy-server=127.0.0.1:9"):  # fmt: skip  (only loopback bypasses it)
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)


def observer(url: str, token: str, stop: threading.Event) -> Callable[[], int]:
    """A thread posting an observation each second until `stop`; returns how many were accepted."""
    accepted = [0]

    def loop() -> None:
        with httpx.Client(timeout=15) as client:
            k = 0
            while not stop.wait(OBSERVE_EVERY_S):
                k += 1
                answer = client.post(url, json={"command": "observe", "text": f"bench {k}"}, headers={"X-Drills-Token": token})
                accepted[0] += bool(answer.json().get("ok"))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def finish() -> int:
        stop.set()
        thread.join(timeout=20)
        return accepted[0]

    return finish


def one_run(mode: str, path: Path, state: Path, driver: Any) -> dict[str, Any]:
    quiet: Callable[[str], None] = lambda _m: None  # noqa: E731
    observations = 0
    if mode == "none":
        result = run_drill(path, state, log=quiet)
    else:
        control = ExerciseControl()
        with ControlSession(control, "127.0.0.1", 0, quiet) as session:
            base = session.web.url.split("/?", 1)[0]
            if mode.startswith("browser"):
                driver.get(session.web.url)  # the page opens its event stream at once
            finish = observer(f"{base}/command", session.web.token, threading.Event()) if mode == "browser+commands" else None
            try:
                result = run_drill(path, state, log=quiet, control=control)
            finally:
                observations = finish() if finish is not None else 0
                if mode.startswith("browser"):
                    driver.get("about:blank")  # the stream closes before the server stops
    lateness = sorted(x for r in result.records for x in r.send_lateness_s)
    skew = [s.issued_s - s.scheduled_s for s in result.steps]
    return {
        "mode": mode,
        "packets": len(lateness),
        "lateness_p50_ms": percentile(lateness, 0.5) * 1e3 if lateness else 0.0,
        "lateness_p99_ms": percentile(lateness, 0.99) * 1e3 if lateness else 0.0,
        "lateness_max_ms": lateness[-1] * 1e3 if lateness else 0.0,
        "step_skew_max_ms": max(skew) * 1e3 if skew else 0.0,
        "observations": observations,
    }


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        if not mine:
            continue
        row: dict[str, Any] = {"mode": mode, "runs": len(mine)}
        for key in ("lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "step_skew_max_ms"):
            row[key] = round(statistics.median(r[key] for r in mine), 3)
        out.append(row)
    return out


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Exercise control's cost to the measurement (`bench/control.py`)",
        "",
        f"{data['when']} · kernel {data['kernel']} · {data['cpus']} CPUs · Python {data['python']} · "
        f"load average at start {data['loadavg_start']}, at the end {data.get('loadavg_end')} (above 1 on 2 CPUs: other jobs "
        "shared the machine, and the tail figures (p99, max) carry their noise)",
        "",
        f"The same drill ({data['seconds']:g} s, one udp-stream at {data['rate_pps']} packets/s, two 1 s link cuts) "
        f"{data['runs']} times in each mode, the modes alternating. The sender's lateness is actual - scheduled send "
        "instant of every packet (it enters every figure's accuracy bound as its p99); medians over the runs.",
        "",
        "| mode | runs | lateness p50 | lateness p99 | lateness max | worst step skew |",
        "|---|---|---|---|---|---|",
    ]
    for row in data["summary"]:
        lines.append(
            f"| {TITLES[row['mode']]} | {row['runs']} | {row['lateness_p50_ms']:.3f} ms | {row['lateness_p99_ms']:.3f} ms "
            f"| {row['lateness_max_ms']:.2f} ms | {row['step_skew_max_ms']:.2f} ms |"
        )
    lines += ["", "Every run:", "", "| # | mode | packets | p50 ms | p99 ms | max ms | step skew ms | observations |", "|---|---|---|---|---|---|---|---|"]
    for k, r in enumerate(data["every_run"], 1):
        lines.append(
            f"| {k} | {r['mode']} | {r['packets']} | {r['lateness_p50_ms']:.3f} | {r['lateness_p99_ms']:.3f} | "
            f"{r['lateness_max_ms']:.2f} | {r['step_skew_max_ms']:.2f} | {r['observations']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode")
    parser.add_argument("--seconds", type=float, default=10.0, help="each drill's duration")
    parser.add_argument("--rate", type=int, default=1000, help="the stream's packets/s")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "control.json")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/control.py needs root (network namespaces)", file=sys.stderr)
        return 2
    modes = [m for m in args.modes.split(",") if m]
    if unknown := [m for m in modes if m not in MODES]:
        print(f"unknown modes {unknown}: of {', '.join(MODES)}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="drills-bench-control-"))
    state = work / "state"
    state.mkdir()
    path = work / "bench-control.yaml"
    path.write_text(common.line_drill_yaml("bench-control", 101, args.rate, args.seconds))
    data: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), **common.host_meta(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "runs": args.runs, "seconds": args.seconds, "rate_pps": args.rate, "every_run": [],
    }  # fmt: skip
    driver: Any = None

    def cleanup() -> list[str]:
        if driver is not None:
            driver.quit()
        return common.clean_state(state, work)

    with common.interruptible(cleanup) as stop:
        if any(m.startswith("browser") for m in modes):
            driver = chromium()
        for k in range(args.runs):
            for mode in modes:
                row = one_run(mode, path, state, driver)
                data["every_run"].append(row)
                print(f"run {k + 1} {mode}: lateness p99 {row['lateness_p99_ms']:.3f} ms, max {row['lateness_max_ms']:.2f} ms", flush=True)
    if stop.interrupted:
        return 130
    data["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    data["summary"] = summarise(data["every_run"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    text = markdown(data)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""What the web dashboard costs a busy server: devserve (hello world, 1 worker, --no-tui) under
wrk, three ways in turn each round: the dashboard off, on with no page open, and on with the
page open in headless Chromium. Reports the CPU of the supervisor (which serves the page its
stream), of the worker and of the browser, and req/s.

    .venv/bin/python benchmarks/dashboard_cost.py --rounds 3

devserve (supervisor and worker) pinned to CPU 1, so the dashboard's CPU is taken from the
worker's core, the worst case; wrk and Chromium to CPU 0. Needs wrk, /usr/bin/chromium and
the test extra (playwright, psutil).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import psutil
from playwright.sync_api import Browser, sync_playwright

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 8171
DASHBOARD = f"127.0.0.1:{PORT + 1}"
TOKEN = "benchmark-token-0123456789"


def cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def wait_until_serving() -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("devserve did not start") from None
            time.sleep(0.1)


def chromium_processes() -> list[psutil.Process]:
    """This benchmark's browser (not any other Chromium on the machine)."""
    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name()]


def trial(mode: str, seconds: float, browser: Callable[[], Browser]) -> str:
    dashboard = ["--dashboard", "off"] if mode == "off" else ["--dashboard", DASHBOARD]
    command = [
        "taskset", "-c", "1", sys.executable, "-m", "devserver", "asgi_hello:app",
        "--port", str(PORT), "--no-tui", "--no-access-log", "--no-reload", "--control", "off",
        "--dashboard-token", TOKEN, *dashboard,
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=f"{HERE}/apps", stdout=subprocess.DEVNULL)
    page = None
    try:
        wait_until_serving()
        supervisor = psutil.Process(server.pid)
        workers = supervisor.children(recursive=True)
        if mode == "page":
            page = browser().new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"http://{DASHBOARD}/?token={TOKEN}")
            page.wait_for_selector("#connection[data-state=connected]")
        wrk = ["taskset", "-c", "0", "wrk", "-t1", "-c32", f"-d{seconds + 2:.0f}s"]
        load = subprocess.Popen(
            [*wrk, f"http://127.0.0.1:{PORT}/"], stdout=subprocess.PIPE, text=True
        )
        time.sleep(1)  # past wrk's ramp-up
        browsers = chromium_processes()
        before = (cpu([supervisor]), cpu(workers), cpu(browsers))
        time.sleep(seconds)
        after = (cpu([supervisor]), cpu(workers), cpu(browsers))
        output = load.communicate()[0]
    finally:
        if page is not None:
            page.close()
        server.terminate()
        server.wait(10)
    rps = next(line.split()[-1] for line in output.splitlines() if "Requests/sec" in line)
    share = [100 * (b - a) / seconds for a, b in zip(before, after, strict=True)]
    return (
        f"{mode:5}  supervisor {share[0]:5.1f}%  worker {share[1]:5.1f}%"
        f"  chromium {share[2]:5.1f}%  req/s {rps}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})  # Playwright's driver and Chromium inherit CPU 0, with wrk
    with sync_playwright() as playwright:
        launched: list[Browser] = []

        def browser() -> Browser:
            if not launched:
                launched.append(playwright.chromium.launch(executable_path="/usr/bin/chromium"))
            return launched[0]

        for _ in range(args.rounds):
            for mode in ("off", "on", "page"):
                print(trial(mode, args.seconds, browser), flush=True)


if __name__ == "__main__":
    main()

"""Photograph the web dashboard under load: a real devserve (the built-in demo app, 3 workers),
a few client threads, and Debian's Chromium through Playwright, into this folder:

    dashboard.png            the page in dark mode after a minute of mixed traffic
    dashboard-light.png      the same page in light mode
    dashboard-inspector.png  a traced request opened in the inspector

    python screenshots/web.py

Needs /usr/bin/chromium (scripts/check installs it) and the test extra (playwright, httpx).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent
VIEWPORT = {"width": 1440, "height": 900}
WARMUP_SECONDS = 60
# the mix a small app sees: mostly fast pages, some slow, a few missing and failing
PATHS = ["/"] * 40 + ["/?page=2"] * 10 + ["/slow?seconds=0.2", "/nope", "/nope", "/error"]


@contextlib.contextmanager
def devserve() -> Iterator[tuple[str, str]]:
    """The demo app's URL and the dashboard's URL (with its token: a fresh one, given through
    the environment, since devserve prints none without a terminal)."""
    command = [sys.executable, "-m", "devserver", "--no-tui", "--port", "0", "--workers", "3"]
    command += ["--dashboard", "127.0.0.1:0", "--control", "off", "--no-access-log"]
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "DEVSERVE_DASHBOARD_TOKEN": token}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    app = board = line = ""
    for line in proc.stdout:
        if match := re.search(r"serving on (http://\S+)", line):
            app = match.group(1)
        if match := re.search(r"dashboard: (http://[^/\s]+)/", line):
            board = f"{match.group(1)}/?token={token}"
            break
    if not (app and board):
        raise SystemExit(f"devserve did not start: {line.strip()}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    try:
        yield app, board
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def load(app: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=app, timeout=10) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                client.get(random.choice(PATHS), headers={"authorization": "Bearer demo"})


def shoot(page: Page, name: str) -> None:
    page.screenshot(path=str(HERE / name))
    print(f"wrote screenshots/{name}")


def main() -> None:
    stop = threading.Event()
    with devserve() as (app, board), sync_playwright() as playwright:
        clients = [threading.Thread(target=load, args=(app, stop)) for _ in range(4)]
        for client in clients:
            client.start()
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        dark = browser.new_page(viewport=VIEWPORT, color_scheme="dark")  # type: ignore[arg-type]
        dark.goto(board)
        time.sleep(WARMUP_SECONDS)  # a picture of the charts needs their history to fill
        shoot(dark, "dashboard.png")
        light = browser.new_page(viewport=VIEWPORT, color_scheme="light")  # type: ignore[arg-type]
        light.goto(board)
        time.sleep(3)
        shoot(light, "dashboard-light.png")
        stop.set()  # quiet, so that the traced request is the test's own
        for client in clients:
            client.join()
        token = board.split("token=")[1]
        auth = {"authorization": f"Bearer {token}"}
        message = {"id": 1, "command": "trace", "requests": 1}
        httpx.post(board.split("?")[0] + "_devserve/api/command", json=message, headers=auth)
        for _ in range(3):  # one per worker: whichever takes it, it is traced
            httpx.post(app + "/echo", content=b'{"hello": "devserve"}', headers={"cookie": "a=b"})
        row = dark.locator("#requests tbody tr[data-id]", has_text="/echo").first
        row.wait_for(timeout=10_000)
        row.click()
        dark.locator("#inspector").wait_for(state="visible")
        shoot(dark, "dashboard-inspector.png")
        browser.close()


if __name__ == "__main__":
    main()

"""Photograph the control panel attached to a real devserve under load (the demo app, 3 workers,
a few client threads), into this folder:

    panel.svg      the main screen after a minute of mixed traffic
    panel-80x24.svg  the same in the size most terminals open at
    inspector.svg  a traced request in the inspector: scope, headers, ASGI messages
    failure.svg    the banner of a reload that failed (a save with a syntax error)
    help.svg       the keys

    python screenshots/make.py

The panel runs headless (Textual's test driver) on the server's control socket, as `devserve
top` attaches. The snapshot tests draw it from the made-up stream in dashboard/tui/sample.py
instead, so that their pictures never change by themselves. Needs the test extra (httpx).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import DataTable, RichLog  # noqa: E402

from dashboard.tui import Feed, Panel  # noqa: E402
from devserver.control.client import AsyncControlClient  # noqa: E402

T = TypeVar("T")
SIZE = (140, 42)
SMALL = (80, 24)
WORKERS = 3
WARMUP_SECONDS = 60  # a picture of the charts needs their history to fill
DEADLINE = 30.0  # s: for the server to do what was asked (boot, reload, trace)
# the mix a small app sees: mostly fast pages, some slow, a few missing
PATHS = ["/"] * 40 + ["/?page=2"] * 10 + ["/slow?seconds=0.2", "/nope", "/nope"]
REQUESTS_PER_CONNECTION = 50
ERROR_EVERY = 15.0  # s: an app exception now and then, not a stream of tracebacks
APP = "from devserver.demo import app  # the demo app, from a file a save can break\n"
BROKEN = APP + "\ndef oops(:\n    pass\n"


@contextlib.contextmanager
def devserve(folder: Path) -> Iterator[tuple[str, str]]:
    """The app's URL and the control socket of a devserve serving `folder`/app.py, reloading."""
    (folder / "app.py").write_text(APP)
    control = str(folder / "ctl.sock")
    command = [sys.executable, "-m", "devserver", "app:app", "--app-dir", str(folder)]
    command += ["--no-tui", "--reload", "--port", "0", "--workers", str(WORKERS)]
    command += ["--control", control, "--dashboard", "127.0.0.1:0", "--no-access-log"]
    proc = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    url = ""
    for line in proc.stdout:
        if match := re.search(r"serving on (http://\S+)", line):
            url = match.group(1)
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    try:
        yield url, control
    finally:
        proc.terminate()
        proc.wait(timeout=15)


class Load:
    """Client threads sending the PATHS mix, and now and then a request that raises; `quiet`
    holds them (while the traced request is sent, so that it is the one traced)."""

    def __init__(self, app: str, threads: int = 4) -> None:
        self.app, self.stop, self.quiet = app, threading.Event(), threading.Event()
        self.threads = [threading.Thread(target=self._send) for _ in range(threads)]
        self.threads.append(threading.Thread(target=self._fail_now_and_then))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _send(self) -> None:
        while not self.stop.is_set():
            # a new connection now and then: a kept-alive one stays with one worker
            with httpx.Client(base_url=self.app, timeout=10) as client:
                for _ in range(REQUESTS_PER_CONNECTION):
                    if self.stop.is_set():
                        return
                    if self.quiet.is_set():
                        self.stop.wait(0.1)  # held: look again in a moment
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        client.get(random.choice(PATHS), headers={"authorization": "Bearer demo"})

    def _fail_now_and_then(self) -> None:
        while not self.stop.wait(ERROR_EVERY):
            if self.quiet.is_set():
                continue
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.app + "/error", timeout=10)


async def until(pilot: Pilot[Any], probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + DEADLINE
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise SystemExit(f"make.py: no {what} after {DEADLINE:.0f}s")
        await pilot.pause(0.1)
    return value


def shoot(panel: Panel, name: str) -> None:
    panel.save_screenshot(str(HERE / f"{name}.svg"))
    print(f"wrote screenshots/{name}.svg")


def ready(panel: Panel) -> int:
    workers = (panel.feed.snapshot or {}).get("workers", [])
    return sum(worker["state"] == "ready" for worker in workers)


async def inspect_a_traced_request(panel: Panel, pilot: Pilot[Any], load: Load) -> None:
    """Trace (t), send a POST of our own while the load holds off, open it in the inspector."""
    load.quiet.set()
    await pilot.press("t")
    events = panel.query_one("#events", RichLog)
    await until(pilot, lambda: "tracing:" in "".join(s.text for s in events.lines), "tracing")
    for _ in range(WORKERS):  # a connection each: whichever worker takes one, it is traced
        await asyncio.to_thread(
            httpx.post, load.app + "/echo?from=panel", content=b'{"hello": "devserve"}'
        )
    traced = await until(
        pilot,
        lambda: [key for key, r in panel.records_by_id.items() if r.get("trace")],
        "traced request",
    )
    await pilot.press("p")  # the table holds still while the row is picked
    table = panel.query_one("#requests", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(traced[-1]))
    await pilot.press("enter")
    await pilot.pause(1.0)
    shoot(panel, "inspector")
    await pilot.press("escape", "p")
    load.quiet.clear()


async def fail_a_reload(panel: Panel, pilot: Pilot[Any], folder: Path) -> None:
    """Save a syntax error: the reload fails, the old generation keeps serving, the banner
    says so; then the fix, and the banner goes."""
    (folder / "app.py").write_text(BROKEN)
    banner = panel.query_one("#banner")
    await until(pilot, lambda: banner.has_class("shown"), "failure banner")
    await pilot.pause(2.0)  # a few more requests served by the generation that kept serving
    shoot(panel, "failure")
    (folder / "app.py").write_text(APP)
    await until(pilot, lambda: not banner.has_class("shown"), "recovery")


async def photograph(app: str, control: str, folder: Path) -> None:
    panel = Panel(Feed(AsyncControlClient(control)))
    async with panel.run_test(size=SIZE) as pilot, asyncio.timeout(WARMUP_SECONDS * 3):
        await until(pilot, lambda: ready(panel) == WORKERS, "ready workers")
        with Load(app) as load:
            await pilot.pause(WARMUP_SECONDS)
            shoot(panel, "panel")
            await pilot.resize_terminal(*SMALL)
            await pilot.pause(1.5)  # a snapshot or so, drawn in the new size
            shoot(panel, "panel-80x24")
            await pilot.resize_terminal(*SIZE)
            await inspect_a_traced_request(panel, pilot, load)
            await fail_a_reload(panel, pilot, folder)
            await pilot.press("question_mark")
            await pilot.pause(0.5)
            shoot(panel, "help")


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with devserve(folder) as (app, control):
            asyncio.run(photograph(app, control, folder))


if __name__ == "__main__":
    main()

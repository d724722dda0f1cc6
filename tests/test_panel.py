"""The control panel (dashboard/tui) driven by Textual's pilot against a real devserve.

Each test starts the devserve CLI with a control socket and real workers, opens the panel on
that socket exactly as `devserve top` does, presses keys and reads what the widgets show, while
the server's own answers (status, client requests) say whether the keys did what they claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import DataTable, RichLog, Static

from dashboard.tui import Feed, Panel
from dashboard.tui.feed import RequestFilter
from dashboard.tui.screens import ConfirmScreen, InspectorScreen, inspect
from devserver.control.client import AsyncControlClient, ControlClient
from tests.load import Load
from tests.utils import Process, devserve_command, run_devserve, until, until_async

DEADLINE = 20.0
SIZE = (160, 48)


@contextlib.contextmanager
def devserve(tmp_path: Path, *args: str) -> Iterator[tuple[Process, str]]:
    """The devserve CLI serving (the demo app unless `args` names one) with a control socket."""
    control = str(tmp_path / "ctl.sock")
    with run_devserve("--control", control, *args, cwd=str(tmp_path)) as process:
        yield process, control


def drive(control: str, scenario: Callable[[Panel, Pilot[None]], Awaitable[None]]) -> None:
    """Run the panel headless on `control` and play `scenario` with its pilot."""

    async def main() -> None:
        panel = Panel(Feed(AsyncControlClient(control)))
        async with panel.run_test(size=SIZE) as pilot:
            await until_async(
                pilot.pause, lambda: panel.feed.snapshot is not None, "a first snapshot", DEADLINE
            )
            await scenario(panel, pilot)

    asyncio.run(main())


def rows(panel: Panel, table_id: str) -> list[list[str]]:
    table = panel.query_one(table_id, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def events_text(panel: Panel) -> str:
    """The events pane as a person reads it, a line of text each."""
    return "\n".join(strip.text for strip in panel.query_one("#events", RichLog).lines)


def scale_lines(panel: Panel, target: int) -> int:
    """Lines that tell of the scale to `target`: the event's or devserve's own, whichever came
    first (devserve's lines come too while the web dashboard is on, as in these tests)."""
    said = (f"scale: target {target} workers", f"scaling to {target} worker")
    return sum(any(words in line for words in said) for line in events_text(panel).splitlines())


def ready_pids(panel: Panel) -> list[str]:
    return [row[0] for row in rows(panel, "#workers") if row[2] == "ready"]


async def open_inspector(panel: Panel, pilot: Pilot[None]) -> InspectorScreen:
    """Enter on the selected request; the inspector once it is open."""
    await pilot.press("enter")
    screen: InspectorScreen = await until_async(
        pilot.pause,
        lambda: isinstance(panel.screen, InspectorScreen) and panel.screen,
        "the inspector",
        DEADLINE,
    )
    return screen


def text_of(renderables: list[Any]) -> str:
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


# --------------------------------------------------------------------------- keys, for real
def test_plus_adds_a_ready_worker_and_minus_removes_one(tmp_path: Path) -> None:
    with devserve(tmp_path, "--workers", "1") as (_, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            first = await until_async(
                pilot.pause, lambda: ready_pids(panel), "one ready worker", DEADLINE
            )
            await pilot.press("plus")
            both = await until_async(
                pilot.pause,
                lambda: len(ready_pids(panel)) == 2 and ready_pids(panel),
                "2",
                DEADLINE,
            )
            await pilot.press("minus")
            await until_async(
                pilot.pause,
                lambda: len(rows(panel, "#workers")) == 1,
                "back to one worker",
                DEADLINE,
            )
            assert first[0] in both
            assert scale_lines(panel, 2) == 1  # once, though the stream says it twice

        drive(control, scenario)
        assert ControlClient(control).request("status")["server"]["workers_target"] == 1


def test_the_command_palette_runs_the_same_actions(tmp_path: Path) -> None:
    with devserve(tmp_path, "--workers", "1") as (_, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            await until_async(pilot.pause, lambda: ready_pids(panel), "one ready worker", DEADLINE)
            await pilot.press("ctrl+p")
            await until_async(
                pilot.pause,
                lambda: isinstance(panel.screen, CommandPalette),
                "the palette",
                DEADLINE,
            )
            await pilot.press(*"Scale up")
            found = panel.screen.query_one(CommandList)
            await until_async(
                pilot.pause, lambda: found.option_count > 0, "matching commands", DEADLINE
            )
            await pilot.press("enter")
            await until_async(
                pilot.pause, lambda: len(ready_pids(panel)) == 2, "a second worker", DEADLINE
            )

        drive(control, scenario)


def test_r_replaces_every_worker_and_no_request_fails(tmp_path: Path) -> None:
    with devserve(tmp_path, "--workers", "2") as (process, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            before = await until_async(
                pilot.pause,
                lambda: len(ready_pids(panel)) == 2 and ready_pids(panel),
                "2",
                DEADLINE,
            )
            with Load(process.url, threads=3) as load:
                load.wait_for_more(20)
                await pilot.press("r")
                after = await until_async(
                    pilot.pause,
                    lambda: (
                        len(pids := ready_pids(panel)) == 2
                        and len(rows(panel, "#workers")) == 2
                        and not set(pids) & set(before)
                        and pids
                    ),
                    "two new workers, the old ones gone",
                    DEADLINE,
                )
                load.wait_for_more(20)
            assert load.failures == [], load.summary()
            assert {row[1] for row in rows(panel, "#workers")} == {"2"}  # generation 2
            assert set(after).isdisjoint(before)

        drive(control, scenario)


def test_k_kills_the_selected_worker_after_asking(tmp_path: Path) -> None:
    with devserve(tmp_path, "--workers", "2") as (_, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            pids = await until_async(
                pilot.pause,
                lambda: len(ready_pids(panel)) == 2 and ready_pids(panel),
                "2",
                DEADLINE,
            )
            panel.query_one("#workers").focus()
            await pilot.press("down")
            await pilot.press("k")
            await until_async(
                pilot.pause,
                lambda: isinstance(panel.screen, ConfirmScreen),
                "the question",
                DEADLINE,
            )
            await pilot.press("y")
            victim = pids[1]
            now = await until_async(
                pilot.pause,
                lambda: (
                    len(ready := ready_pids(panel)) == 2
                    and victim not in [row[0] for row in rows(panel, "#workers")]
                    and ready
                ),
                "the killed worker replaced",
                DEADLINE,
            )
            assert pids[0] in now

        drive(control, scenario)


def test_a_request_shows_up_and_the_inspector_shows_its_scope_and_headers(tmp_path: Path) -> None:
    with devserve(tmp_path, "--workers", "1") as (process, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            await pilot.press("t")  # trace the next requests: the inspector shows their messages
            await until_async(
                pilot.pause, lambda: ControlClient(control).request("status"), "status", DEADLINE
            )
            headers = {"x-probe": "yes", "authorization": "Bearer s3cret"}
            await asyncio.to_thread(
                httpx.post, process.url + "/echo?probe=1", content=b"hello", headers=headers
            )
            found = await until_async(
                pilot.pause,
                lambda: [r for r in rows(panel, "#requests") if r[3] == "/echo?probe=1"],
                "the request in the requests pane",
                DEADLINE,
            )
            assert found[0][2:5] == ["POST", "/echo?probe=1", "200"]
            table = panel.query_one("#requests", DataTable)
            table.focus()
            index = [r[3] for r in rows(panel, "#requests")].index("/echo?probe=1")
            table.move_cursor(row=index)
            screen = await open_inspector(panel, pilot)
            shown = text_of(inspect(screen.record))
            assert "POST /echo?probe=1 → 200" in shown
            assert "x-probe" in shown and "[redacted]" in shown and "s3cret" not in shown
            assert "http.request" in shown and "http.response.start" in shown
            await pilot.press("escape")
            await until_async(
                pilot.pause,
                lambda: not isinstance(panel.screen, InspectorScreen),
                "closed",
                DEADLINE,
            )

        drive(control, scenario)


def test_the_filter_keeps_only_matching_requests_and_escape_clears_it(tmp_path: Path) -> None:
    with devserve(tmp_path, "--workers", "1") as (process, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            for path in ("/", "/nope", "/", "/nope/deeper"):
                await asyncio.to_thread(httpx.get, process.url + path)
            await until_async(
                pilot.pause, lambda: len(rows(panel, "#requests")) >= 4, "four requests", DEADLINE
            )
            await pilot.press("slash")
            await pilot.press(*"404", "enter")
            shown = await until_async(
                pilot.pause,
                lambda: len(rows(panel, "#requests")) == 2 and rows(panel, "#requests"),
                "2",
                DEADLINE,
            )
            assert [row[3] for row in shown] == ["/nope", "/nope/deeper"]
            assert "filter: 404" in str(panel.query_one("#requests-pane").border_title)
            await pilot.press("escape")
            await until_async(
                pilot.pause, lambda: len(rows(panel, "#requests")) >= 4, "all four again", DEADLINE
            )

        drive(control, scenario)


def test_p_pauses_the_request_stream_and_resuming_shows_what_came_meanwhile(
    tmp_path: Path,
) -> None:
    with devserve(tmp_path, "--workers", "1") as (process, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            def paths() -> list[str]:
                return [row[3] for row in rows(panel, "#requests")]

            await asyncio.to_thread(httpx.get, process.url + "/?before=1")
            await until_async(
                pilot.pause, lambda: "/?before=1" in paths(), "the first request", DEADLINE
            )
            await pilot.press("p")
            assert "PAUSED" in str(panel.query_one("#requests-pane").border_title)
            await asyncio.to_thread(httpx.get, process.url + "/?during=1")
            await until_async(
                pilot.pause,
                lambda: any(r["query"] == "during=1" for r in panel.feed.records),
                "the request in the feed",
                DEADLINE,
            )
            arrived = panel.feed.version
            await until_async(
                pilot.pause, lambda: panel.drawn >= arrived, "a redraw with it", DEADLINE
            )
            assert "/?during=1" not in paths()  # drawn while paused: the table did not move
            await pilot.press("p")
            await until_async(
                pilot.pause,
                lambda: "/?during=1" in paths(),
                "the request made while paused",
                DEADLINE,
            )

        drive(control, scenario)


def test_a_broken_save_shows_the_failure_banner_with_the_file(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    )
    with devserve(tmp_path, "--reload", "--app-dir", str(tmp_path), "app:app") as (process, ctl):
        process.out.wait_for("reload: watching")

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            app.write_text("def oops(:\n    pass\n")
            banner = panel.query_one("#banner", Static)
            await until_async(
                pilot.pause, lambda: banner.has_class("shown"), "the failure banner", DEADLINE
            )
            text = str(banner.render())
            assert "app.py, line 1" in text and "SyntaxError" in text
            assert "keeps serving" in text

        drive(ctl, scenario)


# --------------------------------------------------------------------------- units
@pytest.mark.parametrize(
    ("text", "matching"),
    [
        ("5xx", ["/a 500"]),
        ("404", ["/b 404"]),
        ("POST", ["/c 201"]),
        ("slow", ["/slow 200"]),
        (">100ms", ["/c 201", "/slow 200"]),
        ("/b", ["/b 404"]),
        ("GET 4xx", ["/b 404"]),
        ("", ["/a 500", "/b 404", "/c 201", "/slow 200"]),
    ],
)
def test_request_filter_words(text: str, matching: list[str]) -> None:
    records = [
        {"method": "GET", "path": "/a", "query": "", "status": 500, "duration": 1.0},
        {"method": "GET", "path": "/b", "query": "x=1", "status": 404, "duration": 2.0},
        {"method": "POST", "path": "/c", "query": "", "status": 201, "duration": 120.0},
        {"method": "GET", "path": "/slow", "query": "", "status": 200, "duration": 900.0},
    ]
    chosen = RequestFilter(text)
    assert [f"{r['path']} {r['status']}" for r in records if chosen.matches(r)] == matching


def test_devserve_top_without_a_server_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        devserve_command("top", "--control", str(tmp_path / "none.sock")),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1  # cli.py: `top`/`ctl` with no server answering
    assert result.stderr.count("\n") == 1
    assert "no devserve is listening" in result.stderr


def test_top_opened_late_shows_what_happened_before(tmp_path: Path) -> None:
    """`devserve top` attached after a scale still shows the scale and the new worker's events
    (the stream's recent events), once each."""
    with devserve(tmp_path, "--workers", "1") as (_, control):
        ControlClient(control).request("scale", workers="2")
        until(
            lambda: len(ControlClient(control).request("status")["workers"]) >= 2,
            "a second worker",
            DEADLINE,
        )

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            await until_async(pilot.pause, lambda: scale_lines(panel, 2), "the old scale", DEADLINE)
            assert scale_lines(panel, 2) == 1

        drive(control, scenario)


def test_top_shows_a_workers_exception_with_its_traceback(tmp_path: Path) -> None:
    """Attached to a server without a panel of its own, `top` still shows the app's exception:
    the worker sends it, traceback and all."""
    apps = str(Path(__file__).parent / "cli_apps")
    with devserve(tmp_path, "--app-dir", apps, "supervised_app:app") as (process, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            async with httpx.AsyncClient() as client:
                assert (await client.get(process.url + "/raise")).status_code == 500
            events = panel.query_one("#events")
            shown = await until_async(
                pilot.pause,
                lambda: "raised on purpose" in (t := text_of(events.lines)) and t,
                "it",
                DEADLINE,
            )
            assert "Exception in ASGI application" in shown
            assert "Traceback (most recent call last):" in shown

        drive(control, scenario)


def test_top_says_so_when_the_server_freezes(tmp_path: Path) -> None:
    """A stopped supervisor (SIGSTOP: a debugger, Ctrl-Z) sends nothing and closes nothing:
    `top` says it is disconnected within seconds rather than showing the last numbers as
    live, and follows the server again once it continues."""
    with devserve(tmp_path) as (process, control):
        supervisor = process.proc.pid

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            await until_async(pilot.pause, lambda: panel.feed.connected, "connected", DEADLINE)
            os.kill(supervisor, signal.SIGSTOP)
            try:
                await until_async(
                    pilot.pause, lambda: not panel.feed.connected, "the freeze noticed", DEADLINE
                )
                assert "no word from" in (panel.feed.problem or ""), panel.feed.problem
            finally:
                os.kill(supervisor, signal.SIGCONT)
            await until_async(
                pilot.pause, lambda: panel.feed.connected, "connected again", DEADLINE
            )

        drive(control, scenario)


def test_each_happening_shows_once_though_the_stream_tells_it_twice(tmp_path: Path) -> None:
    """With the web dashboard on (as by default), the stream carries devserve's own log lines
    beside its events: a scale, a killed worker and a restart each reach the panel twice, in
    two wordings, and the events pane shows each once."""
    with devserve(tmp_path, "--workers", "1") as (_, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            await until_async(pilot.pause, lambda: ready_pids(panel), "one ready worker", DEADLINE)
            await pilot.press("plus")
            pids = await until_async(
                pilot.pause, lambda: len(p := ready_pids(panel)) == 2 and p, "2", DEADLINE
            )
            panel.query_one("#workers").focus()
            await pilot.press("down", "k", "y")
            killed = f"(pid {pids[1]},"
            await until_async(
                pilot.pause, lambda: killed in events_text(panel), "the kill", DEADLINE
            )
            await pilot.press("r")
            await until_async(
                pilot.pause, lambda: "serving after" in events_text(panel), "the restart", DEADLINE
            )
            logged = [e["line"] for e in panel.feed.events if e.get("source") == "devserve"]
            assert any("scaling to 2" in line for line in logged)  # the stream said it twice
            assert any(killed in line and "killed" in line for line in logged)
            lines = events_text(panel).splitlines()
            assert scale_lines(panel, 2) == 1
            assert len([line for line in lines if killed in line and "killed" in line]) == 1
            began = ("restart started: generation 2", "starting generation 2")
            assert len([line for line in lines if any(words in line for words in began)]) == 1

        drive(control, scenario)


def test_the_inspector_of_a_request_that_raised_shows_its_traceback(tmp_path: Path) -> None:
    apps = str(Path(__file__).parent / "cli_apps")
    with devserve(tmp_path, "--app-dir", apps, "supervised_app:app") as (process, control):

        async def scenario(panel: Panel, pilot: Pilot[None]) -> None:
            async with httpx.AsyncClient() as client:
                assert (await client.get(process.url + "/raise")).status_code == 500
            table = panel.query_one("#requests", DataTable)
            await until_async(pilot.pause, lambda: table.row_count, "the 500", DEADLINE)
            await until_async(
                pilot.pause,
                lambda: any(e.get("details") for e in panel.feed.events),
                "the worker's exception",
                DEADLINE,
            )
            table.focus()
            table.move_cursor(row=table.row_count - 1)
            screen = await open_inspector(panel, pilot)
            shown = text_of(inspect(screen.record, screen.events))
            assert "GET /raise → 500" in shown
            assert "Traceback (most recent call last):" in shown
            assert "raised on purpose" in shown

        drive(control, scenario)

"""The control panel's look, fed by the fixed sample stream in dashboard/tui/sample.py so that
every run draws the same picture: snapshot tests (pytest-textual-snapshot) at 80x24, the size
most terminals open at, 120x40 and 200x50, and what each size must show, asserted on the
widgets.

A change in the look fails the snapshots on purpose: check the new pictures in the HTML report
pytest writes, then accept them with `pytest tests/test_panel_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer, RichLog, Static
from textual.widgets._toast import Toast

from dashboard.tui import Feed, Panel
from dashboard.tui import format as fmt
from dashboard.tui.events import is_access_line
from dashboard.tui.keys import QUIT_ATTACHED, TRACE_NEXT
from dashboard.tui.sample import RECORDS, START, SampleClient
from dashboard.tui.screens import ConfirmScreen, HelpScreen, InspectorScreen, inspect
from tests.utils import until_async

SIZES = {"80x24": (80, 24), "120x40": (120, 40), "200x50": (200, 50)}
ROUNDS = 50  # of the panel's pending work, before `settled` gives up
SERVER_ERROR = next(index for index, record in enumerate(RECORDS) if record["status"] == 500)


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """The requests' clock column in UTC, wherever the tests run."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


async def drawn(pilot: Pilot[Any]) -> None:
    panel = pilot.app
    assert isinstance(panel, Panel) and isinstance(panel.feed.client, SampleClient)
    client = panel.feed.client
    await until_async(
        pilot.pause,
        lambda: client.sent_all and panel.drawn == panel.feed.version,
        "the sample stream drawn",
    )
    await settled(pilot)


async def settled(pilot: Pilot[Any]) -> None:
    """Until a round of the panel's pending work (messages, animations, idle callbacks) leaves
    the frame as it was, with no table still measuring: tables measure their new rows on idle,
    scroll to the cursor and charts are mounted a moment after the redraw that made them."""
    frame = await frame_after_a_round(pilot)
    for _ in range(ROUNDS):
        again = await frame_after_a_round(pilot)
        if again == frame and not measuring(pilot):
            return
        frame = again
    raise AssertionError(f"the panel still changed after {ROUNDS} rounds")


async def frame_after_a_round(pilot: Pilot[Any]) -> str:
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()  # every widget handled what it had queued, then the loop went idle
    return pilot.app.export_screenshot()


def measuring(pilot: Pilot[Any]) -> bool:
    return any(
        table._require_update_dimensions or table._new_rows  # measured on idle
        for screen in pilot.app.screen_stack
        for table in screen.query(DataTable)
    )


async def inspect_row(pilot: Pilot[Any], row: int) -> None:
    await drawn(pilot)
    table = pilot.app.query_one("#requests", DataTable)
    table.focus()
    table.move_cursor(row=row)
    await pilot.press("enter")
    await settled(pilot)


def play(
    scenario: Callable[[Panel, Pilot[Any]], Awaitable[None]],
    size: tuple[int, int] = SIZES["80x24"],
    notifications: bool = False,
) -> None:
    """Run the panel on the sample stream at `size`, drawn, then `scenario`."""

    async def main() -> None:
        panel = Panel(Feed(SampleClient()))
        async with panel.run_test(size=size, notifications=notifications) as pilot:
            await drawn(pilot)
            await scenario(panel, pilot)

    asyncio.run(main())


def column(panel: Panel, label: str) -> list[str]:
    """What the requests table shows under `label`, top to bottom."""
    table = panel.query_one("#requests", DataTable)
    return [str(cell) for cell in table.get_column(label)]


def events_text(panel: Panel) -> str:
    return "\n".join(strip.text for strip in panel.query_one("#events", RichLog).lines)


# --------------------------------------------------------------------------- the pictures
@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare: Any, size: str) -> None:
    sample = Panel(Feed(SampleClient()))
    assert snap_compare(sample, terminal_size=SIZES[size], run_before=drawn)


def test_inspector_with_a_traced_request(snap_compare: Any) -> None:
    async def first(pilot: Pilot[Any]) -> None:
        await inspect_row(pilot, 0)

    sample = Panel(Feed(SampleClient()))
    assert snap_compare(sample, terminal_size=SIZES["120x40"], run_before=first)


def test_inspector_of_a_request_that_raised(snap_compare: Any) -> None:
    async def failed(pilot: Pilot[Any]) -> None:
        await inspect_row(pilot, SERVER_ERROR)

    sample = Panel(Feed(SampleClient()))
    assert snap_compare(sample, terminal_size=SIZES["80x24"], run_before=failed)


def test_help_screen(snap_compare: Any) -> None:
    async def help_open(pilot: Pilot[Any]) -> None:
        await drawn(pilot)
        await pilot.press("question_mark")
        await settled(pilot)

    sample = Panel(Feed(SampleClient()))
    assert snap_compare(sample, terminal_size=SIZES["80x24"], run_before=help_open)


@pytest.mark.parametrize("size", ["80x24", "120x40"])
def test_failure_banner(snap_compare: Any, size: str) -> None:
    sample = SampleClient(failed=True, events=0)  # the failure and its traceback fill the pane
    assert snap_compare(Panel(Feed(sample)), terminal_size=SIZES[size], run_before=drawn)


# --------------------------------------------------------------------------- what each size shows
@pytest.mark.parametrize("size", SIZES)
def test_each_request_shows_its_time_method_path_status_and_duration(size: str) -> None:
    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        table = panel.query_one("#requests", DataTable)
        labels = [str(column.label) for column in table.columns.values()]
        assert {"TIME", "METHOD", "PATH", "STATUS", "DURATION"} <= set(labels), labels
        assert column(panel, "STATUS")[SERVER_ERROR] == "500"
        assert column(panel, "DURATION")[SERVER_ERROR] == "12.0 ms"
        widest = sum(column.get_render_width(table) for column in table.columns.values())
        assert widest <= table.scrollable_content_region.width  # nothing hides to the right

    play(scenario, SIZES[size])


def test_a_long_path_is_shortened_and_its_status_still_shows() -> None:
    long = {**RECORDS[0], "id": "41207-99", "seq": 99, "start": START + 1.0}
    long |= {"path": "/api/" + "very-long-segment/" * 8, "query": "", "status": 503}

    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        panel.feed.apply({"version": 1, "type": "requests", "requests": [long]})
        await until_async(pilot.pause, lambda: "503" in column(panel, "STATUS"), "the row")
        path = column(panel, "PATH")[-1]
        assert path.startswith("/api/very-long-segment/") and path.endswith("…")

    play(scenario)


@pytest.mark.parametrize("size", SIZES)
def test_the_header_keeps_the_app_its_urls_and_the_totals(size: str) -> None:
    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        header = str(panel.query_one("#summary", Static).render())
        for part in ("app:app", "http://127.0.0.1:8000", "http://127.0.0.1:8001/", "req/s"):
            assert part in header, header
        for part in ("p50 1.20 ms", "p99 4.80 ms", "errors 0.1%", "workers 3/4 ready"):
            assert part in header, header
        assert "…" not in header  # parts that do not fit are left out whole, never cut

    play(scenario, SIZES[size])


def assert_the_panes_share_the_screen(panel: Panel, width: int, height: int) -> None:
    panes = [panel.query_one(name) for name in ("#summary", "#top", "#requests-pane")]
    panes += [panel.query_one("#events"), panel.query_one(Footer)]
    tops = [pane.region.y for pane in panes]
    bottoms = [pane.region.bottom for pane in panes]
    assert tops == [0, *bottoms[:-1]] and bottoms[-1] == height  # no band between them
    workers = panel.query_one("#workers", DataTable)
    assert workers.scrollable_content_region.height >= 1 + 4  # the header and 4 workers
    assert panel.query_one("#requests", DataTable).size.height >= 1 + 3
    assert panel.query_one("#events").scrollable_content_region.height >= 2
    charts = panel.query_one("#charts")
    assert charts.display and charts.region.height >= 1 and charts.region.width > width / 4


@pytest.mark.parametrize("size", SIZES)
def test_the_panes_share_the_screen_top_to_bottom_and_none_vanishes(size: str) -> None:
    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        assert_the_panes_share_the_screen(panel, *SIZES[size])

    play(scenario, SIZES[size])


def test_a_terminal_made_smaller_lays_the_panes_out_for_its_new_size() -> None:
    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        await pilot.resize_terminal(*SIZES["80x24"])
        await settled(pilot)
        assert_the_panes_share_the_screen(panel, *SIZES["80x24"])
        header = str(panel.query_one("#summary", Static).render())
        assert "…" not in header and "workers 3/4 ready" in header, header
        footer = panel.query_one(Footer)
        assert footer.size.width == 80 and footer.virtual_size.width <= 80  # q quit fits

    play(scenario, SIZES["200x50"])


def test_a_focused_pane_keeps_its_rows() -> None:
    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        requests = panel.query_one("#requests", DataTable)
        before = requests.size
        requests.focus()
        await settled(pilot)
        assert requests.has_focus and requests.size == before

    play(scenario)


# --------------------------------------------------------------------------- events, keys
def test_access_lines_show_only_once_asked_for() -> None:
    access = {"kind": "log", "source": "worker", "pid": 41207, "slot": 1, "t": START + 1}
    access["line"] = '127.0.0.1:53122 - "GET /api/items?page=2 HTTP/1.1" 200 2100B 1.1ms'

    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        panel.feed.apply({"version": 1, "type": "event", "event": access})
        await until_async(pilot.pause, lambda: panel.drawn == panel.feed.version, "drawn")
        assert "HTTP/1.1" not in events_text(panel)
        assert "ZeroDivisionError" in events_text(panel)  # the traceback stays in sight
        assert "access log hidden" in str(panel.query_one("#events").border_title)
        await pilot.press("a")
        assert '"GET /api/items?page=2 HTTP/1.1" 200' in events_text(panel)
        assert "access log shown" in str(panel.query_one("#events").border_title)
        await pilot.press("a")
        assert "HTTP/1.1" not in events_text(panel)
        assert events_text(panel).count("loaded 1,204 items") == 1  # redrawn once, not twice

    play(scenario)


@pytest.mark.parametrize("version", ["1.0", "1.1", "2"])
def test_an_access_line_is_told_whatever_its_protocol(version: str) -> None:
    """`a` hides the access log's lines over HTTP/2 too (their request line ends in HTTP/2)."""
    line = f'127.0.0.1:53122 - "GET /api/items HTTP/{version}" 200 2100B 1.1ms'
    assert is_access_line({"kind": "log", "source": "worker", "line": line, "t": START})
    assert not is_access_line({"kind": "log", "source": "worker", "line": "GET / HTTP/2"})


def test_k_outside_the_workers_pane_says_what_to_do() -> None:
    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        panel.query_one("#requests").focus()
        await pilot.press("k")
        await settled(pilot)
        assert not isinstance(panel.screen, ConfirmScreen)  # nothing killed by surprise
        said = [notification.message for notification in panel._notifications]
        assert any("Workers pane" in message for message in said), said
        assert panel.focused is panel.query_one("#workers")
        await pilot.press("k")
        assert isinstance(panel.screen, ConfirmScreen)  # now it asks about the selected one

    play(scenario)


def test_toasts_leave_the_events_pane_in_sight() -> None:
    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        panel.query_one("#requests").focus()
        await pilot.press("k")
        toasts = await until_async(
            pilot.pause, lambda: list(panel.screen.query(Toast)), "the notification"
        )
        events = panel.query_one("#events").region
        assert all(not toast.region.overlaps(events) for toast in toasts)

    play(scenario, notifications=True)


def test_the_palette_has_one_keys_entry_and_one_quit_the_graceful_one() -> None:
    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        commands = list(panel.get_system_commands(panel.screen))
        titles = [command.title for command in commands]
        assert titles.count("Keys") == 1 and titles.count("Quit") == 1, titles
        keys, quits = (commands[titles.index(title)] for title in ("Keys", "Quit"))
        assert quits.help == QUIT_ATTACHED
        panel.call_later(keys.callback)  # as the palette runs a command
        await until_async(pilot.pause, lambda: isinstance(panel.screen, HelpScreen), "help")

    play(scenario)


def test_every_text_about_t_names_the_number_it_traces() -> None:
    said = f"the next {TRACE_NEXT} requests of each worker"

    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        await pilot.press("t")
        client = panel.feed.client
        assert isinstance(client, SampleClient)
        await until_async(pilot.pause, lambda: client.commands, "the trace command")
        assert client.commands == [("trace", {"requests": TRACE_NEXT})]
        await until_async(pilot.pause, lambda: said in events_text(panel), "the panel's note")
        palette = {
            command.title: command.help for command in panel.get_system_commands(panel.screen)
        }
        assert said in palette["Trace"]
        assert said in dict(panel.keys())["t"]
        untraced = inspect({**RECORDS[1], "trace": None})
        assert any(said in str(part) for part in untraced)

    play(scenario)


def test_the_workers_h2_column_shows_each_workers_http2_share_where_there_is_room() -> None:
    """Wide, the workers table has an H2 column: the share of each worker's requests that came
    over HTTP/2 (a dash for one that served none); at 80 columns it is the first to go."""

    async def wide(panel: Panel, pilot: Pilot[Any]) -> None:
        table = panel.query_one("#workers", DataTable)
        assert [str(cell) for cell in table.get_column("H2")] == ["20%", "40%", "60%", fmt.DASH]

    async def narrow(panel: Panel, pilot: Pilot[Any]) -> None:
        table = panel.query_one("#workers", DataTable)
        labels = [str(column.label) for column in table.columns.values()]
        assert "H2" not in labels and {"REQS", "RPS", "P50", "P99"} <= set(labels), labels

    play(wide, SIZES["200x50"])
    play(narrow, SIZES["80x24"])


@pytest.mark.parametrize(
    ("part", "whole", "shown"),
    [
        (0, 0, fmt.DASH),
        (0, 7, "0%"),
        (1, 1000, "<1%"),
        (41, 100, "41%"),
        (999, 1000, ">99%"),
        (5, 5, "100%"),
    ],
)
def test_a_share_never_rounds_a_few_away(part: int, whole: int, shown: str) -> None:
    assert fmt.share(part, whole) == shown


def rendered(parts: list[Any]) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    for part in parts:
        console.print(part)
    return console.export_text()


def test_the_inspector_shows_the_protocol_and_an_http2_requests_stream() -> None:
    """The inspector's scope names the protocol as people write it, with the stream id of a
    request that came over HTTP/2."""
    over_h2 = rendered(inspect({**RECORDS[0], "http_version": "2", "stream": 5}))
    assert re.search(r"^protocol +HTTP/2, stream 5 *$", over_h2, re.MULTILINE), over_h2
    over_h1 = rendered(inspect({**RECORDS[0], "http_version": "1.1", "stream": None}))
    assert re.search(r"^protocol +HTTP/1\.1 *$", over_h1, re.MULTILINE), over_h1
    assert "stream" not in over_h1 and "http_version" not in over_h1


def test_the_inspector_shows_the_exception_a_record_carries() -> None:
    """A record with its own `exception` (what the issue asks the server to send) shows it,
    first, whatever the events say."""
    record = {**RECORDS[SERVER_ERROR], "exception": "Traceback ...\nKeyError: 'user'"}
    shown = "\n".join(str(part) for part in inspect(record, []))
    assert "exception" in shown and "KeyError: 'user'" in shown
    assert shown.index("KeyError") < shown.index("scope")


def test_the_inspector_of_a_request_that_raised_shows_the_traceback_its_worker_logged() -> None:
    async def scenario(panel: Panel, pilot: Pilot[Any]) -> None:
        await inspect_row(pilot, SERVER_ERROR)
        screen = panel.screen
        assert isinstance(screen, InspectorScreen)
        shown = "\n".join(str(part) for part in inspect(screen.record, screen.events))
        assert "logged by worker 41207" in shown and "ZeroDivisionError" in shown

    play(scenario)

"""Snapshot tests of the control panel's look (pytest-textual-snapshot), fed by the fixed sample
stream in dashboard/tui/sample.py so that every run draws the same picture.

A change in the look fails these on purpose: check the new pictures in the HTML report pytest
writes, then accept them with `pytest tests/test_panel_snapshots.py --snapshot-update` (and run
screenshots/make.py for the README's pictures).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from dashboard.tui import Feed, Panel
from dashboard.tui.sample import SampleClient
from tests.utils import until_async

SIZE = (140, 42)
ROUNDS = 50  # of the panel's pending work, before `settled` gives up


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


def test_main_screen(snap_compare: Any) -> None:
    assert snap_compare(Panel(Feed(SampleClient())), terminal_size=SIZE, run_before=drawn)


def test_inspector_with_a_traced_request(snap_compare: Any) -> None:
    async def inspect_first(pilot: Pilot[Any]) -> None:
        await drawn(pilot)
        table = pilot.app.query_one("#requests", DataTable)
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await settled(pilot)

    assert snap_compare(Panel(Feed(SampleClient())), terminal_size=SIZE, run_before=inspect_first)


def test_help_screen(snap_compare: Any) -> None:
    async def help_open(pilot: Pilot[Any]) -> None:
        await drawn(pilot)
        await pilot.press("question_mark")
        await settled(pilot)

    assert snap_compare(Panel(Feed(SampleClient())), terminal_size=SIZE, run_before=help_open)


def test_failure_banner(snap_compare: Any) -> None:
    sample = SampleClient(failed=True, events=0)  # the failure and its traceback fill the pane
    assert snap_compare(Panel(Feed(sample)), terminal_size=SIZE, run_before=drawn)

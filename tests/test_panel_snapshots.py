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

SIZE = (140, 42)


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
    deadline = time.monotonic() + 10
    while not (client.sent_all and panel.drawn == panel.feed.version):
        assert time.monotonic() < deadline, "the sample stream was never drawn"
        await pilot.pause(0.05)
    await settled(pilot)


async def settled(pilot: Pilot[Any]) -> None:
    """Until the frame stays the same for 0.3 s: tables measure their new rows, scroll to the
    cursor and charts are mounted a moment after the redraw that made them (later on a busy
    machine)."""
    deadline = time.monotonic() + 10
    frame, same = pilot.app.export_screenshot(), 0
    while same < 3:
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.1)
        again = pilot.app.export_screenshot()
        measuring = any(
            table._require_update_dimensions or table._new_rows  # measured on idle
            for screen in pilot.app.screen_stack
            for table in screen.query(DataTable)
        )
        same = same + 1 if again == frame and not measuring else 0
        frame = again
        assert time.monotonic() < deadline, "the panel never settled"


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

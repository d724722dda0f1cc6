"""Render the control panel to SVG from the sample stream (dashboard/tui/sample.py): the main
screen, the request inspector, the failure banner and the help screen, into this folder.

    python screenshots/make.py

Run it again whenever the panel's look changes; the README shows these files.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ["TZ"] = "UTC"  # the records' clock, the same wherever this runs
time.tzset()

from textual.widgets import DataTable  # noqa: E402

from dashboard.tui import Feed, Panel  # noqa: E402
from dashboard.tui.sample import SampleClient  # noqa: E402

SIZE = (140, 42)


async def shoot(
    name: str, failed: bool = False, keys: tuple[str, ...] = (), first_request: bool = False
) -> None:
    panel = Panel(Feed(SampleClient(failed)))
    async with panel.run_test(size=SIZE) as pilot:
        client = panel.feed.client
        assert isinstance(client, SampleClient)
        while not (client.sent_all and panel.drawn == panel.feed.version):
            await pilot.pause(0.05)
        frame = panel.export_screenshot()
        while True:  # until two frames agree: new rows are measured, new charts mounted
            await pilot.pause(0.05)
            again = panel.export_screenshot()
            if again == frame:
                break
            frame = again
        if first_request:  # the traced one, at the top of the requests pane
            table = panel.query_one("#requests", DataTable)
            table.focus()
            table.move_cursor(row=0)
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.3)
        panel.save_screenshot(str(HERE / f"{name}.svg"))
    print(f"wrote screenshots/{name}.svg")


async def main() -> None:
    await shoot("panel")
    await shoot("inspector", first_request=True, keys=("enter",))
    await shoot("failure", failed=True)
    await shoot("help", keys=("question_mark",))


if __name__ == "__main__":
    asyncio.run(main())

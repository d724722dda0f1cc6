"""The Textual control panel (`devserve top`): see dashboard/tui/app.py."""

from __future__ import annotations

from dashboard.tui.app import Panel
from dashboard.tui.feed import Client, Feed
from devserver.control.client import AsyncControlClient


def run(path: str) -> None:
    """Open the panel on the server whose control socket is `path`, until the user quits."""
    Panel(Feed(AsyncControlClient(path))).run()


async def run_in_process(client: Client) -> None:
    """The panel of the devserve that runs it (`client` is the in-process transport): `q`
    stops the server, and the panel closes when the server has stopped."""
    await Panel(Feed(client, reconnect=False), owns_server=True).run_async()


__all__ = ["Feed", "Panel", "run", "run_in_process"]

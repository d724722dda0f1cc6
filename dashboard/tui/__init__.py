"""The Textual control panel (`devserve top`): see dashboard/tui/app.py."""

from __future__ import annotations

from dashboard.tui.app import Panel
from dashboard.tui.feed import Feed
from devserver.control.client import AsyncControlClient


def run(path: str) -> None:
    """Open the panel on the server whose control socket is `path`, until the user quits."""
    Panel(Feed(AsyncControlClient(path))).run()


__all__ = ["Feed", "Panel", "run"]

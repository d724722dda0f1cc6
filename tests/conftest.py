"""Fixtures more than one test module uses. Plain helpers (servers, waiting, the tools a test
needs) live in tests/utils.py and the helper modules beside it; a test module never imports
from another test module."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.utils import collected_records, require_module, require_tool

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture
def server_log() -> Iterator[list[logging.LogRecord]]:
    """Records of `devserve.server` and its children (the app's tracebacks, wsgi.errors): a
    handler on the logger itself, so it works with propagate off."""
    with collected_records("devserve.server") as records:
        yield records


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium driven by Playwright, one per test module. The system's own Chromium,
    found on PATH: nothing is downloaded (scripts/check installs Debian's)."""
    sync_api = require_module("playwright.sync_api")
    chromium = require_tool("chromium", "chromium-browser", "google-chrome")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        launched.close()

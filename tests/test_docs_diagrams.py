"""The docs' Mermaid diagrams: every one parses with the Mermaid release the site carries, and
the built site draws them in Chromium (the `browser` fixture) with every request off this
machine refused (docs/hooks/mermaid_local.py). A `;` in a message, for one, ends Mermaid's
statement there."""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.utils import clean_env, missing, require_module

ROOT = Path(__file__).resolve().parents[1]
sync_api = require_module("playwright.sync_api")
sys.path.insert(0, str(ROOT / "docs" / "hooks"))
mermaid_local = require_module("mermaid_local")
if not mermaid_local.CACHED.is_file():
    missing("needs Mermaid fetched: python docs/hooks/mermaid_local.py (scripts/check runs it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The docs built into a temporary folder and served over HTTP on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--quiet", "--site-dir", str(folder)],
        cwd=ROOT,
        env=clean_env(NO_MKDOCS_2_WARNING="1"),
        check=True,
        timeout=120,
    )
    handler = functools.partial(QuietHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def diagrams() -> list[tuple[str, str]]:
    """(where, source) of every ```mermaid block under docs/."""
    found = []
    for path in sorted((ROOT / "docs").rglob("*.md")):
        for n, block in enumerate(
            re.findall(r"^```mermaid\n(.*?)^```", path.read_text(), re.M | re.S)
        ):
            found.append((f"{path.relative_to(ROOT)} #{n + 1}", block))
    return found


@pytest.fixture
def page(browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    """A page of its own (its own cookies and cache) in the module's Chromium."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


def test_every_diagram_parses(page: sync_api.Page) -> None:
    blocks = diagrams()
    assert len(blocks) >= 8
    page.set_content("<!doctype html><title>diagrams</title>")
    page.add_script_tag(path=str(mermaid_local.CACHED))
    errors = {}
    for where, block in blocks:
        error = page.evaluate(
            "async (text) => { try { await mermaid.parse(text); return null; }"
            " catch (e) { return String(e.message || e); } }",
            block,
        )
        if error:
            errors[where] = error
    assert errors == {}


def test_diagrams_draw_with_the_network_cut_off(site: str, page: sync_api.Page) -> None:
    refused: list[str] = []

    def only_this_machine(route: sync_api.Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_machine)
    page.goto(site + "/process-model/")
    # Material draws each diagram into a closed shadow root: what shows from outside is the box
    # it fills (an empty one until drawn) and the drawing's accessible text
    page.wait_for_function(
        "() => { const d = [...document.querySelectorAll('div.mermaid')];"
        " return d.length >= 8 && d.every((e) => e.getBoundingClientRect().height > 150); }",
        timeout=15_000,
    )
    drawn = page.locator("div.mermaid")
    texts = [drawn.nth(n).aria_snapshot() for n in range(drawn.count())]
    assert not [text for text in texts if "error" in text.lower()], texts
    assert not [url for url in refused if "mermaid" in url], refused

"""The web dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

Each test starts a real devserve with its dashboard on a free port and opens the URL it prints
(with the token); what the page shows is checked against the server's own answers (worker
pids from the status API, a request the test made). Playwright's waits poll the page under a
deadline, so nothing here sleeps. No browser is downloaded: scripts/check installs Debian's
chromium, and without it these tests are skipped.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_dashboard_api import dashboard

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
expect = sync_api.expect
WAIT = 15_000  # ms: a worker boots, the stream's next snapshot comes within a second


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    """A fresh page (its own cookies) that fails the test on any script error it logs."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    # once a test stops devserve, the browser itself logs the refused reconnects: not the page's
    lines_of_the_browser = (
        "WebSocket connection",
        "ERR_CONNECTION_REFUSED",
        "the server responded with a status of 401",  # the session check before /login
    )
    errors = [e for e in errors if not any(line in e for line in lines_of_the_browser)]
    assert errors == []


def worker_rows(page: sync_api.Page) -> sync_api.Locator:
    return page.locator("#workers tbody tr[data-pid]")


def test_the_page_shows_the_real_workers(tmp_path: Path, page: sync_api.Page) -> None:
    """With the token the page connects, and its workers table lists the real pids."""
    with dashboard(tmp_path, "--workers", "2") as board:
        page.goto(board.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        expect(worker_rows(page).and_(page.locator("[data-state=ready]"))).to_have_count(
            2, timeout=WAIT
        )
        pids = {str(w["pid"]) for w in board.status()["workers"]}
        shown = {row.get_attribute("data-pid") for row in worker_rows(page).all()}
        assert page.url == board.base + "/"  # the token left the address bar
        board.process.out.stop()
    assert shown == pids


def test_scale_up_adds_a_worker_that_becomes_ready(tmp_path: Path, page: sync_api.Page) -> None:
    with dashboard(tmp_path) as board:
        page.goto(board.url)
        expect(worker_rows(page)).to_have_count(1, timeout=WAIT)
        first = worker_rows(page).first.get_attribute("data-pid")
        page.locator('[data-action="scale-up"]').click()
        ready = worker_rows(page).and_(page.locator("[data-state=ready]"))
        expect(ready).to_have_count(2, timeout=WAIT)
        status = board.status()
        new = [w["pid"] for w in status["workers"] if str(w["pid"]) != first]
        expect(page.locator(f'#workers tbody tr[data-pid="{new[0]}"]')).to_be_visible()
        board.process.out.stop()
    assert status["server"]["workers_target"] == 2


def test_a_request_appears_in_the_stream_and_opens_in_the_inspector(
    tmp_path: Path, page: sync_api.Page
) -> None:
    """A traced request made by the test shows in the stream; clicking it opens the inspector
    with its path, status and ASGI message timeline, and its secret header redacted."""
    with dashboard(tmp_path) as board:
        page.goto(board.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        assert board.command({"command": "trace", "requests": 1}, **board.bearer).is_success
        answer = httpx.get(
            board.app_url() + "/pid?from=the-test",
            headers={"authorization": "Bearer app-secret"},
            timeout=5,
        )
        pid = answer.text
        row = page.locator("#requests tbody tr[data-id]", has_text="/pid")
        expect(row).to_have_count(1, timeout=WAIT)
        record_id = row.get_attribute("data-id")
        row.click()
        inspector = page.locator("#inspector")
        expect(inspector).to_be_visible()
        expect(inspector).to_contain_text("/pid")
        expect(inspector).to_contain_text("200")
        expect(inspector).to_contain_text("[redacted]")
        expect(inspector.locator(".timeline-row", has_text="http.response.start")).to_have_count(1)
        text = inspector.inner_text()
        board.process.out.stop()
    assert record_id is not None and record_id.startswith(f"{pid}-")
    assert "app-secret" not in text


def test_an_apps_exception_shows_in_the_events_with_its_traceback(
    tmp_path: Path, page: sync_api.Page
) -> None:
    """--no-tui: the worker sends the app's exception; the events pane shows it from that
    worker's pid, its traceback folded under the exception until clicked."""
    with dashboard(tmp_path) as board:
        page.goto(board.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        pid = board.status()["workers"][0]["pid"]
        assert httpx.get(board.app_url() + "/raise", timeout=5).status_code == 500
        entry = page.locator("#events li.log.bad", has_text="Exception in ASGI application")
        expect(entry).to_have_count(1, timeout=WAIT)
        expect(entry.locator(".source")).to_have_text(str(pid))
        traceback = entry.locator("details pre")
        expect(traceback).to_be_hidden()
        summary = f"RuntimeError: raised on purpose in pid {pid}"  # the exception names the fold
        expect(entry.locator("details summary")).to_have_text(summary)
        entry.locator("details summary").click()
        expect(traceback).to_be_visible()
        expect(traceback).to_contain_text(f"RuntimeError: raised on purpose in pid {pid}")
        board.process.out.stop()


def test_without_the_token_the_page_asks_for_it(tmp_path: Path, page: sync_api.Page) -> None:
    """Opened without the token, the page finds its session refused and shows the login
    page; pasting the token there opens the dashboard."""
    with dashboard(tmp_path) as board:
        page.goto(board.base + "/")
        expect(page.locator("#login")).to_be_visible(timeout=WAIT)
        assert page.url == board.base + "/login"
        page.locator('input[name="token"]').fill(board.token)  # the form trades it too
        page.locator('input[name="token"]').press("Enter")
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        board.process.out.stop()


def test_read_only_hides_every_action(tmp_path: Path, page: sync_api.Page) -> None:
    with dashboard(tmp_path, "--dashboard-read-only") as board:
        page.goto(board.url)
        expect(page.locator("body")).to_have_class(re.compile(r"\bread-only\b"), timeout=WAIT)
        expect(worker_rows(page)).to_have_count(1, timeout=WAIT)
        for action in ("scale-up", "scale-down", "restart", "reload", "trace", "kill"):
            expect(page.locator(f'[data-action="{action}"]').first).to_be_hidden()
        board.process.out.stop()


def test_the_page_reconnects_after_devserve_restarts(tmp_path: Path, page: sync_api.Page) -> None:
    """devserve stops: the page says it is disconnected; a new devserve on the same address
    (and token) comes up: the page reconnects by itself and shows the new worker."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    args = ("--dashboard", address, "--dashboard-token", "restart-test-token-0123456789")
    with dashboard(tmp_path, *args) as board:
        page.goto(f"{board.base}/?token=restart-test-token-0123456789")
        expect(worker_rows(page)).to_have_count(1, timeout=WAIT)
        old_pid = worker_rows(page).first.get_attribute("data-pid")
        board.process.out.stop()
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "disconnected", timeout=WAIT
        )
    with dashboard(tmp_path, *args) as board:
        new_pid = str(board.status()["workers"][0]["pid"])
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        expect(page.locator(f'#workers tbody tr[data-pid="{new_pid}"]')).to_be_visible(timeout=WAIT)
        expect(page.locator(f'#workers tbody tr[data-pid="{old_pid}"]')).to_have_count(0)
        board.process.out.stop()

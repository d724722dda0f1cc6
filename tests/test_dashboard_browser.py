"""The web dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

Each test starts a real devserve with its dashboard on a free port and opens the URL it prints
(with the token); what the page shows is checked against the server's own answers (worker
pids from /api/status, a request the test made). Playwright's waits poll the page under a
deadline, so nothing here sleeps. No browser is downloaded: scripts/check installs Debian's
chromium, and without it these tests are skipped.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_dashboard_api import APPS, DASHBOARD
from tests.utils import Process, clean_env, devserve_command, spawned

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
    lines_of_the_browser = ("WebSocket connection", "ERR_CONNECTION_REFUSED", "401")
    errors = [e for e in errors if not any(line in e for line in lines_of_the_browser)]
    assert errors == []


class Server:
    def __init__(self, process: Process, base: str, token: str) -> None:
        self.process, self.base, self.token = process, base, token
        self.url = f"{base}/?token={token}"

    def status(self) -> dict:  # type: ignore[type-arg]
        auth = {"authorization": f"Bearer {self.token}"}
        return httpx.get(self.base + "/api/status", headers=auth, timeout=5).json()  # type: ignore[no-any-return]

    def command(self, command: str, **args: object) -> dict:  # type: ignore[type-arg]
        auth = {"authorization": f"Bearer {self.token}"}
        message = {"id": 1, "command": command, **args}
        reply = httpx.post(self.base + "/api/command", json=message, headers=auth, timeout=5)
        return reply.json()  # type: ignore[no-any-return]

    def app_url(self) -> str:
        match = re.search(r"serving on (http://\S+)", self.process.out.text)
        assert match is not None
        return match.group(1)


@contextlib.contextmanager
def devserve(tmp_path: Path, *args: str) -> Iterator[Server]:
    command = devserve_command(
        "--no-tui", "--port", "0", "--dashboard", "127.0.0.1:0",
        "--control", str(tmp_path / "ctl.sock"), "--app-dir", APPS, *args, "supervised_app:app",
    )  # fmt: skip
    with spawned(command, clean_env()) as process:
        line = process.out.wait_for(DASHBOARD.pattern, timeout=20)
        match = DASHBOARD.search(line)
        assert match is not None, line
        given = args[args.index("--dashboard-token") + 1] if "--dashboard-token" in args else ""
        yield Server(process, match.group(1), match.group(2) or given)


def worker_rows(page: sync_api.Page) -> sync_api.Locator:
    return page.locator("#workers tbody tr[data-pid]")


def test_the_page_shows_the_real_workers(tmp_path: Path, page: sync_api.Page) -> None:
    """With the token the page connects, and its workers table lists the real pids."""
    with devserve(tmp_path, "--workers", "2") as server:
        page.goto(server.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        expect(worker_rows(page).and_(page.locator("[data-state=ready]"))).to_have_count(
            2, timeout=WAIT
        )
        pids = {str(w["pid"]) for w in server.status()["workers"]}
        shown = {row.get_attribute("data-pid") for row in worker_rows(page).all()}
        assert page.url == server.base + "/"  # the token left the address bar
        server.process.out.stop()
    assert shown == pids


def test_scale_up_adds_a_worker_that_becomes_ready(tmp_path: Path, page: sync_api.Page) -> None:
    with devserve(tmp_path) as server:
        page.goto(server.url)
        expect(worker_rows(page)).to_have_count(1, timeout=WAIT)
        first = worker_rows(page).first.get_attribute("data-pid")
        page.locator('[data-action="scale-up"]').click()
        ready = worker_rows(page).and_(page.locator("[data-state=ready]"))
        expect(ready).to_have_count(2, timeout=WAIT)
        status = server.status()
        new = [w["pid"] for w in status["workers"] if str(w["pid"]) != first]
        expect(page.locator(f'#workers tbody tr[data-pid="{new[0]}"]')).to_be_visible()
        server.process.out.stop()
    assert status["server"]["workers_target"] == 2


def test_a_request_appears_in_the_stream_and_opens_in_the_inspector(
    tmp_path: Path, page: sync_api.Page
) -> None:
    """A traced request made by the test shows in the stream; clicking it opens the inspector
    with its path, status and ASGI message timeline, and its secret header redacted."""
    with devserve(tmp_path) as server:
        page.goto(server.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        assert server.command("trace", requests=1)["ok"]
        answer = httpx.get(
            server.app_url() + "/pid?from=the-test",
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
        server.process.out.stop()
    assert record_id is not None and record_id.startswith(f"{pid}-")
    assert "app-secret" not in text


def test_without_the_token_the_page_asks_for_it(tmp_path: Path, page: sync_api.Page) -> None:
    with devserve(tmp_path) as server:
        answer = page.goto(server.base + "/")
        login = page.locator("#login")
        expect(login).to_be_visible()
        page.locator('input[name="token"]').fill(server.token)  # the form trades it too
        page.locator('input[name="token"]').press("Enter")
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        server.process.out.stop()
    assert answer is not None and answer.status == 401


def test_read_only_hides_every_action(tmp_path: Path, page: sync_api.Page) -> None:
    with devserve(tmp_path, "--dashboard-read-only") as server:
        page.goto(server.url)
        expect(page.locator("body")).to_have_class(re.compile(r"\bread-only\b"), timeout=WAIT)
        expect(worker_rows(page)).to_have_count(1, timeout=WAIT)
        for action in ("scale-up", "scale-down", "restart", "reload", "trace", "kill"):
            expect(page.locator(f'[data-action="{action}"]').first).to_be_hidden()
        server.process.out.stop()


def test_the_page_reconnects_after_devserve_restarts(tmp_path: Path, page: sync_api.Page) -> None:
    """devserve stops: the page says it is disconnected; a new devserve on the same address
    (and token) comes up: the page reconnects by itself and shows the new worker."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    args = ("--dashboard", address, "--dashboard-token", "restart-test-token-0123456789")
    with devserve(tmp_path, *args) as server:
        page.goto(f"{server.base}/?token=restart-test-token-0123456789")
        expect(worker_rows(page)).to_have_count(1, timeout=WAIT)
        old_pid = worker_rows(page).first.get_attribute("data-pid")
        server.process.out.stop()
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "disconnected", timeout=WAIT
        )
    with devserve(tmp_path, *args) as server:
        new_pid = str(server.status()["workers"][0]["pid"])
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        expect(page.locator(f'#workers tbody tr[data-pid="{new_pid}"]')).to_be_visible(timeout=WAIT)
        expect(page.locator(f'#workers tbody tr[data-pid="{old_pid}"]')).to_have_count(0)
        server.process.out.stop()

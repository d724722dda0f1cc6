"""The web dashboard in a real browser: the system's Chromium, headless, driven by Playwright
(the `browser` fixture in conftest.py).

Each test starts a real devserve with its dashboard on a free port and opens the URL it prints
(with the token); what the page shows is checked against the server's own answers (worker
pids from the status API, a request the test made). Playwright's waits poll the page under a
deadline, so nothing here sleeps. No browser is downloaded: scripts/check installs Debian's
chromium; without it these tests are skipped, and fail under DEVSERVE_CI=1.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dashboard.tui import format as fmt
from tests.dashboard_server import Dashboard, browser_page, dashboard, free_address
from tests.utils import require_module

sync_api = require_module("playwright.sync_api")
expect = sync_api.expect
WAIT = 15_000  # ms: a worker boots, the stream's next snapshot comes within a second


@pytest.fixture
def page(browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    with browser_page(browser) as opened:
        yield opened


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
    with its path, status, protocol and ASGI message timeline, and its secret header redacted;
    its worker's h2 cell says none of its requests came over HTTP/2."""
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
        expect(inspector.locator("tr", has_text="protocol")).to_have_text("protocolHTTP/1.1")
        expect(page.locator(f'#workers tr[data-pid="{pid}"] td.h2')).to_have_text("0%")
        expect(inspector.locator(".timeline-row", has_text="http.response.start")).to_have_count(1)
        text = inspector.inner_text()
        board.process.out.stop()
    assert record_id is not None and record_id.startswith(f"{pid}-")
    assert "app-secret" not in text


SHARES = [(0, 0), (0, 7), (1, 1000), (41, 100), (999, 1000), (5, 5)]  # (part, whole)


def test_an_http2_request_shows_its_protocol_and_stream(
    tmp_path: Path, page: sync_api.Page
) -> None:
    """A request over HTTP/2 (cleartext, prior knowledge) opens in the inspector as HTTP/2 with
    its stream id; its worker's h2 cell counts it (one request of two: 50%); and the page's
    shares read as the terminal panel's."""
    with dashboard(tmp_path) as board:
        page.goto(board.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        with httpx.Client(http1=False, http2=True, timeout=5) as client:
            answer = client.get(board.app_url() + "/pid?over=h2")
        assert httpx.get(board.app_url() + "/pid?over=h1", timeout=5).text == answer.text
        page.locator("#requests tbody tr[data-id]", has_text="/pid?over=h2").click(timeout=WAIT)
        inspector = page.locator("#inspector")
        expect(inspector.locator("tr", has_text="protocol")).to_have_text(
            "protocolHTTP/2, stream 1"
        )
        cell = page.locator(f'#workers tr[data-pid="{answer.text}"] td.h2')
        expect(cell).to_have_text("50%", timeout=WAIT)
        shares = page.evaluate(
            """async (cases) => {
                const fmt = await import("/static/format.js");
                return cases.map(([part, whole]) => fmt.share(part, whole));
            }""",
            SHARES,
        )
        board.process.out.stop()
    assert answer.http_version == "HTTP/2"
    assert shares == [fmt.share(part, whole) for part, whole in SHARES]


def test_an_apps_exception_shows_in_the_events_with_its_traceback(
    tmp_path: Path, page: sync_api.Page
) -> None:
    """--no-tui: the worker sends the app's exception; the events pane shows it from that
    worker's pid, its traceback folded under the exception until clicked, and the request's
    inspector shows the same exception."""
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
        # the request's own record carries the exception: its inspector shows it first
        row = page.locator("#requests tbody tr[data-id]", has_text="/raise")
        expect(row).to_have_count(1, timeout=WAIT)
        row.click()
        shown = page.locator("#inspector pre.exception")
        expect(shown).to_contain_text("Traceback (most recent call last)")
        expect(shown).to_contain_text(f"RuntimeError: raised on purpose in pid {pid}")
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
    args = ("--dashboard", free_address(), "--dashboard-token", "restart-test-token-0123456789")
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


def test_a_frozen_devserve_shows_as_disconnected(tmp_path: Path, page: sync_api.Page) -> None:
    """devserve stopped (SIGSTOP) closes nothing: the page notices the silence, says it is
    disconnected, and reconnects by itself once devserve runs again."""
    with dashboard(tmp_path) as board:
        page.goto(board.url)
        connection = page.locator("#connection")
        expect(connection).to_have_attribute("data-state", "connected", timeout=WAIT)
        os.kill(board.process.proc.pid, signal.SIGSTOP)
        try:
            expect(connection).to_have_attribute("data-state", "disconnected", timeout=WAIT)
        finally:
            os.kill(board.process.proc.pid, signal.SIGCONT)
        expect(connection).to_have_attribute("data-state", "connected", timeout=WAIT)
        expect(worker_rows(page)).to_have_count(1, timeout=WAIT)
        board.process.out.stop()


def test_pause_holds_the_rows_until_resumed(tmp_path: Path, page: sync_api.Page) -> None:
    """Paused while scrolled up with rows waiting below, the table keeps its rows when
    scrolled back down, even as more requests come; resuming shows every one of them."""
    with dashboard(tmp_path) as board, httpx.Client(base_url=board.app_url()) as app:
        page.goto(board.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        rows = page.locator("#requests tbody tr[data-id]")
        status = page.locator("[data-field=requests-status]")
        scroller = page.locator("#requests-pane .scroll")
        for batch in (0, 30):  # more rows than the pane shows, so it scrolls; in batches
            for n in range(batch, batch + 30):  # a worker sends 50 records a tick, no more
                app.get(f"/pid?before={n}")
            expect(rows).to_have_count(batch + 30, timeout=WAIT)
        scroller.evaluate("node => { node.scrollTop = 0; }")
        for n in range(10):
            app.get(f"/pid?held={n}")
        expect(status).to_have_text("scrolled up · 10 new below ↓", timeout=WAIT)
        page.keyboard.press("p")
        expect(status).to_have_text("paused · 0 new")
        last = rows.last.get_attribute("data-id")
        scroller.evaluate("node => { node.scrollTop = node.scrollHeight; }")
        for n in range(10):
            app.get(f"/pid?paused={n}")
        expect(status).to_have_text("paused · 10 new", timeout=WAIT)
        # a snapshot that counts all 80 comes a frame or more after the scroll was handled
        expect(page.locator("[data-metric=requests]")).to_have_text("80", timeout=WAIT)
        held_last = rows.last.get_attribute("data-id")
        shown_while_paused = rows.count()
        page.keyboard.press("p")
        expect(rows.last).to_contain_text("/pid?paused=9")
        expect(rows).to_have_count(80)
        board.process.out.stop()
    assert held_last == last
    assert shown_while_paused == 60


def test_live_workers_never_share_a_memory_colour(tmp_path: Path, page: sync_api.Page) -> None:
    """Slot 1's worker killed again and again: each replacement's memory chip has a colour
    other than slot 0's, however many workers came before it."""
    with dashboard(tmp_path, "--workers", "2") as board:
        page.goto(board.url)
        colours = [live_colours(page, board)]
        for _ in range(9):
            slot_1 = next(w["pid"] for w in board.status()["workers"] if w["slot"] == 1)
            assert board.command({"command": "kill", "pid": slot_1}, **board.bearer).is_success
            expect(page.locator(f'#workers tbody tr[data-pid="{slot_1}"]')).to_have_count(
                0, timeout=WAIT
            )
            colours.append(live_colours(page, board))
        board.process.out.stop()
    assert [len(pair) for pair in colours] == [2] * 10


def live_colours(page: sync_api.Page, board: Dashboard) -> set[str]:
    """The colours of the two ready workers' memory chips, once both are in the chart."""
    ready = worker_rows(page).and_(page.locator("[data-state=ready]"))
    expect(ready).to_have_count(2, timeout=WAIT)
    pids = [w["pid"] for w in board.status()["workers"]]
    chips = page.locator("#charts-pane [data-legend=workers] .chip")
    for pid in pids:
        expect(chips.and_(page.locator(f'[data-pid="{pid}"]'))).to_have_count(1, timeout=WAIT)
    return {chip_colour(page, pid) for pid in pids}


def chip_colour(page: sync_api.Page, pid: int) -> str:
    swatch = page.locator(f'#charts-pane [data-legend=workers] .chip[data-pid="{pid}"] i')
    return str(swatch.evaluate("node => getComputedStyle(node).backgroundColor"))


def test_the_page_greets_an_idle_devserve(tmp_path: Path, page: sync_api.Page) -> None:
    """With no traffic, the events pane still says which devserve it is connected to, once,
    after the replayed events from before the page opened."""
    with dashboard(tmp_path) as board:
        page.goto(board.url)
        greeting = page.locator(
            "#events li", has_text=f"connected to devserve pid {board.process.proc.pid}:"
        )
        expect(greeting).to_have_count(1, timeout=WAIT)
        uptime = page.locator("#top [data-field=uptime]").inner_text()
        expect(page.locator("#top [data-field=uptime]")).not_to_have_text(uptime, timeout=WAIT)
        texts = page.locator("#events li").all_inner_texts()
        board.process.out.stop()
    greeted = [i for i, text in enumerate(texts) if "connected to devserve" in text]
    replayed = [i for i, text in enumerate(texts) if re.search(r"worker \d+ .* ready", text)]
    assert len(greeted) == 1
    assert replayed and max(replayed) < greeted[0]


def test_a_bad_websocket_message_is_noted_and_skipped(tmp_path: Path, page: sync_api.Page) -> None:
    """Messages no devserve should send (not JSON, not an object, a snapshot the page cannot
    draw), slipped into the real stream, are each noted in the events and skipped: the page
    stays connected and goes on drawing the snapshots that follow."""
    sockets: list[sync_api.WebSocketRoute] = []

    def relay(ws: sync_api.WebSocketRoute) -> None:
        ws.connect_to_server()  # the real stream goes on flowing both ways
        sockets.append(ws)

    with dashboard(tmp_path) as board:
        page.route_web_socket(re.compile(r"/_devserve/ws$"), relay)
        page.goto(board.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        for bad in ("this is not json", "[1, 2]", '{"type": "snapshot", "snapshot": null}'):
            sockets[-1].send(bad)
        events = page.locator("#events")
        for said in (
            "a message that is not JSON",
            "a message that is not a JSON object",
            "a snapshot message the page could not show",
        ):
            expect(events).to_contain_text(f"skipped {said}", timeout=WAIT)
        pid = str(board.status()["workers"][0]["pid"])
        expect(worker_rows(page).and_(page.locator(f"[data-pid='{pid}']"))).to_have_count(
            1, timeout=WAIT
        )
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        board.process.out.stop()


def test_signing_out_ends_the_session(tmp_path: Path, page: sync_api.Page) -> None:
    """'sign out' ends the session on the server and goes to the login page; the page opened
    again asks for the token (its session is gone), while another session goes on."""
    with dashboard(tmp_path) as board:
        page.goto(board.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        cookie = page.context.cookies()[0]
        page.locator("#sign-out").click()
        expect(page).to_have_url(re.compile(r"/login$"), timeout=WAIT)
        page.goto(board.base + "/")
        expect(page).to_have_url(re.compile(r"/login$"), timeout=WAIT)
        refused = board.get(
            "/_devserve/api/session", cookie=f"{cookie['name']}={cookie['value']}"
        ).status_code
        others = board.get("/_devserve/api/session", **board.cookie).status_code
        board.process.out.stop()
    assert page.context.cookies() == []  # the server cleared it
    assert (refused, others) == (401, 200)

"""The web dashboard as a new user meets it in the first hour, in headless Chromium (the
`browser` fixture): what the header says once devserve is gone, the panes' shapes at 800, 1280
and 1920 px, the charts' time axis on a fresh server, and how many requests `t` traces.

Each test drives a real devserve (tests/dashboard_server.py). Nothing sleeps: Playwright's
expectations poll the page under a deadline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.dashboard_server import browser_page, dashboard, free_address
from tests.utils import require_module

sync_api = require_module("playwright.sync_api")
expect = sync_api.expect
WAIT = 15_000  # ms: a worker boots, the stream's next snapshot comes within a second
TOKEN = "first-hour-test-token-0123456789"
SIZES = [(800, 900), (1165, 800), (1210, 800), (1280, 800), (1920, 1080)]
TRACE_NEXT = 10  # the terminal panel's `t` (dashboard/tui/app.py)


def test_a_stopped_devserve_leaves_its_last_state_greyed_with_its_age(
    tmp_path: Path, browser: sync_api.Browser
) -> None:
    """devserve stops: the state badge no longer says "running" in green; it says what it last
    saw and how long ago, counting, in the page's muted colour; a devserve back on the same
    address (and token) makes it live again."""
    args = ("--dashboard", free_address(), "--dashboard-token", TOKEN)
    with browser_page(browser) as page:
        state = page.locator("#top [data-field=state]")
        with dashboard(tmp_path, *args) as board:
            page.goto(f"{board.base}/?token={TOKEN}")
            expect(state).to_have_text("running", timeout=WAIT)
            expect(state).to_have_class(re.compile(r"\bok\b"))
            board.process.out.stop()
        connection = page.locator("#connection")
        expect(connection).to_have_attribute("data-state", "disconnected", timeout=WAIT)
        last_seen = r"^last seen (running|stopping) (just now|\d+ s ago)$"
        expect(state).to_have_text(re.compile(last_seen), timeout=WAIT)
        expect(state).to_have_text(re.compile(r" [1-9]\d* s ago$"), timeout=WAIT)  # it counts
        expect(state).not_to_have_class(re.compile(r"\bok\b"))
        stale, muted = colour(state), colour(page.locator("#top [data-field=mode]"))
        with dashboard(tmp_path, *args) as board:
            expect(state).to_have_text("running", timeout=WAIT)
            expect(state).to_have_class(re.compile(r"\bok\b"))
            board.process.out.stop()
    assert stale == muted


def colour(locator: sync_api.Locator) -> str:
    return str(locator.evaluate("node => getComputedStyle(node).color"))


def test_the_panes_use_the_space_at_every_width(tmp_path: Path, browser: sync_api.Browser) -> None:
    """At each width every chart keeps a readable shape (neither a strip nor a sliver), the
    workers pane is as tall as its rows (no empty box under two workers) and as wide as its
    columns, the requests keep room for rows, the server's URL shows whole and nothing runs
    past the right edge."""
    with dashboard(tmp_path, "--workers", "2") as board, browser_page(browser) as page:
        page.goto(board.url)
        ready = page.locator("#workers tbody tr[data-pid][data-state=ready]")
        expect(ready).to_have_count(2, timeout=WAIT)
        measured = {}
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            measured[width] = measure(page)
        board.process.out.stop()
    for width, boxes in measured.items():
        for chart in boxes["charts"]:
            assert chart["height"] >= 60, (width, chart)
            assert 1.5 <= chart["width"] / chart["height"] <= 8, (width, chart)
        assert abs(boxes["workersPane"] - boxes["workersContent"]) <= 2, (width, boxes)
        assert boxes["requests"] >= 180, (width, boxes)
        assert not boxes["urlCut"], (width, boxes)
        assert boxes["pageWidth"] <= width, (width, boxes)
        assert not boxes["workersCut"], (width, boxes)


def measure(page: sync_api.Page) -> dict[str, Any]:
    """The boxes the layout gave: each chart's canvas, the workers pane and what is in it (its
    title and its table), the requests pane; whether the URLs or the workers' columns are
    cut; the page's width."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => {
            const box = (selector) => document.querySelector(selector).getBoundingClientRect();
            const urls = document.querySelector("[data-field=urls]");
            const workers = document.querySelector("#workers-pane .scroll");
            const canvases = document.querySelectorAll("#charts-pane canvas");
            return {
                charts: [...canvases].map((canvas) => {
                    const { width, height } = canvas.getBoundingClientRect();
                    return { width, height };
                }),
                workersPane: box("#workers-pane").height,
                workersContent: box("#workers-pane > h2").height + box("#workers").height + 2,
                requests: box("#requests-pane").height,
                urlCut: urls.scrollWidth > urls.clientWidth,
                workersCut: workers.scrollWidth > workers.clientWidth,
                pageWidth: document.documentElement.scrollWidth,
            };
        }"""
    )


def test_a_fresh_servers_charts_span_what_is_collected(
    tmp_path: Path, browser: sync_api.Browser
) -> None:
    """Half a minute after devserve started, the 5-minute charts span that half minute, not
    five minutes with the data in a sliver at the right edge: the memory bands (a worker's RSS
    every second) cover the plot's width, and the legend says how long the axis is and that
    it is all there is so far."""
    with dashboard(tmp_path) as board, browser_page(browser) as page:
        page.goto(board.url)
        legend = page.locator("#charts-pane [data-legend=time]")
        expect(legend).to_have_text(re.compile(r"^last \d+ s \(all so far\)$"), timeout=WAIT)
        past_the_shortest_axis = r"^last ((3[3-9]|[45]\d) s|1 min( \d+ s)?) \(all so far\)$"
        expect(legend).to_have_text(re.compile(past_the_shortest_axis), timeout=60_000)
        covered = band_coverage(page)
        board.process.out.stop()
    assert covered > 0.85


def band_coverage(page: sync_api.Page) -> float:
    """The share of the memory chart's width that its bands fill, along a line 70% down the
    canvas (inside the bands, above the time labels): a band is drawn translucent, the grid
    and the labels opaque."""
    return page.locator("canvas[data-chart=rss]").evaluate(  # type: ignore[no-any-return]
        """(canvas) => {
            const y = Math.round(canvas.height * 0.7);
            const row = canvas.getContext("2d").getImageData(0, y, canvas.width, 1).data;
            let filled = 0;
            for (let x = 0; x < canvas.width; x++) {
                const alpha = row[x * 4 + 3];
                if (alpha > 60 && alpha < 230) filled++;
            }
            return filled / canvas.width;
        }"""
    )


def test_the_latency_axis_is_logarithmic(tmp_path: Path, browser: sync_api.Browser) -> None:
    """A p50 of 0.2 ms under a p99 of 200 ms (a fast app with one slow path) is drawn clear of
    the floor, the powers of ten between them each a labelled grid line; on a linear axis the
    p50 would lie on the floor, a thousandth of the height up. The page's own chart.js."""
    with dashboard(tmp_path) as board, browser_page(browser) as page:
        page.goto(board.url)
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=WAIT
        )
        axis = page.evaluate(
            """async () => {
                const { Chart } = await import("/static/chart.js");
                const canvas = document.querySelector("canvas[data-chart=latency]");
                const chart = new Chart(canvas, { format: String, log: true });
                const axis = chart.logAxis([{ points: [[0, 0.2], [1, 200]] }]);
                return { lines: axis.lines, p50: axis.share(0.2), p99: axis.share(200) };
            }"""
        )
        board.process.out.stop()
    assert axis["lines"] == [1, 10, 100, 1000]
    assert 0.05 < axis["p50"] < 0.2 and 0.75 < axis["p99"] < 1


def test_the_trace_button_traces_ten_requests_as_every_text_says(
    tmp_path: Path, browser: sync_api.Browser
) -> None:
    """The button, its tip, the help and an untraced request's inspector all say 10, the
    terminal panel's number; pressed, it asks devserve for 10 (the toast reads devserve's
    reply), and of the next 12 requests 10 come back traced."""
    with (
        dashboard(tmp_path) as board,
        browser_page(browser) as page,
        httpx.Client(base_url=board.app_url()) as app,
    ):
        page.goto(board.url)
        button = page.locator('#actions [data-action="trace"]')
        expect(button).to_have_text(f"t trace next {TRACE_NEXT}")
        expect(button).to_have_attribute("title", re.compile(f"next {TRACE_NEXT} requests"))
        page.keyboard.press("?")
        expect(page.locator("#help")).to_contain_text(f"trace the next {TRACE_NEXT} requests")
        page.keyboard.press("Escape")
        app.get("/pid?untraced")
        page.locator("#requests tbody tr[data-id]", has_text="/pid?untraced").click(timeout=WAIT)
        expect(page.locator("#inspector")).to_contain_text(f"Press t (trace next {TRACE_NEXT})")
        page.keyboard.press("Escape")
        button.click()
        said = f"the next {TRACE_NEXT} requests of worker {board.status()['workers'][0]['pid']}"
        expect(page.locator("#toasts")).to_contain_text(said, timeout=WAIT)
        for n in range(12):
            app.get(f"/pid?after={n}")
        expect(page.locator("#requests tbody tr[data-id]", has_text="/pid?after=11")).to_have_count(
            1, timeout=WAIT
        )
        traced = page.locator("#requests tbody tr.traced").count()
        board.process.out.stop()
    assert traced == TRACE_NEXT


def test_k_with_no_worker_selected_says_what_to_do_where_it_is_seen(
    tmp_path: Path, browser: sync_api.Browser
) -> None:
    """`k` with no worker selected kills nothing and says, in a toast (the events pane may be
    below the fold), to select one first; selected, `k` asks before it kills."""
    with dashboard(tmp_path) as board, browser_page(browser, 800, 600) as page:
        page.goto(board.url)
        row = page.locator("#workers tbody tr[data-pid][data-state=ready]")
        expect(row).to_have_count(1, timeout=WAIT)
        page.keyboard.press("k")
        expect(page.locator("#toasts .toast.warn")).to_contain_text("select a worker first")
        row.click()
        page.keyboard.press("k")
        expect(page.locator("#confirm")).to_contain_text(
            f"Kill worker {row.get_attribute('data-pid')}?"
        )
        page.keyboard.press("Escape")
        workers = board.status()["workers"]
        board.process.out.stop()
    assert len(workers) == 1 and workers[0]["restarts"] == 0


def test_an_empty_requests_table_says_why(tmp_path: Path, browser: sync_api.Browser) -> None:
    """Before any request the table says that requests show there; once they come it says
    nothing; a filter that hides every one of them says so, naming the filter."""
    with (
        dashboard(tmp_path) as board,
        browser_page(browser) as page,
        httpx.Client(base_url=board.app_url()) as app,
    ):
        page.goto(board.url)
        hint = page.locator("#requests-pane .empty-hint")
        expect(hint).to_have_text(re.compile(r"^no requests yet: "), timeout=WAIT)
        expect(hint).to_be_visible()
        app.get("/pid?first")
        expect(page.locator("#requests tbody tr[data-id]")).to_have_count(1, timeout=WAIT)
        expect(hint).to_be_hidden()
        page.locator("#filter").fill("/nowhere")
        expect(hint).to_have_text("no request matches “/nowhere”")
        expect(hint).to_be_visible()
        board.process.out.stop()


def test_the_memory_legend_counts_the_workers_it_leaves_out(
    tmp_path: Path, browser: sync_api.Browser
) -> None:
    """With 6 workers the memory chart's legend names the newest 4 and says "+2 more", so
    no one looks for the missing two."""
    with dashboard(tmp_path, "--workers", "6") as board, browser_page(browser) as page:
        page.goto(board.url)
        ready = page.locator("#workers tbody tr[data-pid][data-state=ready]")
        expect(ready).to_have_count(6, timeout=WAIT)
        legend = page.locator("#charts-pane [data-legend=workers]")
        expect(legend.locator(".chip[data-pid]")).to_have_count(4, timeout=WAIT)
        expect(legend.locator(".chip.more")).to_have_text("+2 more")
        board.process.out.stop()

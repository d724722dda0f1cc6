"""A WSGI app, for the WSGI chapter (docs/learn/wsgi.md).

    devserve --no-tui --trace --app-dir docs/examples/learn wsgi_app:app

devserve sees a two-argument callable and serves it through its WSGIAdapter: each request
runs on a pool thread (--threads, 10 by default), because a WSGI app blocks.
GET /: names the thread it ran on and the environ's PATH_INFO.
GET /meet: blocks until a second /meet request arrives (up to 2 seconds), the way a
slow database call blocks; answers "met" if the two ran at once, "alone" if not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

meeting = threading.Barrier(2)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/meet":
        try:
            meeting.wait(timeout=2)  # a blocking call: it holds this thread, not the event loop
            text = "met\n"
        except threading.BrokenBarrierError:
            meeting.reset()
            text = "alone\n"
    else:
        thread = threading.current_thread().name
        text = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} on thread {thread}\n"
    body = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

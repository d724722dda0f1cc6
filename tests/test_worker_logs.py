"""A worker's warnings and errors reach the control API as `log` events where no panel captures
its output (--no-tui, --prod): the app's exception with its traceback, WSGI apps' errors from
their threads, the app's own configured loggers, and a budget that counts what it does not send.

Real devserve processes, the real control socket, real HTTP requests.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devserver.control.client import ControlClient
from devserver.log_forwarding import BURST
from tests.utils import run_devserve

APP = """
import logging
import os

logging.basicConfig(format="app-log %(levelname)s %(name)s %(message)s")
mine = logging.getLogger("myapp")


class PaymentDeclined(Exception):
    pass


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/boom":
        raise PaymentDeclined("card 4242 declined")
    if scope["path"] == "/warn":
        mine.warning("stock low for %s", "sku-17")
    if scope["path"] == "/fork":  # a child process that logs, as some apps' helpers do
        child = os.fork()
        if child == 0:
            mine.warning("from the child")
            os._exit(0)
        os.waitpid(child, 0)
        mine.warning("from the parent, after its child")
    mine.info("not forwarded: below WARNING")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""

WSGI_APP = """
def app(environ, start_response):
    environ["wsgi.errors"].write("looking up " + environ["PATH_INFO"] + "\\n")
    raise LookupError("no such order " + environ["PATH_INFO"])
"""


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def worker_logs(stream: Iterator[dict[str, Any]], count: int, timeout: float = 10.0) -> list[Any]:
    """The next `count` log events from workers (snapshots every second keep the loop turning)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    for message in stream:
        event = message.get("event", {})
        if event.get("kind") == "log" and event["source"] == "worker":
            found.append(event)
        if len(found) >= count or time.monotonic() > deadline:
            break
    assert len(found) >= count, found
    return found


def until_snapshot(stream: Iterator[dict[str, Any]]) -> list[Any]:
    """The workers' log events that arrive before the next snapshot (within a second)."""
    found = []
    for message in stream:
        if message["type"] == "snapshot":
            break
        event = message.get("event", {})  # other messages: records of traced requests
        if event.get("kind") == "log" and event["source"] == "worker":
            found.append(event)
    return found


def serve(tmp_path: Path, source: str, *args: str) -> Any:
    (tmp_path / "logging_app.py").write_text(source)
    control = tmp_path / "ctl.sock"
    return control, run_devserve(
        "--control", str(control), "--app-dir", str(tmp_path), *args, "logging_app:app"
    )


def ready_workers(control: Path) -> dict[int, int]:
    status = ControlClient(str(control)).request("status")
    return {w["pid"]: w["slot"] for w in status["workers"] if w["state"] == "ready"}


def test_an_apps_exception_becomes_a_log_event_with_its_traceback(tmp_path: Path) -> None:
    """--prod: the 500's exception is a `log` event of the worker that raised it, with the
    traceback apart from the line; the worker's own output still has it."""
    control, running = serve(tmp_path, APP, "--prod", "--workers", "1")
    with running as proc:
        workers = ready_workers(control)
        stream = ControlClient(str(control)).subscribe()
        assert next(stream)["type"] == "snapshot"
        assert get(proc.port, "/boom") == 500
        (event,) = worker_logs(stream, 1)
        stream.close()
        assert event["line"] == "Exception in ASGI application"
        assert (event["level"], event["logger"]) == ("error", "devserve.server")
        assert workers[event["pid"]] == event["slot"]
        details = event["details"]
        assert details.startswith("Traceback (most recent call last):")
        assert 'raise PaymentDeclined("card 4242 declined")' in details
        assert details.rstrip().endswith("PaymentDeclined: card 4242 declined")
        proc.out.wait_for(r"PaymentDeclined: card 4242 declined")  # still in the worker's log


def test_the_apps_own_warnings_are_sent_once_it_set_up_logging(tmp_path: Path) -> None:
    """An app that configured logging: its WARNING records are sent (INFO ones are not), and
    they still reach its own handler."""
    control, running = serve(tmp_path, APP, "--no-tui")
    with running as proc:
        stream = ControlClient(str(control)).subscribe()
        assert next(stream)["type"] == "snapshot"
        assert get(proc.port, "/warn") == 200
        (event,) = worker_logs(stream, 1)
        stream.close()
        assert (event["level"], event["logger"], event["line"]) == (
            "warning",
            "myapp",
            "stock low for sku-17",
        )
        assert "details" not in event
        proc.out.wait_for(r"app-log WARNING myapp stock low for sku-17")
        assert "not forwarded" not in str(event)


def test_what_a_forked_child_logs_is_not_sent_as_the_workers(tmp_path: Path) -> None:
    """A process the app forks inherits the handler and the channel's socket: it must not
    write frames into the worker's channel (they would interleave with the worker's own)."""
    control, running = serve(tmp_path, APP, "--no-tui")
    with running as proc:
        stream = ControlClient(str(control)).subscribe()
        assert next(stream)["type"] == "snapshot"
        assert get(proc.port, "/fork") == 200
        (event,) = worker_logs(stream, 1)  # the child logged first: it would come first
        stream.close()
        assert event["line"] == "from the parent, after its child"
        proc.out.wait_for("app-log WARNING myapp from the child")  # its own stderr has it


def test_a_wsgi_apps_errors_are_sent_from_its_thread(tmp_path: Path) -> None:
    """WSGI apps run in a thread pool: what they write to wsgi.errors (logged on that thread)
    arrives, and so does the exception they raise."""
    control, running = serve(tmp_path, WSGI_APP, "--prod", "--interface", "wsgi")
    with running as proc:
        stream = ControlClient(str(control)).subscribe()
        assert next(stream)["type"] == "snapshot"
        assert get(proc.port, "/orders/9") == 500
        written, raised = worker_logs(stream, 2)
        stream.close()
        assert (written["logger"], written["line"]) == (
            "devserve.server.wsgi",
            "looking up /orders/9",
        )
        assert raised["level"] == "error"
        assert raised["details"].rstrip().endswith("LookupError: no such order /orders/9")


def test_a_flood_of_errors_is_counted_not_sent(tmp_path: Path) -> None:
    """An app failing on every request: a burst is sent, the rest is counted, and the count
    arrives by itself once the flood stops, so every failure is accounted for."""
    control, running = serve(tmp_path, APP, "--prod", "--workers", "1")
    with running as proc:
        stream = ControlClient(str(control)).subscribe()
        assert next(stream)["type"] == "snapshot"
        sent = 0
        for _ in range(BURST * 3):
            assert get(proc.port, "/boom") == 500
            sent += 1
        errors, dropped = 0, 0
        deadline = time.monotonic() + 20
        while errors + dropped < sent:  # the count follows by itself, a second after the burst
            assert time.monotonic() < deadline, (errors, dropped, sent)
            for event in until_snapshot(stream):
                note = re.match(r"(\d+) more warning\(s\) and error\(s\) were not", event["line"])
                if note:
                    dropped += int(note.group(1))
                else:
                    errors += 1
        stream.close()
        assert errors + dropped == sent
        assert dropped >= BURST, (errors, dropped)  # most of the flood was counted, not sent

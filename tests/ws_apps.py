"""The WebSocket tests' server side: `ECHO_APP` (one source for both loops), `WSApp` (paths
that choose a behaviour and record what the app saw) and `serving`, an in-process server for it.

Apps report what they saw as lines (`Reports`), awaited like a subprocess's output: the test
synchronises on those, on `threading.Event`s and on socket reads, never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from tests.utils import Running, run_server
from tests.ws_client import MiB

Scope = dict[str, Any]

# The echo app, as source: written to a file for the devserve subprocess (uvloop) and exec'd for
# the in-process server (asyncio), so both loops run the very same app. It reports what it saw as
# lines `<path> <event>`: printed by the subprocess, collected by `Reports` in-process.
ECHO_APP = '''
"""Echoes text and bytes; "close CODE REASON" makes it close; reports each disconnect."""


def report(line):
    print("ws_app:", line, flush=True)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    path = scope["path"]
    if scope["type"] == "http":
        report(f"{path} http")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    assert (await receive())["type"] == "websocket.connect"
    offered = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": offered[0] if offered else None,
            "headers": [(b"x-echo", b"accepted")],
        }
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            report(f"{path} disconnect {message['code']} {message.get('reason', '')}")
            return
        text = message.get("text")
        if text is not None and text.startswith("close "):
            _, code, reason = text.split(" ", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
'''


class Reports:
    """Lines an in-process app reports, awaited like a subprocess's output (`wait_for`)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 5.0) -> str:
        regex = re.compile(pattern)
        with self._changed:
            found: list[str] = []

            def match() -> bool:
                found[:] = [line for line in self.lines if regex.search(line)]
                return bool(found)

            if not self._changed.wait_for(match, timeout):
                raise AssertionError(f"no report matching {pattern!r} in {self.lines}")
            return found[0]


def load_echo_app(report: Callable[[str], None]) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(ECHO_APP, "<ECHO_APP>", "exec"), namespace)
    namespace["report"] = report
    return namespace["app"]


class WSApp:
    """The first path segment picks a behaviour (`ws_<name>`); anything else is the echo app.

    Every scope is recorded (its type above all); messages, errors and the flood's sent-count are
    recorded for the test thread; `gate` is a threading.Event the test sets to let an app go on.
    """

    FLOOD = 200  # 1 MiB messages the /flood app sends

    def __init__(self) -> None:
        self.reports = Reports()
        self.echo = load_echo_app(self.reports)
        self.scopes: list[Scope] = []
        self.received: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self.sent = 0
        self.gate = threading.Event()

    def scope_types(self) -> list[str]:
        return [scope["type"] for scope in self.scopes]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        self.scopes.append(scope)
        name = scope["path"][len(scope["root_path"]) :].split("/")[1]
        handler = getattr(self, "ws_" + name.replace("-", "_"), None)
        if scope["type"] != "websocket" or handler is None:
            await self.echo(scope, receive, send)
        else:
            await handler(scope, receive, send)

    async def wait_gate(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 10)

    async def record_all(self, scope: Scope, receive: Any) -> None:
        """Record every message until the disconnect, then report `<path> done`."""
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] == "websocket.disconnect":
                self.reports(f"{scope['path']} done")
                return

    async def accept(self, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})

    # ---- rejections
    async def ws_reject(self, scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async def ws_deny(self, scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"x-deny", b"yes"), (b"content-type", b"text/plain")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"go away"})

    async def ws_deny_chunked(self, scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        for part in (b"go ", b"away"):
            await send({"type": "websocket.http.response.body", "body": part, "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b""})

    # ---- failures
    async def ws_raise_before(self, scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("boom before accept")

    async def ws_raise_after(self, scope: Scope, receive: Any, send: Any) -> None:
        await self.accept(receive, send)
        raise RuntimeError("boom after accept")

    async def ws_return_after(self, scope: Scope, receive: Any, send: Any) -> None:
        await self.accept(receive, send)

    async def ws_return_before(self, scope: Scope, receive: Any, send: Any) -> None:
        await receive()

    # ---- flow
    async def ws_late_accept(self, scope: Scope, receive: Any, send: Any) -> None:
        """Accepts only once the gate opens, then records what arrives."""
        await receive()
        self.reports(f"{scope['path']} waiting")
        await self.wait_gate()
        await send({"type": "websocket.accept"})
        await self.record_all(scope, receive)

    async def ws_hold(self, scope: Scope, receive: Any, send: Any) -> None:
        """Accepts, reads nothing until the gate opens, then records everything."""
        await self.accept(receive, send)
        await self.wait_gate()
        await self.record_all(scope, receive)

    async def ws_flood(self, scope: Scope, receive: Any, send: Any) -> None:
        """Sends FLOOD 1 MiB messages as fast as send() lets it, counting them."""
        await self.accept(receive, send)
        block = bytes(MiB - 4)
        try:
            for n in range(self.FLOOD):
                await send({"type": "websocket.send", "bytes": n.to_bytes(4, "big") + block})
                self.sent += 1
        except BaseException as exc:
            self.errors.append(exc)
            self.reports(f"{scope['path']} failed")
            raise
        self.reports(f"{scope['path']} flooded")

    async def ws_gone(self, scope: Scope, receive: Any, send: Any) -> None:
        """After the disconnect, tries one more send and records what it raised."""
        await self.accept(receive, send)
        await self.record_all(scope, receive)
        try:
            await send({"type": "websocket.send", "text": "anyone there?"})
        except BaseException as exc:
            self.errors.append(exc)
        self.reports(f"{scope['path']} sent after gone")


@dataclasses.dataclass
class Served:
    server: Running
    app: WSApp

    @property
    def port(self) -> int:
        return self.server.port


@contextlib.contextmanager
def serving(**options: Any) -> Iterator[Served]:
    """An in-process server for a fresh WSApp; the gate opens before the server stops.

    The server is stopped and its thread joined here, because `run_server` calls `stop()` while
    its thread lives, which raises once the loop is closed: a test that stopped the server
    itself would race with the thread's last moments.
    """
    app = WSApp()
    before = set(threading.enumerate())
    with run_server(app, **options) as server:
        [thread] = set(threading.enumerate()) - before
        try:
            yield Served(server, app)
        finally:
            app.gate.set()
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                server.stop()
            thread.join(15)


def unique(prefix: str = "/echo") -> str:
    """A path no other test uses: reports name their path, and a server may be shared."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"

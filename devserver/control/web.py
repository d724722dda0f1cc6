"""The admin ASGI app, served by the supervisor with devserve's own HTTP and WebSocket stack.

Always (on --admin and on the dashboard's address), open to anyone who can connect:
    GET  /livez          200 while the supervisor runs (it answers, so it lives)
    GET  /readyz         200 when at least one worker serves and devserve is not stopping, else 503
    GET  /metrics        Prometheus exposition (control/prometheus.py), in the format asked for
With the web dashboard (--dashboard):
    GET  /               the page (dashboard/web/static/index.html: no data in it); /?token=T
                         trades the token for a session (a cookie, and the page key in the
                         redirect's fragment); a wrong token gets the login page
    GET  /login          the login page (the page goes there when its session is refused)
    GET  /static/NAME    the page's files (no secrets in them: open)
and behind the token or a session (control/access.py), under one prefix so that the cookie,
which browsers send to every port of a host, reaches no path of the app's:
    GET  /_devserve/api/session    {"read_only": bool}: whether the session still works
    POST /_devserve/api/logout     ends the session (the page's "sign out"): its cookie and key
                                   are refused from now on, and its open WebSockets closed
    GET  /_devserve/api/status     the control API's snapshot
    POST /_devserve/api/command    one control API request as JSON; its reply as JSON
    WS   /_devserve/ws             the control API: a "hello", then the stream (with the recent
                                   events, so a page opened late still shows what happened);
                                   requests in, replies out
What goes to a page never holds the token (a session must not be a way to get it, or signing
out and expiry would mean nothing): the snapshot's dashboard URL is cut to `?token=abcd…`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from devserver.control import schema
from devserver.control.access import PREFIX, PROTOCOL, Access, same_origin
from devserver.control.hub import Hub

logger = logging.getLogger("devserve.supervisor")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Scope = dict[str, Any]

# the page's files, beside the server in the same distribution (read, never imported)
STATIC = Path(__file__).resolve().parents[2] / "dashboard" / "web" / "static"
API_PATH = PREFIX + "/api/"
WS_PATH = PREFIX + "/ws"
MAX_COMMAND = 64 * 1024
READ_ONLY_COMMANDS = {"status"}
ENDED = 1008  # the WebSocket close code for a session that expired or signed out (policy)
JSON = b"application/json"
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
}
# the page loads only its own files and talks only to its own server
PAGE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]


@dataclass(frozen=True)
class Dashboard:
    hub: Hub
    access: Access
    static: Path = STATIC


def admin_app(
    status: Callable[[], dict[str, Any]],
    metrics: Callable[[str], tuple[bytes, str]],
    dashboard: Dashboard | None = None,
) -> Callable[..., Awaitable[None]]:
    """`status()` returns {"ready": bool, ...}: the supervisor's view, read on every request;
    `metrics(accept)` returns the Prometheus exposition and its content type."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if dashboard is not None and scope["path"] == WS_PATH:
                await _websocket(dashboard, scope, receive, send)
            else:
                await send({"type": "websocket.close"})
            return
        if scope["type"] != "http":
            return  # lifespan: nothing to start; the server runs it with lifespan off anyway
        path = scope["path"]
        if path == "/livez":
            await _json(send, 200, {"status": "alive"})
        elif path == "/readyz":
            state = status()
            await _json(send, 200 if state["ready"] else 503, state)
        elif path == "/metrics":
            accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
            body, content_type = metrics(accept)
            await _respond(send, 200, body, content_type.encode())
        elif dashboard is not None:
            await _dashboard(dashboard, scope, receive, send)
        else:
            await _json(send, 404, {"error": f"no such endpoint: {path}"})

    return app


# --------------------------------------------------------------------------- the dashboard
async def _dashboard(dashboard: Dashboard, scope: Scope, receive: Receive, send: Send) -> None:
    path, method = scope["path"], scope["method"]
    access, port = dashboard.access, scope["server"][1]
    if not access.host_allowed(scope["headers"]):
        await _json(send, 403, {"error": "this dashboard answers to its own address only"})
    elif path.startswith("/static/"):
        await _static(send, dashboard.static, path[len("/static/") :], method)
    elif path == "/login":
        await _static(send, dashboard.static, "login.html", method)
    elif path == "/":
        token = parse_qs(scope["query_string"].decode("latin-1")).get("token", [None])[-1]
        if token is None:
            await _static(send, dashboard.static, "index.html", method)
        elif access.matches(token) and method in ("GET", "HEAD"):
            # trade the token for a session: the cookie, and the page key in the fragment (never
            # sent to a server; the page moves it to its storage and clears the address bar)
            session, key = access.new_session()
            headers = [
                (b"location", f"/#key={key}".encode()),
                (b"set-cookie", access.set_cookie(port, session)),
            ]
            await _respond(send, 303, b"", b"text/plain", headers)
        else:
            await _static(send, dashboard.static, "login.html", method, status=401)
    elif path.startswith(API_PATH):
        if not access.allows(scope["headers"], port):
            await _json(send, 401, {"error": "this needs the dashboard's token"})
        else:
            await _api(dashboard, path[len(API_PATH) :], scope, receive, send)
    else:
        await _json(send, 404, {"error": f"no such endpoint: {path}"})


async def _api(dashboard: Dashboard, name: str, scope: Scope, receive: Receive, send: Send) -> None:
    method = scope["method"]
    access = dashboard.access
    if name == "session" and method == "GET":
        await _json(send, 200, {"read_only": access.read_only})
    elif name == "logout" and method == "POST":
        if not same_origin(scope["headers"]):
            await _json(send, 403, {"error": "a sign-out from another site's page"})
            return
        session = access.checked_session(scope["headers"], scope["server"][1])
        if session is not None:
            access.end(session)
        cleared = [(b"set-cookie", access.clear_cookie(scope["server"][1]))]
        await _respond(
            send, 200, json.dumps({"ended": session is not None}).encode(), JSON, cleared
        )
    elif name == "status" and method == "GET":
        reply = dashboard.hub.handle({"id": None, "command": "status"})
        if reply["type"] == "error":  # status is never refused; were it, a 500 says so
            raise RuntimeError(f"status refused: {reply['error']}")
        await _json(send, 200, _without_token(access, reply["result"]))
    elif name == "command" and method == "POST":
        if not same_origin(scope["headers"]):
            await _json(send, 403, {"error": "a command from another site's page"})
            return
        body = await _body(receive)
        if body is None:
            await _json(send, 413, {"error": f"a command is at most {MAX_COMMAND} bytes"})
            return
        try:
            message = schema.decode(body)
        except schema.SchemaError as exc:
            await _json(send, 400, schema.error(None, str(exc)))
            return
        reply = _handle(dashboard, message)
        status = 200 if reply["ok"] else 403 if _refused(dashboard, message) else 400
        await _json(send, status, _for_page(dashboard.access, reply))
    else:
        known = name in ("session", "logout", "status", "command")
        await _json(send, 405 if known else 404, {"error": f"{method} {scope['path']}?"})


def _refused(dashboard: Dashboard, message: Any) -> bool:
    """True for a command the read-only dashboard may not carry out."""
    command = message.get("command") if isinstance(message, dict) else None
    return dashboard.access.read_only and command not in READ_ONLY_COMMANDS


def _for_page(access: Access, message: Mapping[str, Any]) -> Mapping[str, Any]:
    """A control API message as a page may see it: without the token (a copy; the hub's own
    message goes to every subscriber unchanged)."""
    for field in ("snapshot", "result"):
        if isinstance(message.get(field), dict):
            return {**message, field: _without_token(access, message[field])}
    return message


def _without_token(access: Access, snapshot: Mapping[str, Any]) -> Mapping[str, Any]:
    server = snapshot.get("server")
    if not isinstance(server, dict) or not isinstance(server.get("dashboard"), str):
        return snapshot
    return {**snapshot, "server": {**server, "dashboard": access.redact(server["dashboard"])}}


def _handle(dashboard: Dashboard, message: Any) -> schema.Reply:
    if _refused(dashboard, message):
        request_id = message.get("id") if isinstance(message, dict) else None
        return schema.error(request_id, "this dashboard is read-only (--dashboard-read-only)")
    if isinstance(message, dict) and message.get("command") == "subscribe":
        return schema.error(message.get("id"), f"subscribe: open the WebSocket at {WS_PATH}")
    return dashboard.hub.handle(message)


async def _body(receive: Receive) -> bytes | None:
    """The request body, or None when it is longer than a command can be."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_COMMAND:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _websocket(dashboard: Dashboard, scope: Scope, receive: Receive, send: Send) -> None:
    """One page's live connection: the stream out, commands in, until either side closes."""
    await receive()  # websocket.connect
    if not dashboard.access.host_allowed(scope["headers"]):
        await _deny(send, 403, b"this dashboard answers to its own address only\n")
        return
    if not same_origin(scope["headers"]):
        await _deny(send, 403, b"a WebSocket from another site's page\n")
        return
    subprotocols, access = scope.get("subprotocols", []), dashboard.access
    if not access.allows(scope["headers"], scope["server"][1], subprotocols):
        await _deny(send, 401, b"this needs the dashboard's token\n")
        return
    # a page's session may end while it watches (signed out elsewhere, expired): checked
    # with every message, at least once a second with the snapshots
    session = None  # a bearer token, or no token at all: nothing to end
    if not access.bearer(scope["headers"]):
        session = access.checked_session(scope["headers"], scope["server"][1], subprotocols)
    accept: dict[str, Any] = {"type": "websocket.accept"}
    if PROTOCOL in subprotocols:  # the page asked for it (its key came as the other one)
        accept["subprotocol"] = PROTOCOL
    await send(accept)
    lock = asyncio.Lock()  # the stream and the replies share one socket: one message at a time

    async def put(message: Mapping[str, Any]) -> None:
        async with lock:
            if session is not None and not access.live(session):
                raise SessionEnded
            await send({"type": "websocket.send", "text": json.dumps(_for_page(access, message))})

    hello: schema.Hello = {
        "version": schema.VERSION,
        "type": "hello",
        "read_only": dashboard.access.read_only,
    }
    await put(hello)

    async def forward_stream() -> None:
        try:
            async for message in dashboard.hub.stream(recent=True):
                await put(message)
        except OSError:
            pass  # the page went away: the receive side ends too
        except SessionEnded:
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": ENDED})
        except Exception:  # a bug must not leave the page showing frozen numbers as live
            logger.exception("the dashboard's stream failed")
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1011})

    stream = asyncio.get_running_loop().create_task(forward_stream(), name="dashboard stream")
    try:
        while (message := await receive())["type"] == "websocket.receive":
            try:
                request = schema.decode(message.get("text") or message.get("bytes") or b"")
            except schema.SchemaError as exc:
                await put(schema.error(None, str(exc)))
                continue
            await put(_handle(dashboard, request))
    except SessionEnded:  # a command after the session ended: the stream closes the socket
        await stream
    finally:
        stream.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stream


class SessionEnded(Exception):
    """The session of an open WebSocket expired or signed out: the socket is closed."""


async def _deny(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


async def _static(send: Send, directory: Path, name: str, method: str, status: int = 200) -> None:
    if method not in ("GET", "HEAD"):
        await _json(send, 405, {"error": f"{method} on a file"})
        return
    # a plain name from the directory's own listing: no '..', no absolute paths
    files = {path.name: path for path in directory.iterdir() if path.is_file()}
    path = files.get(name) if "/" not in name else None
    if path is None or path.suffix not in CONTENT_TYPES:
        await _json(send, 404, {"error": f"no such file: {name}"})
        return
    body = path.read_bytes()
    headers = PAGE_HEADERS if path.suffix == ".html" else []
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    if method == "HEAD":
        body = b""
    await _respond(send, status, body, CONTENT_TYPES[path.suffix], headers)


# --------------------------------------------------------------------------- responses
async def _json(send: Send, status: int, body: Mapping[str, Any]) -> None:
    await _respond(send, status, json.dumps(body).encode(), JSON)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""The built-in demo app served when `devserve` gets no APP: a raw ASGI 3 app that teaches ASGI.

Routes: `/` shows this request's own scope and explains each key; `/slow?seconds=N` answers
late; `/stream` streams chunks; `/error` raises; `/ws` echoes WebSocket messages; `/echo`
returns the request body. No framework: reading it is reading ASGI itself.
"""

from __future__ import annotations

import asyncio
import html
import json
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]

EXPLAINED = {
    "type": "Which protocol this connection speaks: 'http', 'websocket' or 'lifespan'.",
    "asgi": "The ASGI version (3.0) and the spec version the server implements.",
    "http_version": "'1.0' or '1.1' from the request line, or '2' for an HTTP/2 stream.",
    "method": "The request method, upper case.",
    "scheme": "'http' or 'https' (or what a trusted proxy said in X-Forwarded-Proto).",
    "path": "The path, percent-decoded to text, with root_path in front.",
    "raw_path": "The path exactly as the bytes arrived, before decoding.",
    "query_string": "Everything after '?', still percent-encoded bytes.",
    "root_path": "Where the app is mounted (--root-path); routers strip it.",
    "headers": "Every header as a (name, value) pair of bytes, names lower-cased, in order.",
    "client": "(host, port) of the peer: the browser, or the client a trusted proxy names.",
    "server": "(host, port) this connection arrived on.",
    "state": "A copy of what the lifespan startup put into its state, fresh per request.",
    "extensions": "Optional features this server offers (pathsend, trailers ...).",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def _redacted(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    secret = {b"authorization", b"cookie", b"proxy-authorization"}
    return [(name, b"[redacted]" if name in secret else value) for name, value in headers]


def scope_page(scope: Scope) -> str:
    shown = dict(scope, headers=_redacted(scope["headers"]))
    rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td><code>"
        f"{html.escape(json.dumps(_jsonable(value), indent=1))}</code></td>"
        f"<td>{html.escape(EXPLAINED.get(key, ''))}</td></tr>"
        for key, value in shown.items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>devserve demo</title>
<style>body{{font:15px system-ui;margin:2em;max-width:70em}}th{{text-align:left;vertical-align:top}}
td{{vertical-align:top;padding:.3em .8em}}code{{white-space:pre-wrap}}</style></head><body>
<h1>devserve is running</h1>
<p>This page is the demo app (<code>devserver/demo.py</code>). Below is the ASGI <em>scope</em>
of the request that fetched it: the dict the server passes to the app with every request.</p>
<table>{rows}</table>
<h2>Try</h2><ul>
<li><a href="/slow?seconds=2">/slow?seconds=2</a>: an answer that takes a while</li>
<li><a href="/stream">/stream</a>: a body sent in chunks (<code>more_body=True</code>)</li>
<li><a href="/error">/error</a>: an app that raises (the server answers 500)</li>
<li><code>POST /echo</code>: returns the request body; <code>/ws</code>: WebSocket echo</li>
</ul></body></html>"""


async def send_text(send: Any, status: int, text: str, kind: str = "text/plain") -> None:
    body = text.encode("utf-8")
    headers = [
        (b"content-type", f"{kind}; charset=utf-8".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def stream(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    for number in range(1, 11):
        await send(
            {"type": "http.response.body", "body": f"chunk {number}\n".encode(), "more_body": True}
        )
        await asyncio.sleep(0.2)
    await send({"type": "http.response.body", "body": b"done\n"})


async def websocket_echo(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send(
                {
                    "type": "websocket.send",
                    "text": message.get("text"),
                    "bytes": message.get("bytes"),
                }
            )
        else:
            return


async def lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    path = scope["path"][len(scope.get("root_path", "")) :] or "/"
    if scope["type"] == "websocket":
        return await websocket_echo(receive, send)
    if path == "/":
        return await send_text(send, 200, scope_page(scope), "text/html")
    if path == "/slow":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        seconds = min(float(query.get("seconds", ["1"])[0]), 60.0)
        await asyncio.sleep(seconds)
        return await send_text(send, 200, f"slept {seconds:g}s\n")
    if path == "/stream":
        return await stream(send)
    if path == "/echo":
        body = await read_body(receive)
        return await send_text(send, 200, body.decode("utf-8", "replace"))
    if path == "/error":
        raise RuntimeError("the demo app raised this on purpose (see /error)")
    await send_text(send, 404, f"no route for {path}\n")

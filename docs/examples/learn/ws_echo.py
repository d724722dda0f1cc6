"""A raw ASGI WebSocket app, for the WebSocket chapter (docs/learn/websocket.md).

    devserve --no-tui --trace --app-dir docs/examples/learn ws_echo:app

/private: closed before accept, so the handshake is denied (devserve answers 403).
Anything else: accepted; each text message comes back as "echo: <text>", each binary one
as is; the text "bye" makes the app close with code 4000, reason "see you". When the client
closes first, the app prints the close code it received.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return  # lifespan (not supported: devserve goes on without) or plain HTTP (500)
    message = await receive()  # always websocket.connect first: the handshake is waiting
    assert message["type"] == "websocket.connect"
    if scope["path"] == "/private":
        await send({"type": "websocket.close"})  # before accept: a denial, HTTP 403
        return
    await send({"type": "websocket.accept"})  # now devserve writes "101 Switching Protocols"
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            print(f"ws_echo: client closed with code {message['code']}", flush=True)
            return
        if message.get("text") == "bye":
            await send({"type": "websocket.close", "code": 4000, "reason": "see you"})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})

"""Raw ASGI app for the hostile-client soak (soak.py): GET answers 'Hello, world!', any other
method reads the whole request body and echoes it back, and a WebSocket echoes every message.
Handles lifespan. It must not buffer anything it was not sent: memory is what the soak watches."""

BODY = b"Hello, world!"
TEXT = [(b"content-type", b"text/plain")]


async def read_body(receive):
    """The whole request body; None when the client left (or the server gave up) first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def http(scope, receive, send):
    body = BODY
    if scope["method"] not in ("GET", "HEAD"):
        body = await read_body(receive)
        if body is None:
            return
    headers = [*TEXT, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def websocket(scope, receive, send):
    while True:
        message = await receive()
        t = message["type"]
        if t == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif t == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes")})
        elif t == "websocket.disconnect":
            return


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    handler = {"http": http, "websocket": websocket, "lifespan": lifespan}[scope["type"]]
    await handler(scope, receive, send)

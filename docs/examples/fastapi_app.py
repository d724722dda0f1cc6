"""A small FastAPI app: JSON with validation, a file upload, a live stream and a WebSocket.

Run it from the repository root, then open http://127.0.0.1:8000/docs:

    devserve fastapi_app:app --app-dir docs/examples
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import (
    FastAPI,
    Form,
    HTTPException,
    Request,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

logging.basicConfig(level=logging.INFO, format="%(levelname)-8s %(name)s: %(message)s")
log = logging.getLogger("fastapi_app")


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    price: float = Field(gt=0)
    tags: list[str] = []


class Announcement(BaseModel):
    text: str = Field(min_length=1)


class Announcements:
    """Hands every announcement to each open stream. In memory, so per worker process."""

    def __init__(self) -> None:
        self.listeners: set[asyncio.Queue[str]] = set()

    def publish(self, text: str) -> int:
        for queue in self.listeners:
            queue.put_nowait(text)
        return len(self.listeners)

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.listeners.add(queue)
        try:
            yield queue
        finally:
            self.listeners.discard(queue)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    # What startup yields, every request sees as request.state: a stand-in for a database pool.
    log.info("startup: database ready")
    yield {"items": {}, "announcements": Announcements()}
    log.info("shutdown: database closed")


app = FastAPI(title="devserve FastAPI example", lifespan=lifespan)


@app.get("/")
async def index(request: Request) -> dict[str, Any]:
    return {"app": "fastapi", "items": len(request.state.items)}


@app.post("/items", status_code=201)
async def create_item(item: Item, request: Request) -> dict[str, Any]:
    """A body that does not fit `Item` never gets here: FastAPI answers 422 with the errors."""
    item_id = len(request.state.items) + 1
    request.state.items[item_id] = item
    return {"id": item_id, **item.model_dump()}


@app.get("/items/{item_id}")
async def read_item(item_id: int, request: Request) -> Item:
    if item_id not in request.state.items:
        raise HTTPException(status_code=404, detail=f"no item {item_id}")
    item: Item = request.state.items[item_id]
    return item


@app.post("/upload")
async def upload(file: UploadFile, description: Annotated[str, Form()] = "") -> dict[str, Any]:
    """Reads the upload in pieces, so a large file never sits in memory whole."""
    digest = hashlib.sha256()
    size = 0
    while chunk := await file.read(64 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return {
        "filename": file.filename,
        "description": description,
        "size": size,
        "sha256": digest.hexdigest(),
    }


@app.post("/announcements", status_code=202)
async def announce(announcement: Announcement, request: Request) -> dict[str, int]:
    return {"listeners": request.state.announcements.publish(announcement.text)}


@app.get("/announcements/stream")
async def stream_announcements(request: Request, limit: int = 10) -> StreamingResponse:
    """Server-sent events: each announcement is sent the moment it is published."""
    announcements: Announcements = request.state.announcements

    async def events() -> AsyncIterator[str]:
        with announcements.listen() as queue:
            yield ": listening\n\n"  # a comment line: tells the client it may publish now
            for _ in range(limit):
                yield f"data: {await queue.get()}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    """Echoes text messages; "bye" makes the server close with its own code and reason."""
    await websocket.accept()
    try:
        while (text := await websocket.receive_text()) != "bye":
            await websocket.send_text(f"echo: {text}")
        await websocket.close(code=4000, reason="goodbye from fastapi")
    except WebSocketDisconnect as exc:
        log.info("websocket: client left with code %d", exc.code)

"""The ASGI contract as types: the scopes devserve builds and the messages it trades with an app.

ASGI 3 with the HTTP and WebSocket specs 2.4 (trailers, pathsend, zerocopysend, the WebSocket
denial response) and lifespan 2.0. Types only: at run time every one of these is a plain dict,
so typing a message costs nothing on the hot path. An app is not type-checked against them, so
what it sends is still checked field by field where it arrives (protocols/cycle.py,
protocols/websocket.py, lifespan.py), through `Mapping[str, Any]`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import IO, Any, Literal, NotRequired, TypedDict

Headers = list[tuple[bytes, bytes]]  # lower-case names, as the parser gave them, in order


# --------------------------------------------------------------------------- scopes
class ASGIVersions(TypedDict):
    version: Literal["2.0", "3.0"]
    spec_version: str


class HTTPScope(TypedDict):
    type: Literal["http"]
    asgi: ASGIVersions
    http_version: str
    method: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: Headers
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    state: NotRequired[dict[str, Any]]
    extensions: NotRequired[dict[str, dict[object, object]]]


class WebSocketScope(TypedDict):
    type: Literal["websocket"]
    asgi: ASGIVersions
    http_version: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: Headers
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    subprotocols: list[str]
    state: NotRequired[dict[str, Any]]
    extensions: NotRequired[dict[str, dict[object, object]]]


class LifespanScope(TypedDict):
    type: Literal["lifespan"]
    asgi: ASGIVersions
    state: NotRequired[dict[str, Any]]


WWWScope = HTTPScope | WebSocketScope  # a connection's scope: what a request record shows
Scope = HTTPScope | WebSocketScope | LifespanScope


# --------------------------------------------------------------------------- HTTP messages
class HTTPRequestEvent(TypedDict):
    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HTTPDisconnectEvent(TypedDict):
    type: Literal["http.disconnect"]


class HTTPResponseStartEvent(TypedDict):
    type: Literal["http.response.start"]
    status: int
    headers: NotRequired[Headers]
    trailers: NotRequired[bool]


class HTTPResponseBodyEvent(TypedDict):
    type: Literal["http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


class HTTPResponseTrailersEvent(TypedDict):
    type: Literal["http.response.trailers"]
    headers: NotRequired[Headers]
    more_trailers: NotRequired[bool]


class HTTPResponsePathSendEvent(TypedDict):
    type: Literal["http.response.pathsend"]
    path: str


class HTTPResponseZeroCopySendEvent(TypedDict):
    type: Literal["http.response.zerocopysend"]
    file: IO[bytes]
    offset: NotRequired[int]
    count: NotRequired[int]
    more_body: NotRequired[bool]


# Incoming: what receive() gives the app; outgoing: what the app may send().
HTTPIncoming = HTTPRequestEvent | HTTPDisconnectEvent
HTTPOutgoing = (
    HTTPResponseStartEvent
    | HTTPResponseBodyEvent
    | HTTPResponseTrailersEvent
    | HTTPResponsePathSendEvent
    | HTTPResponseZeroCopySendEvent
)


# --------------------------------------------------------------------------- WebSocket messages
class WebSocketConnectEvent(TypedDict):
    type: Literal["websocket.connect"]


class WebSocketReceiveBytesEvent(TypedDict):
    type: Literal["websocket.receive"]
    bytes: bytes
    text: NotRequired[None]


class WebSocketReceiveTextEvent(TypedDict):
    type: Literal["websocket.receive"]
    bytes: NotRequired[None]
    text: str


class WebSocketDisconnectEvent(TypedDict):
    type: Literal["websocket.disconnect"]
    code: int
    reason: NotRequired[str | None]


class WebSocketAcceptEvent(TypedDict):
    type: Literal["websocket.accept"]
    subprotocol: NotRequired[str | None]
    headers: NotRequired[Headers]


class WebSocketSendEvent(TypedDict):
    type: Literal["websocket.send"]
    bytes: NotRequired[bytes | None]
    text: NotRequired[str | None]


class WebSocketCloseEvent(TypedDict):
    type: Literal["websocket.close"]
    code: NotRequired[int]
    reason: NotRequired[str | None]


class WebSocketResponseStartEvent(TypedDict):
    type: Literal["websocket.http.response.start"]
    status: int
    headers: NotRequired[Headers]


class WebSocketResponseBodyEvent(TypedDict):
    type: Literal["websocket.http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


WebSocketReceiveEvent = WebSocketReceiveBytesEvent | WebSocketReceiveTextEvent
WebSocketIncoming = WebSocketConnectEvent | WebSocketReceiveEvent | WebSocketDisconnectEvent
WebSocketOutgoing = (
    WebSocketAcceptEvent
    | WebSocketSendEvent
    | WebSocketCloseEvent
    | WebSocketResponseStartEvent
    | WebSocketResponseBodyEvent
)


# --------------------------------------------------------------------------- lifespan messages
class LifespanStartupEvent(TypedDict):
    type: Literal["lifespan.startup"]


class LifespanShutdownEvent(TypedDict):
    type: Literal["lifespan.shutdown"]


class LifespanStartupCompleteEvent(TypedDict):
    type: Literal["lifespan.startup.complete"]


class LifespanStartupFailedEvent(TypedDict):
    type: Literal["lifespan.startup.failed"]
    message: NotRequired[str]


class LifespanShutdownCompleteEvent(TypedDict):
    type: Literal["lifespan.shutdown.complete"]


class LifespanShutdownFailedEvent(TypedDict):
    type: Literal["lifespan.shutdown.failed"]
    message: NotRequired[str]


LifespanIncoming = LifespanStartupEvent | LifespanShutdownEvent
LifespanOutgoing = (
    LifespanStartupCompleteEvent
    | LifespanStartupFailedEvent
    | LifespanShutdownCompleteEvent
    | LifespanShutdownFailedEvent
)


# --------------------------------------------------------------------------- the app's side
Incoming = HTTPIncoming | WebSocketIncoming | LifespanIncoming
Outgoing = HTTPOutgoing | WebSocketOutgoing | LifespanOutgoing
Receive = Callable[[], Awaitable[Incoming]]
Send = Callable[[Outgoing], Awaitable[None]]
# The app, called as app(scope, receive, send). Apps annotate those as they please (dict[str, Any],
# Any, their framework's types): a signature naming the TypedDicts would turn most of them away.
ASGIApp = Callable[..., Awaitable[None]]

"""WebSockets (ASGI websocket spec 2.4) over real sockets against real servers on 127.0.0.1.

In-process servers (`serving`, asyncio) serve `WSApp` (tests/ws_apps.py), whose paths choose a
behaviour and which records what it saw; the cases that must hold on both loops also run against
a real devserve subprocess (uvloop, a worker process) serving `ECHO_APP` from a file. Where a
client library would hide the behaviour (the raw 101, close frames without a code, fragments,
backpressure, unanswered pings) the client is a raw socket with hand-built frames (`RawWS`,
tests/ws_client.py); elsewhere it is websockets' sync client. Synchronisation is by events,
socket timeouts and polls under a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import logging
import re
import select
import signal
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devserver.control.client import ControlClient
from tests.utils import Process, Running, run_devserve, run_server, until, waiting_to_drain
from tests.wire_apps import read_responses
from tests.ws_apps import ECHO_APP, Reports, Served, WSApp, load_echo_app, serving, unique
from tests.ws_client import (
    GUID,
    KEY,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    MiB,
    RawWS,
    client_frame,
    close_payload,
    closed_by_server,
    http_answer,
    upgrade_request,
    ws_connect,
)


@pytest.fixture
def served() -> Iterator[Served]:
    with serving() as served:
        yield served


def blocked_sends(served: Served) -> int:
    """How many messages the app had sent once its send() waits for a client that reads
    nothing (read on the server's loop, where the app is not running meanwhile)."""

    def sent_if_waiting() -> int | None:
        return served.app.sent if waiting_to_drain(served.server.server) else None

    count: int = until(
        lambda: served.server.call(sent_if_waiting),
        "the app's send() to wait",
        accept=lambda sent: sent is not None,
    )
    return count


# =========================================================================== both loops
@pytest.fixture(scope="module")
def cli_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A real devserve (uvloop, one worker process) serving ECHO_APP from a file."""
    folder = tmp_path_factory.mktemp("ws_app")
    (folder / "ws_echo_app.py").write_text(ECHO_APP)
    with run_devserve("--loop", "uvloop", "--app-dir", str(folder), "ws_echo_app:app") as proc:
        yield proc


@pytest.fixture(scope="module")
def inproc_echo() -> Iterator[tuple[Running, Reports]]:
    reports = Reports()
    with run_server(load_echo_app(reports)) as server:
        yield server, reports


@dataclasses.dataclass
class EchoServer:
    port: int
    reports: Any  # Reports or a subprocess's Output: wait_for(pattern, timeout)


@pytest.fixture(params=["asyncio", "uvloop"])
def echo(request: pytest.FixtureRequest) -> Iterator[EchoServer]:
    if request.param == "asyncio":
        server, reports = request.getfixturevalue("inproc_echo")
        yield EchoServer(server.port, reports)
        return
    proc = request.getfixturevalue("cli_echo")
    yield EchoServer(proc.port, proc.out)
    print(proc.out.text)  # devserve's log, shown by pytest when the test failed


def test_echo_text_and_bytes(echo: EchoServer) -> None:
    """websocket.receive and websocket.send carry text as text and bytes as bytes."""
    with ws_connect(echo.port, unique()) as ws:
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=5) == b"\x00\xffbinary"


def test_subprotocol_and_accept_headers_in_the_101(echo: EchoServer) -> None:
    """The subprotocol the app picks from scope["subprotocols"] and its extra accept headers are
    in the raw 101, with a correct Sec-WebSocket-Accept."""
    head, raw = RawWS.open(echo.port, unique(), {"Sec-WebSocket-Protocol": "chat, superchat"})
    with contextlib.closing(raw):
        lines = head.decode("latin-1").lower().split("\r\n")
        expected_accept = base64.b64encode(hashlib.sha1((KEY + GUID).encode()).digest()).decode()
        assert f"sec-websocket-accept: {expected_accept.lower()}" in lines
        assert "sec-websocket-protocol: chat" in lines
        assert "x-echo: accepted" in lines
        assert "upgrade: websocket" in lines and "connection: upgrade" in lines
        raw.send(OP_TEXT, b"after the 101")
        assert raw.recv_frame().payload == b"after the 101"


def test_app_close_code_and_reason_reach_the_client(echo: EchoServer) -> None:
    """websocket.close's code and reason reach the client; the app's next receive() is
    websocket.disconnect (after a server-initiated close too)."""
    path = unique()
    with ws_connect(echo.port, path) as ws:
        ws.send("close 4001 see you")
        assert closed_by_server(ws) == (4001, "see you")
    echo.reports.wait_for(rf"{re.escape(path)} disconnect 4001 see you")


def test_client_close_code_reaches_the_app(echo: EchoServer) -> None:
    """A client close with a code and reason gives the app websocket.disconnect with them."""
    path = unique()
    with ws_connect(echo.port, path) as ws:
        ws.send("ping?")
        assert ws.recv(timeout=5) == "ping?"
        ws.close(code=4000, reason="bye")
    echo.reports.wait_for(rf"{re.escape(path)} disconnect 4000 bye")


def test_close_frame_without_code_is_1005(echo: EchoServer) -> None:
    """A close frame with no payload reaches the app as code 1005; the server echoes it, then
    ends the TCP connection."""
    path = unique()
    _, raw = RawWS.open(echo.port, path)
    with contextlib.closing(raw):
        raw.send(OP_CLOSE)
        assert raw.recv_close() == (None, "")
        assert raw.at_eof()
    echo.reports.wait_for(rf"{re.escape(path)} disconnect 1005")


def test_client_ping_gets_a_pong(echo: EchoServer) -> None:
    """A client's ping is answered with a pong carrying the same data."""
    _, raw = RawWS.open(echo.port, unique())
    with contextlib.closing(raw):
        raw.send(OP_PING, b"are you there")
        frame = raw.recv_frame()
        assert (frame.opcode, frame.payload) == (OP_PONG, b"are you there")


def test_tcp_drop_without_close_is_1006(echo: EchoServer) -> None:
    """A client that drops the TCP connection without a close frame gives the app 1006."""
    path = unique()
    _, raw = RawWS.open(echo.port, path)
    raw.send(OP_TEXT, b"here")
    assert raw.recv_frame().payload == b"here"
    raw.close()
    echo.reports.wait_for(rf"{re.escape(path)} disconnect 1006")


def test_cli_sigterm_closes_websockets_with_1012(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SIGTERM to devserve (uvloop, worker process): the client gets close 1012, the app
    websocket.disconnect 1012, and devserve exits 0 well before the graceful timeout."""
    (tmp_path / "ws_echo_app.py").write_text(ECHO_APP)
    path = unique()
    with run_devserve(
        "--loop",
        "uvloop",
        "--timeout-graceful-shutdown",
        "20",
        "--app-dir",
        str(tmp_path),
        "ws_echo_app:app",
    ) as proc:
        request.addfinalizer(lambda: print(proc.out.text))  # shown when the test failed
        with ws_connect(proc.port, path) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
            began = time.monotonic()
            proc.proc.send_signal(signal.SIGTERM)
            code, _ = closed_by_server(ws)
        assert code == 1012
        assert proc.proc.wait(timeout=15) == 0, proc.out.text
        # The time is the behaviour: it did not wait out the 20 s grace period (15 s is only a
        # generous guard for a busy machine, still below it).
        assert time.monotonic() - began < 15, "waited out --timeout-graceful-shutdown"
        proc.out.wait_for(rf"{re.escape(path)} disconnect 1012")


def test_rolling_restart_closes_websockets_with_1012_and_the_new_worker_takes_over(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`restart` over the control socket: the old worker's WebSocket gets 1012 (the app its
    disconnect), and a client reconnecting at once is served by the new generation."""
    (tmp_path / "ws_echo_app.py").write_text(ECHO_APP)
    control = str(tmp_path / "ctl.sock")
    path = unique()
    with run_devserve(
        "--control", control, "--loop", "uvloop", "--app-dir", str(tmp_path), "ws_echo_app:app"
    ) as proc:
        request.addfinalizer(lambda: print(proc.out.text))  # shown when the test failed
        client = ControlClient(control)
        old = {w["pid"] for w in client.request("status")["workers"]}
        with ws_connect(proc.port, path) as ws:
            ws.send("before")
            assert ws.recv(timeout=5) == "before"
            assert client.request("restart") == {"restart": "started"}
            code, _ = closed_by_server(ws)
        assert code == 1012
        proc.out.wait_for(rf"{re.escape(path)} disconnect 1012")
        with ws_connect(proc.port, unique()) as ws:
            ws.send("after")
            assert ws.recv(timeout=5) == "after"
        # The old worker leaves the table once its drain ends (it may still be counting its
        # closed WebSocket as in flight when the new one answers), so wait for its exit.
        for pid in old:
            proc.out.wait_for(rf"\(pid {pid}, generation 1\) exited")
        workers = client.request("status")["workers"]
        assert {w["pid"] for w in workers}.isdisjoint(old), workers


# =========================================================================== the scope
def test_websocket_scope() -> None:
    """The scope: type websocket, scheme ws, paths, query, headers, subprotocols, client, server,
    root_path and the websocket.http.response extension; no method."""
    with serving(root_path="/api") as served:
        request = upgrade_request(
            "/scope/a%20b?x=1&y=%20", headers={"Sec-WebSocket-Protocol": "chat, superchat"}
        )
        raw = RawWS.connect(served.port, request)
        with contextlib.closing(raw):
            assert raw.read_head().startswith(b"HTTP/1.1 101")
            [scope] = served.app.scopes
            assert scope["type"] == "websocket"
            assert scope["asgi"]["version"] == "3.0"
            assert scope["scheme"] == "ws"
            assert scope["http_version"] == "1.1"
            assert scope["root_path"] == "/api"
            assert scope["path"] == "/api/scope/a b"
            assert scope["raw_path"] == b"/api/scope/a%20b"
            assert scope["query_string"] == b"x=1&y=%20"
            assert (b"sec-websocket-protocol", b"chat, superchat") in scope["headers"]
            assert (b"sec-websocket-key", KEY.encode()) in scope["headers"]
            assert all(name == name.lower() for name, _ in scope["headers"])
            assert scope["subprotocols"] == ["chat", "superchat"]
            assert scope["client"] == raw.sock.getsockname()[:2]
            assert scope["server"] == ("127.0.0.1", served.port)
            assert "websocket.http.response" in scope["extensions"]
            assert "method" not in scope


# =========================================================================== close codes
def test_send_after_the_client_is_gone_raises_an_oserror(served: Served) -> None:
    """Once the client has gone, websocket.send raises an OSError subclass."""
    path = unique("/gone")
    _, raw = RawWS.open(served.port, path)
    raw.close()
    served.app.reports.wait_for(rf"{re.escape(path)} sent after gone")
    assert served.app.received[-1]["type"] == "websocket.disconnect"
    assert served.app.received[-1]["code"] == 1006
    [error] = served.app.errors
    assert isinstance(error, OSError), repr(error)


def test_graceful_stop_closes_with_1012() -> None:
    """On stop, an open WebSocket gets close 1012 and the app websocket.disconnect 1012; the
    server then stops at once, without waiting out the grace period."""
    path = unique()
    with serving(timeout_graceful_shutdown=10) as served:
        with ws_connect(served.port, path) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
            began = time.monotonic()
            served.server.stop()
            assert closed_by_server(ws)[0] == 1012
        served.app.reports.wait_for(rf"{re.escape(path)} disconnect 1012")
        until(served.server.loop.is_closed, "the server to stop")
        # The time is the behaviour: it did not wait out the 10 s grace period (8 s is only a
        # generous guard for a busy machine, still below it).
        assert time.monotonic() - began < 8


def test_stop_during_the_handshake_closes_with_1012_after_the_accept() -> None:
    """A WebSocket whose app has not accepted yet when the stop begins is accepted, then closed
    with 1012 at once; the app gets websocket.disconnect 1012."""
    with serving(timeout_graceful_shutdown=10) as served:
        path = unique("/late-accept")
        raw = RawWS.connect(served.port, upgrade_request(path))
        with contextlib.closing(raw):
            served.app.reports.wait_for(rf"{re.escape(path)} waiting")
            served.server.stop()
            until(lambda: refuses_connections(served.port), "the listener to close")
            served.app.gate.set()
            assert raw.read_head().startswith(b"HTTP/1.1 101")
            assert raw.recv_close()[0] == 1012
            raw.send(OP_CLOSE, close_payload(1012))
            assert raw.at_eof()
            served.app.reports.wait_for(rf"{re.escape(path)} done")
        assert [(m["type"], m.get("code")) for m in served.app.received] == [
            ("websocket.disconnect", 1012)
        ]


def test_stop_completes_the_close_handshake_while_reading_is_paused() -> None:
    """A WebSocket whose reading is paused (--ws-max-queue messages wait for the app) still
    completes the close handshake on stop: the client's close reply is read and the server ends
    the TCP connection at once, not after the close timeout."""
    with serving(timeout_graceful_shutdown=10, ws_max_queue=1) as served:
        path = unique("/hold")
        _, raw = RawWS.open(served.port, path)
        with contextlib.closing(raw):
            # The pong proves the server read the message before the ping: the queue is full.
            raw.sock.sendall(client_frame(OP_TEXT, b"queued") + client_frame(OP_PING, b"sync"))
            assert raw.recv_frame().opcode == OP_PONG
            served.server.stop()
            assert raw.recv_close()[0] == 1012
            raw.send(OP_CLOSE, close_payload(1012))
            assert raw.at_eof(timeout=2), "the close reply was never read"
        served.app.gate.set()
        served.app.reports.wait_for(rf"{re.escape(path)} done")
        assert [(m["type"], m.get("text"), m.get("code")) for m in served.app.received] == [
            ("websocket.receive", "queued", None),
            ("websocket.disconnect", None, 1012),
        ]


def upgrades(port: int) -> bool:
    """Whether a new WebSocket handshake on `port` is answered 101."""
    raw = RawWS.connect(port, upgrade_request(unique()))
    with contextlib.closing(raw):
        return raw.read_head().startswith(b"HTTP/1.1 101")


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


# =========================================================================== rejection
def test_close_before_accept_is_403(served: Served) -> None:
    """An app that sends websocket.close before accepting rejects the handshake with 403."""
    response, closed = http_answer(served.port, upgrade_request(unique("/reject")))
    assert response.status == 403
    assert response.header("connection") == "close" and closed


def test_denial_response_with_one_body_message(served: Served) -> None:
    """websocket.http.response: the app's own status, headers and body (Content-Length)."""
    response, closed = http_answer(served.port, upgrade_request(unique("/deny")))
    assert response.status == 401
    assert response.header("x-deny") == "yes"
    assert response.header("content-type") == "text/plain"
    assert response.header("content-length") == "7"
    assert response.body == b"go away"
    assert closed


def test_denial_response_in_several_body_messages_is_chunked(served: Served) -> None:
    """A denial body sent with more_body goes out chunked, each message a chunk."""
    response, closed = http_answer(served.port, upgrade_request(unique("/deny-chunked")))
    assert response.status == 401
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("content-length") is None
    assert response.chunks == [b"go ", b"away"]
    assert response.body == b"go away"
    assert closed


BAD_HANDSHAKES = {  # name: (request, the status websockets or the server decides)
    "no key": (upgrade_request(headers={"Sec-WebSocket-Key": None}), 400),
    "bad key": (upgrade_request(headers={"Sec-WebSocket-Key": "not base64 of 16 bytes"}), 400),
    "version 12": (upgrade_request(headers={"Sec-WebSocket-Version": "12"}), 400),
    "no version": (upgrade_request(headers={"Sec-WebSocket-Version": None}), 400),
    "two protocols": (upgrade_request(headers={"Upgrade": "websocket, h2c"}), 426),
    "POST": (upgrade_request(method="POST"), 405),
    "a body": (upgrade_request(headers={"Content-Length": "5"}) + b"hello", 400),
    "chunked": (upgrade_request(headers={"Transfer-Encoding": "chunked"}) + b"0\r\n\r\n", 400),
    "HTTP/1.0": (upgrade_request().replace(b"HTTP/1.1", b"HTTP/1.0", 1), 505),
}


@pytest.mark.parametrize(("request_bytes", "status"), BAD_HANDSHAKES.values(), ids=BAD_HANDSHAKES)
def test_bad_handshake_is_rejected_and_never_reaches_the_app(
    served: Served, request_bytes: bytes, status: int
) -> None:
    """An Upgrade: websocket request with a bad handshake gets websockets' 4xx (505 for
    HTTP/1.0) and a closed connection; the app never sees a websocket scope."""
    response, closed = http_answer(served.port, request_bytes)
    assert response.status == status, response
    assert response.header("connection") == "close" and closed
    assert "websocket" not in served.app.scope_types()


def test_upgrade_without_connection_upgrade_is_plain_http(served: Served) -> None:
    """Upgrade: websocket without Connection: upgrade is no upgrade for the HTTP parser: the
    request reaches the app as plain HTTP, its response is sent and the connection stays an
    HTTP keep-alive connection; no WebSocket starts."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(upgrade_request(headers={"Connection": None}))
        [response] = read_responses(sock, 1)
        assert response.status == 200 and response.body == b"plain http"
        assert response.header("connection") is None
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: test\r\n\r\n")
        [response] = read_responses(sock, 1)
        assert response.status == 200
    assert served.app.scope_types() == ["http", "http"]


@pytest.mark.parametrize("connection", ["Upgrade", "keep-alive, Upgrade", "upgrade"])
def test_connection_header_forms_browsers_send(served: Served, connection: str) -> None:
    """Connection: Upgrade in the forms browsers send (Firefox: keep-alive, Upgrade) upgrades."""
    _, raw = RawWS.open(served.port, unique(), {"Connection": connection})
    with contextlib.closing(raw):
        raw.send(OP_TEXT, b"ok")
        assert raw.recv_frame().payload == b"ok"
    assert served.app.scope_types() == ["websocket"]


def test_ws_none_leaves_upgrades_to_the_app_as_http() -> None:
    """With --ws none an upgrade request reaches the app as plain HTTP, its response is sent,
    then the connection closes."""
    with serving(ws="none") as served:
        response, closed = http_answer(served.port, upgrade_request(unique()))
        assert response.status == 200 and response.body == b"plain http"
        assert closed
        assert served.app.scope_types() == ["http"]
        assert (b"upgrade", b"websocket") in served.app.scopes[0]["headers"]


# =========================================================================== app failures
def test_app_raising_before_accept_is_500(served: Served) -> None:
    """An app that raises before websocket.accept gets the handshake answered with 500."""
    response, closed = http_answer(served.port, upgrade_request(unique("/raise-before")))
    assert response.status == 500 and closed


def test_app_returning_without_accepting_is_500(served: Served) -> None:
    """An app that returns without accepting or closing gets the handshake answered with 500."""
    response, closed = http_answer(served.port, upgrade_request(unique("/return-before")))
    assert response.status == 500 and closed


def test_app_raising_after_accept_closes_with_1011(served: Served) -> None:
    """An app that raises after accepting closes the WebSocket with 1011 (internal error)."""
    with ws_connect(served.port, unique("/raise-after")) as ws:
        assert closed_by_server(ws)[0] == 1011


def test_app_returning_after_accept_closes_with_1000(served: Served) -> None:
    """An app that returns after accepting, without closing, closes the WebSocket with 1000."""
    with ws_connect(served.port, unique("/return-after")) as ws:
        assert closed_by_server(ws)[0] == 1000


# =========================================================================== compression
DEFLATE_OFFER = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}


def test_permessage_deflate_is_negotiated_and_used(served: Served) -> None:
    """Offered permessage-deflate is accepted by default; a compressible message goes both ways
    compressed (RSV1, far fewer bytes) and round-trips intact."""
    head, raw = RawWS.open(served.port, unique(), DEFLATE_OFFER)
    with contextlib.closing(raw):
        assert re.search(rb"(?im)^sec-websocket-extensions: permessage-deflate", head), head
        message = b"devserve compresses this " * 40_000  # 1 MB
        compressor = zlib.compressobj(wbits=-12)  # the server limits our window to 2**12
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        raw.sock.sendall(client_frame(OP_TEXT, data[:-4], rsv1=True))
        frame = raw.recv_frame()
        assert frame.opcode == OP_TEXT and frame.rsv1 and frame.fin
        assert len(frame.payload) < len(message) // 50
        decompressed = zlib.decompressobj(wbits=-15).decompress(frame.payload + b"\x00\x00\xff\xff")
        assert decompressed == message


def test_permessage_deflate_round_trip_with_a_client_library(served: Served) -> None:
    """websockets' client negotiates permessage-deflate and a 4 MiB message round-trips."""
    with ws_connect(served.port, unique(), max_size=None) as ws:
        assert [ext.name for ext in ws.protocol.extensions] == ["permessage-deflate"]
        message = "0123456789abcdef" * 256 * 1024  # 4 MiB
        ws.send(message)
        assert ws.recv(timeout=10) == message


def test_no_permessage_deflate_when_disabled() -> None:
    """With --no-ws-per-message-deflate the 101 carries no extension, even when offered."""
    with serving(ws_per_message_deflate=False) as served:
        head, raw = RawWS.open(served.port, unique(), DEFLATE_OFFER)
        raw.close()
        assert b"sec-websocket-extensions" not in head.lower()
        with ws_connect(served.port, unique()) as ws:
            assert ws.protocol.extensions == []
            ws.send("plain")
            assert ws.recv(timeout=5) == "plain"


# =========================================================================== message size
@pytest.fixture
def small_max() -> Iterator[Served]:
    with serving(ws_max_size=1000) as served:
        yield served


def test_message_at_the_size_limit_passes_and_over_it_is_1009(small_max: Served) -> None:
    """A message of exactly --ws-max-size passes; one byte more closes with 1009 (too big)."""
    path = unique()
    with ws_connect(small_max.port, path, compression=None) as ws:
        ws.send("x" * 1000)
        assert ws.recv(timeout=5) == "x" * 1000
        ws.send("x" * 1001)
        assert closed_by_server(ws)[0] == 1009
    small_max.app.reports.wait_for(rf"{re.escape(path)} disconnect 1009")


def test_fragmented_message_over_the_limit_is_1009(small_max: Served) -> None:
    """The limit applies to the whole message: two 600-byte fragments of a 1000 limit → 1009."""
    _, raw = RawWS.open(small_max.port, unique())
    with contextlib.closing(raw):
        raw.send(OP_TEXT, b"a" * 600, fin=False)
        raw.send(OP_CONT, b"b" * 600)
        assert raw.recv_close()[0] == 1009
        assert raw.at_eof()


def test_fragmented_message_under_the_limit_arrives_whole(small_max: Served) -> None:
    """Fragments (TEXT fin=0, CONT, CONT fin=1) reach the app as one websocket.receive."""
    _, raw = RawWS.open(small_max.port, unique())
    with contextlib.closing(raw):
        raw.send(OP_TEXT, b"a" * 300, fin=False)
        raw.send(OP_CONT, "é".encode()[:1], fin=False)  # a character split across fragments
        raw.send(OP_CONT, "é".encode()[1:] + b"b" * 300)
        frame = raw.recv_frame()
        assert frame.opcode == OP_TEXT and frame.fin
        assert frame.payload.decode() == "a" * 300 + "é" + "b" * 300


PROTOCOL_ERRORS = {
    "unmasked frame": b"\x81\x02hi",
    "reserved opcode": client_frame(0x3, b"x"),
    "close code 1005 on the wire": client_frame(OP_CLOSE, close_payload(1005)),
    "continuation without a start": client_frame(OP_CONT, b"x"),
}


@pytest.mark.parametrize("frame", PROTOCOL_ERRORS.values(), ids=PROTOCOL_ERRORS)
def test_protocol_error_is_1002(served: Served, frame: bytes) -> None:
    """A frame that breaks RFC 6455 fails the connection with 1002; the app gets 1002 too."""
    path = unique()
    _, raw = RawWS.open(served.port, path)
    with contextlib.closing(raw):
        raw.sock.sendall(frame)
        assert raw.recv_close()[0] == 1002
        assert raw.at_eof()
    served.app.reports.wait_for(rf"{re.escape(path)} disconnect 1002")


def test_invalid_utf8_text_is_1007(served: Served) -> None:
    """A text message that is not UTF-8 fails the connection with 1007; the app gets 1007."""
    path = unique()
    _, raw = RawWS.open(served.port, path)
    with contextlib.closing(raw):
        raw.send(OP_TEXT, b"ok \xff\xfe")
        assert raw.recv_close()[0] == 1007
        assert raw.at_eof()
    served.app.reports.wait_for(rf"{re.escape(path)} disconnect 1007")


def test_nothing_after_invalid_utf8_reaches_the_app(served: Served) -> None:
    """Once a text message fails UTF-8 the connection is failed: a message behind it in the
    same read is not delivered; the app's next message is the 1007 disconnect."""
    path = unique("/hold")
    _, raw = RawWS.open(served.port, path)
    with contextlib.closing(raw):
        raw.sock.sendall(client_frame(OP_TEXT, b"\xff") + client_frame(OP_TEXT, b"after"))
        assert raw.recv_close()[0] == 1007
        served.app.gate.set()
        served.app.reports.wait_for(rf"{re.escape(path)} done")
    assert [(m["type"], m.get("code")) for m in served.app.received] == [
        ("websocket.disconnect", 1007)
    ]


# =========================================================================== flow
def test_pipelined_get_then_upgrade_then_frames_in_one_write(served: Served) -> None:
    """A GET, an upgrade and a frame in one send(): the GET's response first, then the 101,
    then the frame's echo; frames go on working."""
    path = unique()
    raw = RawWS.connect(
        served.port,
        b"GET /plain HTTP/1.1\r\nHost: test\r\n\r\n"
        + upgrade_request(path)
        + client_frame(OP_TEXT, b"early"),
    )
    with contextlib.closing(raw):
        head, body = raw.read_http()
        assert head.startswith(b"HTTP/1.1 200") and body == b"plain http"
        assert raw.read_head().startswith(b"HTTP/1.1 101")
        assert raw.recv_frame().payload == b"early"
        raw.send(OP_BINARY, b"later")
        frame = raw.recv_frame()
        assert frame.opcode == OP_BINARY and frame.payload == b"later"
    assert served.app.scope_types() == ["http", "websocket"]


def test_upgrade_on_a_reused_keep_alive_connection(served: Served) -> None:
    """A keep-alive connection that has already served a request can still be upgraded."""
    raw = RawWS.connect(served.port, b"GET /plain HTTP/1.1\r\nHost: test\r\n\r\n")
    with contextlib.closing(raw):
        head, body = raw.read_http()
        assert head.startswith(b"HTTP/1.1 200") and body == b"plain http"
        raw.sock.sendall(upgrade_request(unique()))
        assert raw.read_head().startswith(b"HTTP/1.1 101")
        raw.send(OP_TEXT, b"upgraded")
        assert raw.recv_frame().payload == b"upgraded"
    assert served.app.scope_types() == ["http", "websocket"]


def test_frames_sent_with_the_handshake_wait_for_the_accept(served: Served) -> None:
    """Frames written together with the handshake head reach the app, in order, once it
    accepts; nothing is answered before the accept."""
    path = unique("/late-accept")
    early = client_frame(OP_TEXT, b"early") + client_frame(OP_BINARY, b"\x01\x02")
    raw = RawWS.connect(served.port, upgrade_request(path) + early)
    with contextlib.closing(raw):
        served.app.reports.wait_for(rf"{re.escape(path)} waiting")
        raw.sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            raw.sock.recv(1)  # no 101 before the app accepts
        served.app.gate.set()
        assert raw.read_head().startswith(b"HTTP/1.1 101")
        raw.send(OP_CLOSE, close_payload(1000))
        assert raw.recv_close() == (1000, "")
        served.app.reports.wait_for(rf"{re.escape(path)} done")
    assert served.app.received == [
        {"type": "websocket.receive", "text": "early"},
        {"type": "websocket.receive", "bytes": b"\x01\x02"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]


def test_reading_pauses_while_the_app_does_not_receive() -> None:
    """With an app that does not receive, the server stops reading after --ws-max-queue
    messages: of 200 MiB offered it takes in a bounded amount; released, the app gets every
    message in order."""
    with serving(ws_max_queue=4) as served:
        path = unique("/hold")
        _, raw = RawWS.open(served.port, path)
        with contextlib.closing(raw):
            sock, block = raw.sock, bytes(64 * 1024 - 8)
            sock.setblocking(False)
            accepted = begun = 0
            pending = b""
            while accepted < 200 * MiB:
                if not pending:
                    pending = client_frame(OP_BINARY, begun.to_bytes(8, "big") + block)
                    begun += 1
                try:
                    sent = sock.send(pending)
                except BlockingIOError:
                    if not select.select([], [sock], [], 0.5)[1]:
                        break  # blocked for half a second: the server has stopped reading
                    continue
                accepted += sent
                pending = pending[sent:]
            assert accepted < 40 * MiB, f"the server took {accepted / MiB:.0f} MiB"
            served.app.gate.set()
            sock.settimeout(10)
            sock.sendall(pending + client_frame(OP_CLOSE, close_payload(1000)))
            served.app.reports.wait_for(rf"{re.escape(path)} done", timeout=10)
        *messages, disconnect = served.app.received
        assert disconnect == {"type": "websocket.disconnect", "code": 1000, "reason": ""}
        assert [int.from_bytes(m["bytes"][:8], "big") for m in messages] == list(range(begun))
        assert all(len(m["bytes"]) == 64 * 1024 for m in messages)


def test_send_waits_while_the_client_does_not_read(served: Served) -> None:
    """An app sending 1 MiB messages to a client that reads nothing is held back by send();
    once the client reads, every message arrives, in order, and the app finishes."""
    path = unique("/flood")
    _, raw = RawWS.open(served.port, path)
    with contextlib.closing(raw):
        stuck = blocked_sends(served)
        assert 0 < stuck < 64, f"sent {stuck} of {WSApp.FLOOD} to a client that reads nothing"
        for n in range(WSApp.FLOOD):
            frame = raw.recv_frame(timeout=10)
            assert frame.opcode == OP_BINARY and len(frame.payload) == MiB
            assert int.from_bytes(frame.payload[:4], "big") == n
        assert raw.recv_close() == (1000, "")
    served.app.reports.wait_for(rf"{re.escape(path)} flooded")
    assert served.app.sent == WSApp.FLOOD


def test_send_blocked_on_a_slow_client_raises_oserror_when_it_leaves(served: Served) -> None:
    """A send() waiting on a client that reads nothing raises an OSError once the client goes."""
    path = unique("/flood")
    _, raw = RawWS.open(served.port, path)
    stuck = blocked_sends(served)
    raw.close()
    served.app.reports.wait_for(rf"{re.escape(path)} failed")
    [error] = served.app.errors
    assert isinstance(error, OSError), repr(error)
    assert served.app.sent == stuck < WSApp.FLOOD


# =========================================================================== keepalive
@pytest.fixture
def pinging() -> Iterator[Served]:
    with serving(ws_ping_interval=0.2, ws_ping_timeout=0.3) as served:
        yield served


def test_client_that_never_answers_pings_is_closed_with_1011(pinging: Served) -> None:
    """A client that never answers a ping gets a ping, then close 1011, then EOF."""
    path = unique()
    _, raw = RawWS.open(pinging.port, path)
    with contextlib.closing(raw):
        # Each step within 10 s, well before the defaults' 20 s: these pings and this timeout
        # (0.2 s, 0.3 s) are the ones that fired; generous, as a guard for a busy machine.
        assert raw.recv_frame(timeout=10).opcode == OP_PING
        assert raw.recv_frame(timeout=10).close[0] == 1011
        assert raw.at_eof(timeout=10)
    pinging.app.reports.wait_for(rf"{re.escape(path)} disconnect 1011")


def test_client_that_answers_pings_stays_open(pinging: Served) -> None:
    """A client that answers pings (websockets does) stays open past several ping timeouts."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    log = logging.Logger("ws-test-client", logging.DEBUG)  # the client's frame log: its pings
    log.addHandler(Collect())
    with ws_connect(pinging.port, unique(), ping_interval=None, logger=log) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.5)  # nothing to receive, but the connection must stay up
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"
    assert sum("< PING" in line for line in records) >= 3, records


# =========================================================================== limits
def test_limit_concurrency_counts_open_websockets() -> None:
    """With --limit-concurrency 1 and one WebSocket open, a second upgrade gets 503; once the
    first closes, upgrades are accepted again."""
    with serving(limit_concurrency=1) as served:
        path = unique()
        with ws_connect(served.port, path) as ws:
            ws.send("hold the slot")
            assert ws.recv(timeout=5) == "hold the slot"
            response, closed = http_answer(served.port, upgrade_request(unique()))
            assert response.status == 503 and closed
        served.app.reports.wait_for(rf"{re.escape(path)} disconnect 1000")
        # the slot frees once the app's task ends, just after it reports
        until(lambda: upgrades(served.port), "the slot to be freed")

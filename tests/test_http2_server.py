"""HTTP/2 through the supervisor's life: rolling restarts and reloads under HTTP/2 load lose no
request, and --limit-connections makes room among idle HTTP/2 connections.

The load (tests/h2_load.py) keeps streams in flight on its connections across each restart, so
every drain meets live streams: the worker's two-step GOAWAY (RFC 9113 6.8) must let all the
streams it took finish. It retries only what RFC 9113 says was never processed. (nghttp2's h2load
is no judge here: after a GOAWAY it counts as failed the requests it then could not submit, and
stops sending on that connection.)
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings

from tests.h2_load import H2Load
from tests.utils import Process, run_devserve, run_server, until

APP = """\
import asyncio

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(0.02)  # so that every drain finds streams in flight
    body = VERSION.encode()
    headers = [(b"content-length", b"%d" % len(body))]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": body}})
"""


def write_app(directory: Path, version: str) -> None:
    (directory / "h2_app.py").write_text(APP.format(version=version))


def serve(tmp_path: Path, *args: str) -> Iterator[Process]:
    return run_devserve(
        "--no-access-log",
        "--app-dir",
        str(tmp_path),
        *args,
        "h2_app:app",
        cwd=str(tmp_path),
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )


def address(server: Process) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def test_sighup_rolling_restarts_under_http2_load_lose_no_request(tmp_path: Path) -> None:
    """Five rolling restarts under HTTP/2 load: every request the server took is answered 2xx
    (the drain's GOAWAY names it), and the load carries on on the new workers."""
    write_app(tmp_path, "one")
    with serve(tmp_path, "--workers", "2") as server:
        with H2Load(*address(server), threads=3) as load:
            load.wait_for_more(100)
            for generation in range(2, 7):
                server.proc.send_signal(signal.SIGHUP)
                server.out.wait_for(rf"restart: generation {generation} serving", timeout=10)
                load.wait_for_more(50)
        output = server.out.stop()
    assert load.lost == [], f"{load.summary()}\n{load.lost}\n{output}"


def test_reloads_under_http2_load_lose_no_request(tmp_path: Path) -> None:
    """Five saves under HTTP/2 load (--reload, two workers) lose no request."""
    write_app(tmp_path, "v0")
    with serve(tmp_path, "--reload", "--workers", "2") as server:
        server.out.wait_for("reload: watching")
        with H2Load(*address(server), threads=3) as load:
            load.wait_for_more(100)
            for number in range(1, 6):
                write_app(tmp_path, f"v{number}")
                server.out.wait_for(rf"reload: generation {number + 1} serving", timeout=15)
                load.wait_for_more(50)
        output = server.out.stop()
    assert load.lost == [], f"{load.summary()}\n{load.lost}\n{output}"


class Client:
    """A prior-knowledge HTTP/2 client on a raw socket: just enough for the tests here."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config)
        self.h2.initiate_connection()
        self.sock.sendall(self.h2.data_to_send())
        self.events: list[h2.events.Event] = []
        self.closed = False

    def get(self, path: str = "/") -> int:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "t")]
        self.h2.send_headers(stream_id, headers, end_stream=True)
        self.sock.sendall(self.h2.data_to_send())
        self.read_until(
            lambda: any(
                isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id
                for e in self.events
            )
        )
        return stream_id

    def read_until(self, done: object) -> None:
        while not done() and not self.closed:  # type: ignore[operator]
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:  # an abort (a peer that answered no PING)
                data = b""
            if not data:
                self.closed = True
                break
            self.events += self.h2.receive_data(data)
            self.sock.sendall(self.h2.data_to_send())

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        found = [e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)]
        return found[-1] if found else None


def test_limit_connections_closes_an_idle_http2_connection_with_goaway() -> None:
    """At --limit-connections, a new client gets in by the close of an idle HTTP/2 connection,
    which is told with a GOAWAY naming its last stream (no request of it was dropped); the
    other idle one still serves."""

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with run_server(app, limit_connections=3) as server:  # the third makes room for a fourth
        idle = [Client(server.port), Client(server.port)]
        for client in idle:
            client.get()
        third = Client(server.port)
        assert third.get() == 1  # it was served
        until(lambda: len(server.server.state.connections) == 2, "one idle connection closed")
        for client in idle:
            client.sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):  # until the close, or no more to read
                client.read_until(lambda: False)
        [closed] = [client for client in idle if client.closed]
        goaway = closed.goaway()
        assert goaway is not None and (goaway.last_stream_id, goaway.error_code) == (1, 0)
        [open_one] = [client for client in idle if not client.closed]
        assert open_one.get() == 3


def test_a_silent_client_with_a_stream_open_is_pinged_then_closed() -> None:
    """A stream waits on the app while its client goes silent: after --h2-ping-interval the
    server PINGs; a client that answers keeps the connection, one that does not is closed
    after --h2-ping-timeout and the app's receive() says http.disconnect."""
    disconnected = threading.Event()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["path"] == "/quick":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()

    options = {"h2_ping_interval": 0.2, "h2_ping_timeout": 0.3}
    with run_server(app, **options) as server:
        answering, silent = Client(server.port), Client(server.port)
        for client in (answering, silent):
            stream_id = client.h2.get_next_available_stream_id()
            headers = [(":method", "POST"), (":scheme", "http"), (":path", "/wait"),
                       (":authority", "t")]  # fmt: skip
            client.h2.send_headers(stream_id, headers)
            client.sock.sendall(client.h2.data_to_send())
        # the answering one reads (h2 acknowledges each PING) until it has seen two PINGs
        answering.read_until(
            lambda: sum(isinstance(e, h2.events.PingReceived) for e in answering.events) >= 2
        )
        assert not answering.closed
        assert answering.get("/quick") > 1  # still served
        assert disconnected.wait(5), "the silent client's stream was never ended"
        silent.read_until(lambda: False)
        assert silent.closed
        assert any(isinstance(e, h2.events.PingReceived) for e in silent.events)
        answering.sock.close()  # its stream waits on: the server would wait for it to stop


def test_a_stream_window_below_the_default_takes_effect_without_breaking_an_early_upload() -> None:
    """--h2-stream-window below 65,535 reaches the client as a SETTINGS update, applied once it
    is acknowledged: a client may send a default window on a stream before it reads it (RFC
    9113 6.9.3), and that upload is served, not a FLOW_CONTROL_ERROR."""

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % size})

    with run_server(app, h2_stream_window=16384) as server:
        client = Client(server.port)  # its preface and SETTINGS are sent; nothing read yet
        headers = [(":method", "POST"), (":scheme", "http"), (":path", "/up"), (":authority", "t")]
        client.h2.send_headers(1, headers)
        for at in range(0, 65535, 16384):  # in frames of the default largest size
            client.h2.send_data(1, b"x" * min(16384, 65535 - at), end_stream=at + 16384 >= 65535)
        client.sock.sendall(client.h2.data_to_send())
        client.read_until(lambda: any(isinstance(e, h2.events.StreamEnded) for e in client.events))
        body = b"".join(e.data for e in client.events if isinstance(e, h2.events.DataReceived))
        assert body == b"65535", client.events
        settings = [e for e in client.events if isinstance(e, h2.events.RemoteSettingsChanged)]
        windows = [
            change.new_value
            for event in settings
            for code, change in event.changed_settings.items()
            if code == h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
        ]
        assert windows[-1:] == [16384], settings  # the smaller window did come, as an update

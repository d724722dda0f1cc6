"""ASGI tracing: the message summaries, the trace log of a real request, and tracing at run time.

The unit tests pin `summarize`, `describe_event` and the `Tracer`'s counting. In-process, an app
that notes every message it receives and sends is served with trace on, and the `devserve.trace`
log must list the same messages in the same order. Through the control socket of a real devserve
(the CLI, one worker, the demo app unless a test brings its own), `trace` and `trace-off` decide
which request records in the `requests` stream carry a message timeline; a WebSocket session is
traced like a request, and secret headers are redacted unless devserve runs with --no-redact.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from devserver.control.client import ControlClient, ControlError
from devserver.redaction import REDACTED
from devserver.tracing import Trace, Tracer, describe_event, describe_scope, summarize
from tests.utils import Process, collected_records, raw_exchange, run_devserve, run_server, until

DEADLINE = 15.0  # for records to reach the stream (ticks every 250 ms) on a busy machine
EVENT_LINE = re.compile(
    r"^(?P<label>trace \d+:(?:\d+|lifespan)) \+(?P<t>\d+\.\d{3}) ms "
    r"(?P<call>receive|send|refused)\s+(?P<type>\S+)(?P<fields>.*)$"
)

Scope = dict[str, Any]
Message = dict[str, Any]
Record = dict[str, Any]


# --------------------------------------------------------------------------- unit level
def test_summarize_turns_bodies_into_sizes_and_copies_small_values() -> None:
    """Bodies (bytes, bytearray, memoryview, text) become their size in bytes, UTF-8 for text;
    numbers, flags, None and short texts are copied; anything else is named by its type."""
    assert summarize({"type": "http.request", "body": b"hello", "more_body": True}, True) == {
        "body": 5,
        "more_body": True,
    }
    assert summarize({"type": "http.response.body", "body": bytearray(300)}, True) == {"body": 300}
    assert summarize(
        {"type": "websocket.send", "bytes": memoryview(b"abc"), "text": None}, True
    ) == {
        "bytes": 3,
        "text": None,
    }
    assert summarize({"type": "websocket.receive", "text": "héllo"}, True) == {"text": 6}
    assert summarize({"type": "websocket.close", "code": 1000, "reason": "bye"}, True) == {
        "code": 1000,
        "reason": "bye",
    }
    assert summarize(
        {"type": "x", "ratio": 0.5, "reason": "r" * 201, "state": {"a": 1}, "tuple": (1, 2)}, True
    ) == {"ratio": 0.5, "reason": "<str>", "state": "<dict>", "tuple": "<tuple>"}
    assert summarize({"type": "http.response.start"}, True) == {}


def test_summarize_redacts_secret_headers_unless_redact_is_off() -> None:
    """Headers become [name, value] text pairs; Authorization, Proxy-Authorization, Cookie and
    Set-Cookie values (whatever the name's case) are "[redacted]", unless redact=False."""
    headers = [
        (b"content-type", b"text/plain"),
        (b"authorization", b"Bearer t0ken"),
        (b"Cookie", b"sid=1"),
        (b"Set-Cookie", b"sid=2; HttpOnly"),
        (b"proxy-authorization", b"Basic eA=="),
        (b"x-custom", b"caf\xe9"),
    ]
    message = {"type": "http.response.start", "status": 200, "headers": headers}
    assert summarize(message, True) == {
        "status": 200,
        "headers": [
            ["content-type", "text/plain"],
            ["authorization", REDACTED],
            ["Cookie", REDACTED],
            ["Set-Cookie", REDACTED],
            ["proxy-authorization", REDACTED],
            ["x-custom", "café"],
        ],
    }
    assert REDACTED == "[redacted]"
    assert summarize(message, False)["headers"] == [
        ["content-type", "text/plain"],
        ["authorization", "Bearer t0ken"],
        ["Cookie", "sid=1"],
        ["Set-Cookie", "sid=2; HttpOnly"],
        ["proxy-authorization", "Basic eA=="],
        ["x-custom", "café"],
    ]


def test_describe_event_formats_one_line() -> None:
    """An event line: its time in ms with 3 decimals, the call padded to 7, the type, then each
    key as key=value, body sizes with B and headers as their count; nothing trails."""
    start = {
        "t": 0.105,
        "call": "send",
        "type": "http.response.start",
        "keys": ["status", "headers"],
        "status": 200,
        "headers": [["content-type", "text/plain"], ["content-length", "5"]],
    }
    assert describe_event(start) == "+0.105 ms send    http.response.start status=200 headers=2"
    body = {
        "t": 12.5,
        "call": "receive",
        "type": "http.request",
        "keys": ["body", "more_body"],
        "body": 13,
        "more_body": False,
    }
    assert describe_event(body) == "+12.500 ms receive http.request body=13B more_body=False"
    accept = {"t": 1, "call": "send", "type": "websocket.accept", "keys": []}
    assert describe_event(accept) == "+1.000 ms send    websocket.accept"
    text = {"t": 2.0, "call": "send", "type": "websocket.send", "keys": ["text", "bytes"]}
    text.update(text=4, bytes=None)
    assert describe_event(text) == "+2.000 ms send    websocket.send text=4B bytes=None"


def test_describe_scope_names_the_request_without_header_values() -> None:
    """The scope line gives type, method, target, version, peer and the number of headers only."""
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/items",
        "query_string": b"page=2",
        "http_version": "1.1",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"authorization", b"Bearer t0ken"), (b"host", b"x")],
    }
    assert describe_scope(scope) == (
        "scope http POST /items?page=2 HTTP/1.1 from 127.0.0.1:5000, 2 headers"
    )
    websocket: Scope = {"type": "websocket", "path": "/ws", "headers": []}
    assert describe_scope(websocket) == "scope websocket /ws HTTP/1.1 from a unix socket, 0 headers"


def test_tracer_counts_down_the_requests_it_traces() -> None:
    """enable(N) traces the next N requests, enable(None) every request, disable none; a Tracer
    made with always=True traces from the start, and traces are numbered in its process."""
    scope: Scope = {"type": "http", "path": "/", "headers": []}
    tracer = Tracer()
    assert tracer.remaining == 0  # the protocols call start() only when this is non-zero
    tracer.enable(2)
    first, second = tracer.start(scope), tracer.start(scope)
    assert tracer.remaining == 0
    assert (first.label, second.label) == (f"trace {os.getpid()}:1", f"trace {os.getpid()}:2")
    tracer.enable(None)
    assert [tracer.start(scope).label for _ in range(5)][-1] == f"trace {os.getpid()}:7"
    assert tracer.remaining == -1
    tracer.disable()
    assert tracer.remaining == 0
    always = Tracer(always=True, redact=False)
    trace = always.start(scope)
    assert not trace.redact.active and always.remaining == -1


def test_a_trace_notes_each_message_through_the_wrapped_calls() -> None:
    """Trace.wrap's receive and send note each message once, in order, with its keys (type
    excluded), summaries and a time in ms that does not go back."""
    trace = Trace({"type": "http", "path": "/", "headers": []}, "trace test:1", redact=True)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"abc", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def app() -> None:
        traced_receive, traced_send = trace.wrap(receive, send)
        assert await traced_receive() == {
            "type": "http.request",
            "body": b"abc",
            "more_body": False,
        }
        start = {"type": "http.response.start", "status": 204, "headers": [(b"set-cookie", b"s")]}
        await traced_send(start)

    asyncio.run(app())
    assert [e["type"] for e in sent] == ["http.response.start"]
    times = [event.pop("t") for event in trace.events]
    assert times == sorted(times) and times[0] >= 0
    assert trace.events == [
        {
            "call": "receive",
            "type": "http.request",
            "keys": ["body", "more_body"],
            "body": 3,
            "more_body": False,
        },
        {
            "call": "send",
            "type": "http.response.start",
            "keys": ["status", "headers"],
            "status": 204,
            "headers": [["set-cookie", REDACTED]],
        },
    ]


# --------------------------------------------------------------------------- in-process
class RecordingApp:
    """Reads a request body to its end, answers 201 in two body parts, and notes every message
    it receives and sends as (call, type, body size or None), through its own wrappers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int | None]] = []

    def note(self, call: str, message: Message) -> None:
        body = message.get("body")
        self.seen.append((call, message["type"], None if body is None else len(body)))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return

        async def receive_noted() -> Message:
            message: Message = await receive()
            self.note("receive", message)
            return message

        async def send_noted(message: Message) -> None:
            self.note("send", message)
            await send(message)

        size, more = 0, True
        while more:
            message = await receive_noted()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send_noted(
            {"type": "http.response.start", "status": 201, "headers": [(b"x-size", b"%d" % size)]}
        )
        await send_noted({"type": "http.response.body", "body": b"got ", "more_body": True})
        await send_noted({"type": "http.response.body", "body": b"%d bytes" % size})


def chunked_post(path: str, chunks: list[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def test_the_trace_log_lists_exactly_the_messages_the_app_saw() -> None:
    """With trace on, one POST's devserve.trace lines are its scope line, then one line per
    message in the order the app received and sent them, with the same body sizes, under one
    label, at times that never go back."""
    app = RecordingApp()
    chunks = [b"a" * 10, b"b" * 2000, b"c" * 70_000]
    with collected_records("devserve.trace") as records, run_server(app, trace=True) as server:
        with server.connect() as sock:
            answer = raw_exchange(sock, chunked_post("/upload?x=1", chunks))
        lines = [record.getMessage() for record in records]
    # --trace also traces the lifespan session, under its own label: set it aside
    lifespan = [line.split(" scope ")[0] for line in lines if line.endswith(" scope lifespan")]
    lines = [line for line in lines if not line.startswith(tuple(f"{x} " for x in lifespan))]
    assert answer.startswith(b"HTTP/1.1 201 ")
    assert b"x-size: 72010" in answer and b"got " in answer and b"72010 bytes" in answer
    scope_line, *event_lines = lines
    assert re.fullmatch(
        r"trace \d+:\d+ scope http POST /upload\?x=1 HTTP/1.1 from 127\.0\.0\.1:\d+, 3 headers",
        scope_line,
    ), scope_line
    events = [EVENT_LINE.match(line) for line in event_lines]
    assert all(events), event_lines
    parsed = [match.groupdict() for match in events if match is not None]
    traced = []
    for event in parsed:
        body = re.search(r"\bbody=(\d+)B", event["fields"])
        traced.append((event["call"], event["type"], int(body.group(1)) if body else None))
    assert traced == app.seen
    assert app.seen[0][:2] == ("receive", "http.request")
    assert sum(size or 0 for call, _, size in app.seen if call == "receive") == 72010
    assert app.seen[-3:] == [
        ("send", "http.response.start", None),
        ("send", "http.response.body", 4),
        ("send", "http.response.body", 11),
    ]
    assert {event["label"] for event in parsed} == {scope_line.split(" scope ")[0]}
    times = [float(event["t"]) for event in parsed]
    assert times == sorted(times)
    assert "status=201" in parsed[-3]["fields"] and "more_body=True" in parsed[-2]["fields"]


def test_without_trace_nothing_is_logged() -> None:
    """Tracing is off by default: a request served without trace logs no devserve.trace line."""
    app = RecordingApp()
    with (
        collected_records("devserve.trace") as records,
        run_server(app) as server,
        server.connect() as sock,
    ):
        answer = raw_exchange(sock, chunked_post("/", [b"x"]))
    assert answer.startswith(b"HTTP/1.1 201 ")
    assert len(app.seen) == 4
    assert records == []


async def body_before_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Breaks the HTTP protocol: a body before its response start."""
    if scope["type"] == "http":
        await send({"type": "http.response.body", "body": b"too early"})


def test_a_send_the_server_refuses_is_traced_as_refused() -> None:
    """The trace notes a send as the app makes it; when the server refuses it, the next line
    says so and why, so a learner does not take the message for sent."""
    with (
        collected_records("devserve.trace") as records,
        run_server(body_before_start, trace=True) as server,
        server.connect() as sock,
    ):
        answer = raw_exchange(sock, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    lines = [r.getMessage() for r in records if " scope lifespan" not in r.getMessage()]
    lines = [line for line in lines if ":lifespan " not in line]
    assert answer.startswith(b"HTTP/1.1 500 ")
    sent, refused = [EVENT_LINE.match(line) for line in lines[1:3]]
    assert sent and (sent["call"], sent["type"]) == ("send", "http.response.body"), lines
    assert refused and (refused["call"], refused["type"]) == ("refused", "http.response.body")
    assert "error=" in refused["fields"] and "http.response.start" in refused["fields"], lines


# --------------------------------------------------------------------------- at run time
@dataclasses.dataclass
class Devserve:
    process: Process
    control: ControlClient
    pid: int  # the one worker's


@contextlib.contextmanager
def devserve(tmp_path: Path, *args: str) -> Iterator[Devserve]:
    """The devserve CLI with one worker and a control socket, serving."""
    path = str(tmp_path / "ctl.sock")
    with run_devserve("--control", path, "--workers", "1", *args, cwd=str(tmp_path)) as process:
        control = ControlClient(path)
        (worker,) = control.request("status")["workers"]
        assert worker["state"] == "ready"
        yield Devserve(process, control, worker["pid"])


def records(
    control: ControlClient, queries: set[str], timeout: float = DEADLINE
) -> dict[str, Record]:
    """The request records of the stream whose query strings are `queries`, by query string,
    read from a subscription until all are there (snapshots arrive every second, so the
    deadline is checked at least that often)."""
    found: dict[str, Record] = {}
    deadline = time.monotonic() + timeout
    stream = control.subscribe()
    try:
        for message in stream:
            if message["type"] == "requests":
                for record in message["requests"]:
                    assert record["query"] not in found, f"two records for {record['query']}"
                    found[record["query"]] = record
            if queries <= found.keys():
                return found
            assert time.monotonic() < deadline, f"records {queries - found.keys()} never came"
    finally:
        stream.close()
    raise AssertionError("the stream ended")


def calls(record: Record) -> list[tuple[str, str]]:
    return [(event["call"], event["type"]) for event in record["trace"]]


HTTP_POST = [
    ("receive", "http.request"),
    ("send", "http.response.start"),
    ("send", "http.response.body"),
]
HTTP_GET = HTTP_POST[1:]  # the demo app's pages never call receive()


def test_trace_one_request_traces_exactly_the_next_one(tmp_path: Path) -> None:
    """`trace` with requests=1 makes the worker trace its next request only: that request's record
    has a trace (its messages and body sizes), the request after it has none, and the worker's
    log shows the traced request's scope line."""
    with devserve(tmp_path) as server:
        reply = server.control.request("trace", requests=1)
        with httpx.Client(base_url=server.process.url, timeout=10) as client:
            traced = client.post("/echo?n=1", content=b"twelve bytes")
            after = client.get("/nope?n=2")
        found = records(server.control, {"n=1", "n=2"})
        server.process.out.wait_for(r"trace \d+:1 scope http POST /echo\?n=1 HTTP/1.1 from ")
        tracing = server.control.request("status")["server"]["tracing"]
    assert reply == {"tracing": [server.pid], "requests": 1}
    assert (traced.status_code, traced.content, after.status_code) == (200, b"twelve bytes", 404)
    first, second = found["n=1"], found["n=2"]
    assert calls(first) == HTTP_POST
    request, start, body = first["trace"]
    assert (request["body"], request["more_body"]) == (12, False)
    assert start["status"] == 200 and body["body"] == 12
    assert [e["t"] for e in first["trace"]] == sorted(e["t"] for e in first["trace"])
    assert first["pid"] == server.pid and first["bytes_in"] == 12
    assert "trace" not in second and second["status"] == 404
    assert tracing is False  # a counted trace is not "every request"
    assert server.process.out.count(r"scope http GET /nope") == 0


def test_trace_without_a_count_lasts_until_trace_off(tmp_path: Path) -> None:
    """`trace` with no count traces every request (the snapshot says tracing) until `trace-off`,
    after which requests carry no trace again."""
    with devserve(tmp_path) as server:
        reply = server.control.request("trace")
        during = server.control.request("status")["server"]["tracing"]
        with httpx.Client(base_url=server.process.url, timeout=10) as client:
            for n in (1, 2, 3):
                assert client.get(f"/?n={n}").status_code == 200
        stopped = server.control.request("trace-off")
        after = server.control.request("status")["server"]["tracing"]
        with httpx.Client(base_url=server.process.url, timeout=10) as client:
            assert client.get("/?n=4").status_code == 200
        found = records(server.control, {"n=1", "n=2", "n=3", "n=4"})
    assert reply == {"tracing": [server.pid], "requests": None}
    assert stopped == {"stopped": [server.pid]}
    assert (during, after) == (True, False)
    assert [calls(found[f"n={n}"]) for n in (1, 2, 3)] == [HTTP_GET] * 3
    assert "trace" not in found["n=4"]


def test_a_count_after_trace_all_ends_tracing_all(tmp_path: Path) -> None:
    """`trace` with requests=1 while every request is traced narrows tracing to the next
    request: the snapshot stops saying tracing, and the request after that one has no trace."""
    with devserve(tmp_path) as server:
        server.control.request("trace")
        server.control.request("trace", requests=1)
        tracing = server.control.request("status")["server"]["tracing"]
        with httpx.Client(base_url=server.process.url, timeout=10) as client:
            for n in (1, 2):
                assert client.get(f"/?n={n}").status_code == 200
        found = records(server.control, {"n=1", "n=2"})
    assert tracing is False
    assert calls(found["n=1"]) == HTTP_GET
    assert "trace" not in found["n=2"]


def test_trace_off_ends_dash_dash_trace_for_new_workers_too(tmp_path: Path) -> None:
    """After devserve --trace and `trace-off`, a worker started by a restart does not trace."""
    with devserve(tmp_path, "--trace") as server:
        assert server.control.request("status")["server"]["tracing"] is True
        server.control.request("trace-off")
        server.control.request("restart")
        workers = until(
            lambda: server.control.request("status")["workers"],
            "a new worker",
            DEADLINE,
            accept=lambda workers: (
                [w["state"] for w in workers] == ["ready"] and workers[0]["pid"] != server.pid
            ),
        )
        with httpx.Client(base_url=server.process.url, timeout=10) as client:
            assert client.get("/?n=new").status_code == 200
        found = records(server.control, {"n=new"})
        tracing = server.control.request("status")["server"]["tracing"]
    assert found["n=new"]["pid"] == workers[0]["pid"]
    assert "trace" not in found["n=new"]
    assert tracing is False
    assert server.process.out.count(r"scope http GET /\?n=new") == 0


def test_trace_refuses_a_pid_that_is_no_worker_and_a_count_below_one(tmp_path: Path) -> None:
    """`trace` for a pid that is not a serving worker (the supervisor's, the test's) and `trace`
    with requests=0 or -1 are error replies, and none of them turns tracing on."""
    with devserve(tmp_path) as server:
        supervisor = server.control.request("status")["server"]["pid"]
        errors = []
        for arguments in (
            {"pid": supervisor},
            {"pid": os.getpid(), "requests": 1},
            {"requests": 0},
            {"requests": -1},
            {"requests": "3"},
        ):
            with pytest.raises(ControlError) as refused:
                server.control.request("trace", **arguments)
            errors.append(str(refused.value))
        with pytest.raises(ControlError, match=f"no serving worker with pid {supervisor}"):
            server.control.request("trace-off", pid=supervisor)
        tracing = server.control.request("status")["server"]["tracing"]
        with httpx.Client(base_url=server.process.url, timeout=10) as client:
            assert client.get("/?n=after").status_code == 200
        found = records(server.control, {"n=after"})
    assert errors[0] == f"trace: no serving worker with pid {supervisor}"
    assert errors[1] == f"trace: no serving worker with pid {os.getpid()}"
    assert errors[2] == "trace: requests must be at least 1, not 0"
    assert errors[3] == "trace: requests must be at least 1, not -1"
    assert "not a whole number" in errors[4]
    assert tracing is False
    assert "trace" not in found["n=after"]


def test_a_websocket_session_is_traced(tmp_path: Path) -> None:
    """A traced WebSocket session's record (type websocket, status 101) has the whole timeline:
    websocket.connect, websocket.accept, each websocket.receive and its websocket.send echo with
    the payload sizes, and websocket.disconnect with the client's close code; the worker's log
    has the same lines."""
    with devserve(tmp_path) as server:
        server.control.request("trace", requests=1)
        port = server.process.port
        with connect(f"ws://127.0.0.1:{port}/ws?n=ws", open_timeout=5, proxy=None) as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            ws.send(b"\x00\x01\x02")
            assert ws.recv(timeout=5) == b"\x00\x01\x02"
        found = records(server.control, {"n=ws"})
        server.process.out.wait_for(r"trace \d+:1 \+\S+ ms receive websocket\.disconnect code=1000")
        logged = [
            match.group(1)
            for match in re.finditer(r"trace \d+:1 \+\S+ ms (\w+\s+\S+)", server.process.out.text)
        ]
    record = found["n=ws"]
    assert (record["type"], record["status"]) == ("websocket", 101)
    assert calls(record) == [
        ("receive", "websocket.connect"),
        ("send", "websocket.accept"),
        ("receive", "websocket.receive"),
        ("send", "websocket.send"),
        ("receive", "websocket.receive"),
        ("send", "websocket.send"),
        ("receive", "websocket.disconnect"),
    ]
    events = record["trace"]
    assert (events[2]["text"], events[3]["text"]) == (5, 5)
    assert (events[4]["bytes"], events[5]["bytes"]) == (3, 3)
    assert events[6]["code"] == 1000
    assert [" ".join(line.split()) for line in logged] == [" ".join(c) for c in calls(record)]


SECRET_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = [(b"set-cookie", b"sid=cookie-SECRET-3"), (b"x-visible", b"plain-out")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@pytest.mark.parametrize("redact", [True, False], ids=["redacted", "no-redact"])
def test_secret_headers_in_records_and_traces(tmp_path: Path, redact: bool) -> None:
    """Authorization and Cookie request headers read "[redacted]" in the records of a traced and
    an untraced request, and Set-Cookie in the traced response start; the trace's scope line and
    the whole log never hold the secrets. With --no-redact the records and trace show them."""
    (tmp_path / "secret_app.py").write_text(SECRET_APP)
    args = ["--app-dir", str(tmp_path), "secret_app:app"]
    with devserve(tmp_path, *args, *([] if redact else ["--no-redact"])) as server:
        server.control.request("trace", requests=1)
        secrets = {"authorization": "Bearer tok-SECRET-1", "cookie": "sid=cookie-SECRET-2"}
        with httpx.Client(base_url=server.process.url, timeout=10) as client:
            for n in (1, 2):
                answer = client.get(f"/?n={n}", headers={**secrets, "x-visible": "plain-in"})
                assert answer.status_code == 200
        found = records(server.control, {"n=1", "n=2"})
        scope_line = server.process.out.wait_for(r"trace \d+:1 scope http GET /\?n=1 ")
        output = server.process.out.text
    traced, untraced = found["n=1"], found["n=2"]
    assert "trace" not in untraced
    assert calls(traced) == HTTP_GET  # this app never calls receive()
    start = traced["trace"][0]
    response_headers = dict(start["headers"])
    shown = {name: REDACTED if redact else value for name, value in secrets.items()}
    for record in (traced, untraced):
        headers = dict(record["headers"])
        assert {name: headers[name] for name in secrets} == shown
        assert headers["x-visible"] == "plain-in"
    assert response_headers == {
        "set-cookie": REDACTED if redact else "sid=cookie-SECRET-3",
        "x-visible": "plain-out",
    }
    assert "SECRET" not in scope_line and re.search(r", \d+ headers$", scope_line.rstrip())
    if redact:
        assert "SECRET" not in output


async def lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Speaks lifespan (the startup state reaches requests); answers requests with 204."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hi"
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_trace_covers_the_lifespan_session() -> None:
    """--trace logs the lifespan scope and its four messages, startup before the first request
    and shutdown after it, under a label of their own (`PID:lifespan`); the first request is
    `PID:1`."""
    with collected_records("devserve.trace") as records:
        with run_server(lifespan_app, trace=True) as server, server.connect() as sock:
            answer = raw_exchange(sock, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        lines = [record.getMessage() for record in records]
    assert answer.startswith(b"HTTP/1.1 204 ")
    label = lines[0].split(" scope ")[0]
    assert lines[0] == f"{label} scope lifespan"
    assert re.fullmatch(r"trace \d+:lifespan", label), label  # named: requests count from 1
    assert re.match(r"trace \d+:1 scope http GET / ", lines[3]), lines[3]
    session = [EVENT_LINE.match(line) for line in lines if line.startswith(f"{label} +")]
    assert [(m["call"], m["type"]) for m in session if m] == [
        ("receive", "lifespan.startup"),
        ("send", "lifespan.startup.complete"),
        ("receive", "lifespan.shutdown"),
        ("send", "lifespan.shutdown.complete"),
    ]
    request = next(i for i, line in enumerate(lines) if " scope http GET /" in line)
    shutdown = next(i for i, line in enumerate(lines) if "receive lifespan.shutdown" in line)
    assert 2 < request < shutdown

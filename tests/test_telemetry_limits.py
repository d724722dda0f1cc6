"""Observing the server can never hurt serving: what clients (or the app) make devserve record is
bounded at every step, from a worker's request records to the control API's lines.

The first tests are the attack from outside, against real processes: the request pattern that
used to stop devserve, and an app that writes garbage into its channel. The rest pin each bound
on its own: records, ticks, channel frames, the supervisor's ring, control-API lines, redaction.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import psutil
import pytest

from devserver import channel, stats
from devserver.control import schema
from devserver.control.client import ControlClient
from devserver.logging import Printable, RateLimit, make_access_logger
from devserver.redaction import REDACTED, Redactor
from devserver.supervisor import metrics
from tests.utils import clean_env, collected_records, devserve_command, run_devserve, until

APPS = str(Path(__file__).parent / "cli_apps")
WIDE = b"X: " + b"\xff" * 65000  # json.dumps makes each 0xff byte six characters


def _flood(port: int, path: str, rounds: int = 5, requests: int = 60) -> None:
    """The issue's reproduction: keep-alive requests, each with a 65 kB header of 0xff bytes
    (a new connection where the server closed one after a 500)."""
    request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\n" + WIDE + b"\r\n\r\n"
    for _ in range(rounds):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            for _ in range(requests):
                sock.sendall(request)
                answer = sock.recv(65536)
                assert answer.startswith(b"HTTP/1.1 "), answer
                if b"connection: close" in answer.lower():
                    sock.close()
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        finally:
            sock.close()


def _workers(client: ControlClient) -> dict[int, str]:
    return {w["pid"]: w["state"] for w in client.request("status")["workers"]}


def test_the_remote_dos_sequence_leaves_every_worker_serving(tmp_path: Path) -> None:
    """Requests with huge non-ASCII headers, on an ordinary route (sampled) and an erroring one
    (always kept), no longer break a worker's channel: the same workers serve on, no crash is
    counted, the records arrive shortened and the supervisor stays small."""
    sock_path = str(tmp_path / "ctl.sock")
    with run_devserve(
        "--workers", "2", "--control", sock_path, "--app-dir", APPS, "--no-access-log",
        "--limit-request-field-size", "70000", "tamper_app:app",
    ) as proc:  # fmt: skip
        client = ControlClient(sock_path, timeout=10)
        before = _workers(client)
        supervisor = psutil.Process(proc.proc.pid)
        rss_before = supervisor.memory_info().rss
        port = int(proc.url.rsplit(":", 1)[1])
        _flood(port, "/x")
        _flood(port, "/raise")
        after = _workers(client)
        server = client.request("status")["server"]
        answer = httpx.get(f"{proc.url}/pid", timeout=5)
        rss_after = supervisor.memory_info().rss
        lines: list[int] = []
        cut_records: list[dict[str, Any]] = []
        for message in client.subscribe():
            if message["type"] == "requests":
                lines.append(len(schema.encode(message)))
                cut_records += [r for r in message["requests"] if "headers" in r.get("cut", ())]
            if len(cut_records) >= 10 or len(lines) > 50:
                break
        proc.out.stop()
    assert after == before, (before, after)
    assert server["crash_loop"] is False
    assert answer.status_code == 200
    assert cut_records, "no shortened record reached the control API"
    record = cut_records[0]
    value = dict(record["headers"])["x"]
    assert value.endswith(stats.CUT) and len(value) <= stats.RECORD_TEXT
    assert max(lines) < metrics.BATCH_BYTES * 7  # JSON escapes; far below schema.MAX_LINE
    assert rss_after - rss_before < 48 * 1024 * 1024, (rss_before, rss_after)
    assert "channel:" not in proc.out.text


def test_an_app_that_breaks_its_channel_gets_its_worker_replaced_not_a_crash_loop(
    tmp_path: Path,
) -> None:
    """Garbage in a worker's channel is a protocol violation: logged, the worker replaced, and
    six of them in a row are no crash loop."""
    sock_path = str(tmp_path / "ctl.sock")
    with run_devserve(
        "--workers", "1", "--control", sock_path, "--app-dir", APPS, "tamper_app:app"
    ) as proc:
        client = ControlClient(sock_path, timeout=10)
        seen: set[int] = set()
        for _ in range(6):
            pid = _wait_for_a_new_worker(client, seen)
            seen.add(pid)
            answer = httpx.get(f"{proc.url}/tamper", timeout=5)
            assert answer.text.startswith("tampered ") and answer.text != "tampered 0"
        _wait_for_a_new_worker(client, seen)
        server = client.request("status")["server"]
        proc.out.stop()
    assert server["crash_loop"] is False
    assert proc.out.count("broke the channel protocol") == 6
    assert proc.out.count("CRITICAL") == 0


def _wait_for_a_new_worker(client: ControlClient, seen: set[int], timeout: float = 15) -> int:
    """The pid of the one worker, once it is ready and none of `seen`."""

    def only_fresh(workers: list[dict[str, Any]]) -> bool:
        return (
            len(workers) == 1 and workers[0]["state"] == "ready" and workers[0]["pid"] not in seen
        )

    workers = until(
        lambda: client.request("status")["workers"], "a new worker", timeout, accept=only_fresh
    )
    return int(workers[0]["pid"])


# --------------------------------------------------------------------------- records
def _exchange(headers: list[tuple[bytes, bytes]], path: str = "/", status: int = 200) -> Any:
    scope = {
        "type": "http",
        "path": path,
        "query_string": b"",
        "http_version": "1.1",
        "scheme": "http",
        "client": ("127.0.0.1", 5000),
        "headers": headers,
    }
    return SimpleNamespace(
        scope=scope,
        method="GET",
        status=status,
        bytes_sent=0,
        bytes_received=0,
        started_at=time.perf_counter(),
        trace=None,
        failure=None,
        stream_id=None,
    )


def test_a_record_keeps_the_first_headers_and_marks_what_it_cut() -> None:
    """13,000 headers and a 65 kB value make a record of 64 pairs, one value cut, a count of
    the rest, and a path cut to its bound."""
    headers = [(b"x-big", b"\xff" * 65000)] + [(b"x-%d" % n, b"v") for n in range(13000)]
    record = stats.make_record(_exchange(headers, path="/" + "p" * 5000), 1, 0.001, True)
    size = record.pop("size")
    pairs = record["headers"]
    assert len(pairs) == stats.RECORD_HEADERS + 1
    assert pairs[0][1].endswith(stats.CUT) and len(pairs[0][1]) == stats.RECORD_TEXT
    assert pairs[-1] == [stats.CUT, f"{13001 - stats.RECORD_HEADERS} more headers"]
    assert record["path"].endswith(stats.CUT) and len(record["path"]) == stats.RECORD_TEXT
    assert record["cut"] == ["path", "headers"]
    assert len(json.dumps(record)) < 8 * (stats.RECORD_HEADER_CHARS + 2 * stats.RECORD_TEXT)
    assert size >= sum(len(n) + len(v) for n, v in pairs)


def test_a_tick_carries_records_up_to_its_budget_and_counts_the_rest_as_dropped() -> None:
    """500 failed requests with 8 kB of headers each fit no tick: the records stop at the budget
    and the rest count as dropped, so the frame stays small."""
    worker = stats.WorkerStats()
    headers = [(b"x-%d" % n, b"\xff" * 1000) for n in range(40)]
    for _ in range(500):
        worker.request_done(_exchange(headers, status=500))
    deltas = worker.take()
    kept = len(deltas["records"])
    assert 0 < kept < 500
    assert deltas["records_dropped"] == 500 - kept
    assert len(channel.encode(channel.Tick(500, 0, 1, stats=deltas))) < 8 * stats.TICK_RECORD_CHARS


# --------------------------------------------------------------------------- the channel
def test_a_frame_over_the_limit_is_shortened_never_sent() -> None:
    """A tick too large for a frame goes without its records (counted as dropped); a failure's
    traceback keeps its start and end."""
    records = [{"headers": [["x", "\xff" * 1_000_000]]}] * 4
    tick = channel.Tick(1, 0, 0, stats={"records": records, "records_dropped": 2})
    frame = channel.encode(tick)
    assert len(frame) < 1024
    decoded = channel.decode(frame[4:])
    assert isinstance(decoded, channel.Tick) and decoded.stats is not None
    assert decoded.stats["records"] == [] and decoded.stats["records_dropped"] == 6
    failed = channel.decode(channel.encode(channel.Failed("boom", "A" * 10**6 + "the error"))[4:])
    assert isinstance(failed, channel.Failed)
    assert len(failed.details) < channel.TEXT_LIMIT + 100
    assert failed.details.startswith("AAA") and failed.details.endswith("the error")


def test_bytes_that_are_no_message_are_a_violation_that_closes_the_channel() -> None:
    """A frame header past the limit, or a frame that is not JSON, closes the channel with the
    reason kept for the supervisor; nothing after it is read."""
    for garbage in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x02{]"):
        got: list[channel.Message] = []
        protocol = channel.ChannelProtocol(got.append, lambda: None)
        transport = SimpleNamespace(closed=False)
        transport.close = lambda t=transport: setattr(t, "closed", True)
        protocol.transport = transport  # type: ignore[assignment]
        protocol.data_received(garbage)
        protocol.data_received(channel.encode(channel.Ready(1)))
        assert protocol.violation is not None and transport.closed and got == []


# --------------------------------------------------------------------------- the supervisor
def test_the_record_ring_is_bounded_by_bytes_and_streamed_in_small_batches() -> None:
    """Large records evict old ones by bytes, a tampered giant record is cut down, and the
    control API gets them in batches of at most BATCH_BYTES."""
    meter = metrics.Metrics()
    worker = SimpleNamespace(pid=42, slot=1)
    big = {"seq": 0, "path": "/", "headers": [["x", "y" * 30_000]]}
    giant = {"seq": 1, "path": "/" * 10**6, "headers": [["x", "y" * 10**6]], "trace": [1] * 10**5}
    for n in range(400):
        tick = channel.Tick(n, 0, 1, stats=_stats([dict(big, seq=n)]))
        meter.on_tick(worker, tick)  # type: ignore[arg-type]
    meter.on_tick(worker, channel.Tick(401, 0, 1, stats=_stats([giant])))  # type: ignore[arg-type]
    assert meter.record_bytes <= metrics.RECORD_BYTES
    assert meter.record_bytes == sum(len(json.dumps(r)) for r in meter.records)
    assert meter.records[-1]["cut"] == ["headers", "trace", "path"]
    assert len(json.dumps(meter.records[-1])) < metrics.RECORD_MAX
    batches, cursor = meter.batches_since(0)
    assert cursor == meter.record_count and sum(map(len, batches)) == len(meter.records)
    assert all(len(json.dumps(b)) <= metrics.BATCH_BYTES + 2 * len(b) for b in batches)
    assert len(batches) > 1


def _stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "statuses": [0, len(records), 0, 0, 0],
        "protocols": [len(records), 0],
        "buckets": [],
        "duration_sum": 0.0,
        "duration_max": 0.0,
        "bytes_in": 0,
        "bytes_out": 0,
        "rejected": 0,
        "ws_opened": 0,
        "ws_received": 0,
        "ws_sent": 0,
        "records": records,
        "records_dropped": 0,
    }


def test_a_control_message_over_the_line_limit_becomes_an_error_line() -> None:
    """No line passes MAX_LINE: a message that would is replaced by an error saying so."""
    line = schema.encode(schema.event({"kind": "log", "line": "x" * schema.MAX_LINE}))
    reply = json.loads(line)
    assert len(line) < 1024 and reply["type"] == "error" and "line limit" in reply["error"]


# --------------------------------------------------------------------------- redaction
def test_redaction_covers_names_with_secret_words_and_query_parameters() -> None:
    """X-Api-Key, X-Auth-Token and ?session_id= are hidden by default; other names are not, and
    an empty word list (--no-redact) hides nothing."""
    redactor = Redactor()
    assert all(redactor.secret(n) for n in ("Authorization", "X-Api-Key", "X-Auth-Token"))
    assert all(redactor.secret(n) for n in ("Cookie", "set-cookie", "X-Client-Secret"))
    assert not any(redactor.secret(n) for n in ("Host", "Accept", "User-Agent", "Content-Type"))
    assert redactor.query("page=2&session_id=abc&api%5Fkey=k") == (
        f"page=2&session_id={REDACTED}&api%5Fkey={REDACTED}"
    )
    assert redactor.query("x=1;token=t&y") == f"x=1;token={REDACTED}&y"
    assert Redactor(()).query("token=abc") == "token=abc"
    assert redactor.header("Referer", "http://x/p?token=t0k&a=1") == (
        f"http://x/p?token={REDACTED}&a=1"
    )
    assert redactor.secret("X-CSRF-Token") and redactor.secret("X-XSRF")
    assert all(map(redactor.secret, ("X-Amz-Signature", "Sec-WebSocket-Protocol", "passwd")))
    assert redactor.header("Referer", "https://u:pw@h/") == f"https://{REDACTED}@h/"
    assert Redactor(["trace"]).secret("X-Trace-Id") and not Redactor(["trace"]).secret("Cookie")
    pairs, _chars, _cut = stats.record_headers([(b"x-api-key", b"k"), (b"host", b"h")], redactor)
    assert pairs == [["x-api-key", REDACTED], ["host", "h"]]


def test_the_access_log_redacts_secret_query_values_and_header_atoms() -> None:
    """The request line and %({header}i)s atoms never show a secret; --no-redact shows them."""
    exchange = _exchange([(b"x-api-key", b"k3y"), (b"host", b"h"), (b"referer", b"/r?token=t0k")])
    exchange.scope["raw_path"] = b"/p"
    exchange.scope["query_string"] = b"token=t0k&page=2"
    with collected_records("devserve.access") as records:
        make_access_logger('"%(r)s" %({x-api-key}i)s %(q)s %(f)s', colour=False)(None, exchange)
        make_access_logger(None, colour=False)(None, exchange)
        make_access_logger("%(q)s", colour=False, redact=False)(None, exchange)
        lines = [r.getMessage() for r in records]
    assert lines[0] == (
        f'"GET /p?token={REDACTED}&page=2 HTTP/1.1" {REDACTED} token={REDACTED}&page=2 '
        f"/r?token={REDACTED}"
    )
    assert f"/p?token={REDACTED}&page=2" in lines[1] and "t0k" not in lines[1]
    assert lines[2] == "token=t0k&page=2"


def test_redact_names_replaces_the_list_of_secret_words(tmp_path: Path) -> None:
    """`--redact-names trace` hides X-Trace-Id and ?trace= in the records a worker sends, and
    no longer hides Authorization, since the list was replaced."""
    sock_path = str(tmp_path / "ctl.sock")
    with run_devserve(
        "--control", sock_path, "--app-dir", APPS, "--redact-names", "trace", "tamper_app:app"
    ) as proc:
        client = ControlClient(sock_path, timeout=10)
        headers = {"X-Trace-Id": "t-123", "Authorization": "Bearer visible"}
        httpx.get(f"{proc.url}/seen?trace=q-456&page=2", headers=headers, timeout=5)
        record = next(
            r
            for message in client.subscribe()
            if message["type"] == "requests"
            for r in message["requests"]
            if r["path"] == "/seen"
        )
        proc.out.stop()
    shown = dict(record["headers"])
    assert shown["x-trace-id"] == REDACTED and shown["authorization"] == "Bearer visible"
    assert record["query"] == f"trace={REDACTED}&page=2"


# --------------------------------------------------------------------------- the log
def test_warnings_of_one_kind_are_rate_limited_and_counted() -> None:
    """Ten warnings of a kind a second pass, the rest are counted and the next one that passes
    says how many; other kinds and errors are not held back."""
    limit = RateLimit(burst=10, period=60.0)

    def record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("devserve.server", level, __file__, 1, msg, ("x",), None)

    passed = [limit.filter(record("%s bad")) for _ in range(100)]
    assert passed.count(True) == 10
    assert limit.filter(record("%s other")) and limit.filter(record("%s bad", logging.ERROR))
    limit.period = 0.0  # the window is over: the next one passes and counts the rest
    late = record("%s bad")
    assert limit.filter(late) and late.getMessage() == "x bad (90 more like this not logged)"


def test_a_flood_of_bad_requests_does_not_flood_the_log(tmp_path: Path) -> None:
    """300 requests with too many headers as fast as they come: all get 431, the worker logs at
    most a burst of them, and later says how many it held back."""
    bad = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 200 + b"\r\n"
    with run_devserve("--app-dir", APPS, "--no-access-log", "tamper_app:app") as proc:
        port = int(proc.url.rsplit(":", 1)[1])
        answers = []
        for _ in range(300):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(bad)
                answers.append(sock.recv(64)[:12])

        def probed_until_summarised() -> bool:
            """One more bad request: the worker says what it held back at its next log line
            after its 1 s window."""
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(bad)
                sock.recv(64)
            return "more like this not logged" in proc.out.text

        until(
            probed_until_summarised,
            "the count of the lines not logged",
            detail=lambda: proc.out.text[-2000:],
            interval=0.2,  # pacing the probes: the window is 1 s
        )
        proc.out.stop()
    assert set(answers) == {b"HTTP/1.1 431"}
    assert proc.out.count("431 Request Header Fields Too Large") < 300 // 3


# --------------------------------------------------------------------------- the control socket
def test_a_control_socket_in_a_directory_others_may_write_is_warned_about(tmp_path: Path) -> None:
    """A control socket whose directory other users may write (no sticky bit) starts with a
    warning naming the directory."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with run_devserve(
        "--control", str(shared / "ctl.sock"), "--app-dir", APPS, "tamper_app:app"
    ) as proc:
        line = proc.out.wait_for("could take or replace the socket")
        proc.out.stop()
    assert str(shared) in line


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _python_for_nobody() -> str:
    """An interpreter uid 65534 can start: this one, or the system's (pyenv's Pythons live
    under /root, which that user cannot enter)."""
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            subprocess.run([*NOBODY, python, "-c", "pass"], check=True, timeout=10)
        except (OSError, subprocess.CalledProcessError):
            continue
        return python
    pytest.skip("no Python that uid 65534 can run")


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")
def test_a_control_socket_path_taken_by_another_user_is_named_as_such() -> None:
    """When another user already listens on the control socket's path (a shared /tmp-like
    directory), devserve refuses it in one line that says whose it is."""
    python = _python_for_nobody()
    shared = Path(tempfile.mkdtemp(prefix="devserve-shared-"))  # one /tmp-like directory
    shared.chmod(0o1777)
    path = shared / "ctl.sock"
    squatter = subprocess.Popen(
        [*NOBODY, python, "-c",
         "import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); "
         "s.listen(); print('listening', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert squatter.stdout is not None and squatter.stdout.readline() == "listening\n"
        result = subprocess.run(
            devserve_command("--control", str(path), "--app-dir", APPS, "tamper_app:app"),
            capture_output=True, text=True, timeout=30, env=clean_env(),
        )  # fmt: skip
    finally:
        squatter.kill()
        squatter.wait()
        shutil.rmtree(shared, ignore_errors=True)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "held by another user (uid 65534)" in lines[0], result.stderr


# --------------------------------------------------------------------------- log injection
def test_control_characters_a_path_decodes_to_are_escaped_in_logs_and_records(
    tmp_path: Path,
) -> None:
    """A path with %0d%0a and %1b (decoded by the server) cannot forge a log line or reach the
    terminal as an escape sequence: the 408 warning, a %(U)s access line and the request
    record all show them escaped."""
    sock_path = str(tmp_path / "ctl.sock")
    evil = "/upload%0d%0aERROR:%20forged%1b[8m"
    shown = "/upload\\x0d\\x0aERROR: forged\\x1b[8m"
    with run_devserve(
        "--control", sock_path, "--app-dir", APPS, "--timeout-request-body", "0.5",
        "--access-log-format", "path=%(U)s", "tamper_app:app",
    ) as proc:  # fmt: skip
        port = int(proc.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET {evil} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST {evil} HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nab".encode())
            assert sock.recv(1024).startswith(b"HTTP/1.1 408")  # the body stalled
        warning = proc.out.wait_for("408 for POST")
        record = next(
            r
            for message in ControlClient(sock_path, timeout=10).subscribe()
            if message["type"] == "requests"
            for r in message["requests"]
        )
        proc.out.wait_for("path=/upload")
        proc.out.stop()
    assert record["path"] == shown
    assert f"path={shown}" in proc.out.text
    assert shown in warning
    assert "\x1b" not in proc.out.text and "\nERROR: forged" not in proc.out.text


def test_the_printable_filter_escapes_arguments_not_the_format() -> None:
    """devserve.server's records keep their own newlines; what clients sent is escaped."""
    record = logging.LogRecord(
        "devserve.server", logging.WARNING, __file__, 1, "408 for %s\nnext", ("/a\n\x1b",), None
    )
    assert Printable().filter(record)
    assert record.getMessage() == "408 for /a\\x0a\\x1b\nnext"

"""HTTP/2 as clients nobody here wrote speak it: curl, nghttp, h2load, httpx and headless
Chromium, against devserve's cleartext port (prior knowledge) and its TLS port (ALPN).

The servers run the app below in-process (`run_server`) with the access log on, so each test
checks both ends: what the client says it spoke (curl's %{http_version}, nghttp's frames,
httpx's http_version), what the app saw in its scope, and the server's own access log line.
Certificates come from trustme; nghttp2-client (nghttp, h2load), curl and Chromium are the
system's (scripts/check installs them); a missing one skips the test, or fails under CI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils import (
    collected_records,
    require_module,
    require_tool,
    run_devserve,
    run_server,
    until,
)

UPLOAD = os.urandom(4 * 1024 * 1024 + 17)  # more than the connection's window many times over
PAYLOAD = b"the body before the trailers\n"


# ------------------------------------------------------------------------------ the app
async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return b"".join(chunks)


async def answer(send: Any, body: bytes, kind: bytes = b"application/json") -> None:
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def stream(send: Any, release: asyncio.Event) -> None:
    """One chunk, then the next only once another request released it."""
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-kind", b"stream")]}
    await send(start)
    await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
    await asyncio.wait_for(release.wait(), 10)
    await send({"type": "http.response.body", "body": b"second\n"})


async def with_trailers(send: Any) -> None:
    digest = hashlib.sha256(PAYLOAD).hexdigest().encode()
    headers = [(b"content-type", b"text/plain"), (b"trailer", b"x-checksum")]
    await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": True})
    await send({"type": "http.response.body", "body": PAYLOAD})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", digest)]})


# Events of the servers' loops, by key: each key is one test's, used on one server only.
RELEASES: dict[str, asyncio.Event] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/upload: the body's length and SHA-256; /stream/KEY: a body that waits for
    /release/KEY; /trailers: a body and its checksum as a trailer; anything else: what the
    scope says about the request. Every JSON answer names the version and client port."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path: str = scope["path"]
    seen = {
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "method": scope["method"],
        "path": path,
        "query": scope["query_string"].decode(),
        "client_port": scope["client"][1],
    }
    if path.startswith("/stream/"):
        return await stream(send, RELEASES.setdefault(path[8:], asyncio.Event()))
    if path.startswith("/release/"):
        RELEASES.setdefault(path[9:], asyncio.Event()).set()
    elif path == "/trailers":
        return await with_trailers(send)
    elif path == "/upload":
        body = await read_body(receive)
        seen.update(length=len(body), sha256=hashlib.sha256(body).hexdigest())
    await answer(send, json.dumps(seen).encode())


# ------------------------------------------------------------------------------ servers
@dataclasses.dataclass
class Certificates:
    ca: Any  # trustme.CA
    cafile: Path
    certfile: Path
    keyfile: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    trustme = require_module("trustme")
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    found = Certificates(ca, directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(found.cafile))
    cert.private_key_and_cert_chain_pem.write_to_path(str(found.certfile))
    cert.private_key_pem.write_to_path(str(found.keyfile))
    return found


@pytest.fixture(scope="module")
def cleartext() -> Iterator[str]:
    """The base URL of a server with --http auto on a plain TCP port."""
    with run_server(app, access_log=True) as running:
        yield running.url


@pytest.fixture(scope="module")
def tls(certificates: Certificates) -> Iterator[str]:
    """The base URL of a server with --http auto on a TLS port (ALPN offers h2, http/1.1)."""
    with run_server(
        app,
        access_log=True,
        ssl_certfile=str(certificates.certfile),
        ssl_keyfile=str(certificates.keyfile),
    ) as running:
        yield f"https://127.0.0.1:{running.port}"


class AccessLog:
    """The access log lines the servers write while a test runs."""

    def __init__(self, records: list[logging.LogRecord]) -> None:
        self.records = records

    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]

    def matching(self, pattern: str, count: int) -> list[str]:
        """The lines matching `pattern`, once there are `count` of them (a request is logged
        after its response has left, so the client may be told before the log is)."""
        return until(
            lambda: [line for line in self.lines() if re.search(pattern, line)],
            f"{count} access log lines matching {pattern!r}",
            accept=lambda lines: lines is not None and len(lines) >= count,
            detail=lambda: "\n".join(self.lines()),
        )


@pytest.fixture
def access() -> Iterator[AccessLog]:
    with collected_records("devserve.access") as records:
        yield AccessLog(records)


# ------------------------------------------------------------------------------ curl
def curl(*args: str) -> str:
    """curl's output (it must exit 0): the body, then what -w adds."""
    command = [require_tool("curl"), "-sS", "--max-time", "10", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("port", "flag", "version"),
    [
        ("tls", "--http2", "2"),
        ("tls", "--http1.1", "1.1"),
        ("cleartext", "--http2-prior-knowledge", "2"),
        ("cleartext", "--http1.1", "1.1"),
        ("cleartext", "--http2", "1.1"),  # asks to upgrade to h2c: declined (RFC 9113)
    ],
)
def test_curl_speaks_the_version_it_negotiates(
    request: pytest.FixtureRequest,
    certificates: Certificates,
    access: AccessLog,
    port: str,
    flag: str,
    version: str,
) -> None:
    """On one port, with --http auto, curl gets HTTP/2 by ALPN or prior knowledge and
    HTTP/1.1 when it asks for it; curl, the app and the access log agree on the version."""
    base: str = request.getfixturevalue(port)
    output = curl(flag, "--cacert", str(certificates.cafile), "-w", r"\n%{http_version}", base)
    body, _, spoken = output.rpartition("\n")
    seen = json.loads(body)
    assert (spoken, seen["http_version"]) == (version, version)
    assert seen["scheme"] == ("https" if port == "tls" else "http")
    access.matching(rf'"GET / HTTP/{re.escape(version)}" 200', 1)


def test_curl_uploads_over_http2(tmp_path: Path, certificates: Certificates, tls: str) -> None:
    """A 4 MiB upload over h2 (many windows' worth) reaches the app whole."""
    upload = tmp_path / "upload.bin"
    upload.write_bytes(UPLOAD)
    output = curl(
        "--http2", "--cacert", str(certificates.cafile), "--data-binary", f"@{upload}",
        "-w", r"\n%{http_version}", f"{tls}/upload",
    )  # fmt: skip
    body, _, spoken = output.rpartition("\n")
    seen = json.loads(body)
    assert (spoken, seen["http_version"], seen["method"]) == ("2", "2", "POST")
    assert (seen["length"], seen["sha256"]) == (len(UPLOAD), hashlib.sha256(UPLOAD).hexdigest())


def test_curl_receives_trailers(tmp_path: Path, certificates: Certificates, tls: str) -> None:
    """The app's http.response.trailers arrive after the body: curl writes them to its
    header dump after the head."""
    dump = tmp_path / "headers.txt"
    body = curl("--http2", "--cacert", str(certificates.cafile), "-D", str(dump), f"{tls}/trailers")
    assert body == PAYLOAD.decode()
    head, _, trailers = dump.read_bytes().decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/2 200")
    assert trailers.strip() == f"x-checksum: {hashlib.sha256(PAYLOAD).hexdigest()}"


# ------------------------------------------------------------------------------ nghttp, h2load
def nghttp(*args: str) -> str:
    command = [require_tool("nghttp"), "--timeout=10", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_nghttp_sees_the_settings_and_the_trailers(cleartext: str) -> None:
    """With prior knowledge, the server's SETTINGS are what its flags say, its WINDOW_UPDATE
    raises the connection window to --h2-connection-window, and the trailers end the stream."""
    frames = nghttp("-v", f"{cleartext}/trailers")
    received = re.search(r"recv SETTINGS frame <[^>]*>\n\s+\(niv=\d+\)\n((?:\s+\[.*\]\n)+)", frames)
    assert received is not None, frames
    settings = dict(re.findall(r"\[SETTINGS_(\w+)\(0x\w+\):(\d+)\]", received.group(1)))
    assert settings == {
        "HEADER_TABLE_SIZE": "4096",
        "ENABLE_PUSH": "0",
        "MAX_CONCURRENT_STREAMS": "100",
        "INITIAL_WINDOW_SIZE": "65535",
        "MAX_FRAME_SIZE": "16384",
        "MAX_HEADER_LIST_SIZE": "65536",
        "ENABLE_CONNECT_PROTOCOL": "1",
    }
    assert re.search(
        r"recv WINDOW_UPDATE frame <[^>]*stream_id=0>\n\s+\(window_size_increment=196609\)", frames
    ), frames  # 262144 - 65535
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    trailer = re.search(
        rf"recv \(stream_id=(\d+)\) x-checksum: {digest}\n.*recv HEADERS frame <[^>]*flags=0x05",
        frames,
    )
    assert trailer is not None, frames  # END_STREAM | END_HEADERS: the trailers end it


def test_nghttp_negotiates_h2_by_alpn(tls: str, access: AccessLog) -> None:
    """Over TLS nghttp negotiates h2 and gets its answer (nghttp checks no certificates)."""
    frames = nghttp("-v", f"{tls}/?from=nghttp")
    assert "The negotiated protocol: h2" in frames
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", frames), frames
    access.matching(r'"GET /\?from=nghttp HTTP/2" 200', 1)


@pytest.mark.parametrize("port", ["cleartext", "tls"])
def test_h2load_requests_all_succeed(
    request: pytest.FixtureRequest, access: AccessLog, port: str
) -> None:
    """2000 requests on 4 connections, 10 streams at a time each: every one a 2xx, none
    failed, and the server logged each as HTTP/2."""
    base: str = request.getfixturevalue(port)
    command = [require_tool("h2load"), "-n", "2000", "-c", "4", "-m", "10", f"{base}/?load"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = re.search(r"requests: (\d+) total, .*", done.stdout)
    assert summary is not None, done.stdout
    assert summary.group(0) == (
        "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, "
        "0 timeout"
    )
    assert "status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx" in done.stdout
    if port == "tls":
        assert "Application protocol: h2" in done.stdout
    assert len(access.matching(r'"GET /\?load HTTP/2" 200', 2000)) == 2000


# ------------------------------------------------------------------------------ httpx
def test_httpx_get_by_alpn(certificates: Certificates, tls: str, access: AccessLog) -> None:
    """httpx with http2=True negotiates h2 by ALPN; the app's scope says "2" and https."""
    with httpx.Client(http2=True, verify=certificates.client_context(), timeout=5) as client:
        response = client.get(f"{tls}/hello?name=h2")
    assert (response.status_code, response.http_version) == (200, "HTTP/2")
    seen = response.json()
    assert (seen["http_version"], seen["scheme"], seen["query"]) == ("2", "https", "name=h2")
    assert response.headers["server"] == "devserve"
    access.matching(r'"GET /hello\?name=h2 HTTP/2" 200', 1)


@pytest.mark.parametrize("port", ["cleartext", "tls"])
def test_httpx_upload_arrives_whole(
    request: pytest.FixtureRequest, certificates: Certificates, port: str
) -> None:
    """A 4 MiB POST body (by ALPN, or by prior knowledge in cleartext) arrives whole: the app
    echoes its length and SHA-256."""
    base: str = request.getfixturevalue(port)
    verify = certificates.client_context()
    with httpx.Client(http1=False, http2=True, verify=verify, timeout=10) as client:
        response = client.post(f"{base}/upload", content=UPLOAD)
    assert (response.status_code, response.http_version) == (200, "HTTP/2")
    seen = response.json()
    assert (seen["http_version"], seen["method"]) == ("2", "POST")
    assert (seen["length"], seen["sha256"]) == (len(UPLOAD), hashlib.sha256(UPLOAD).hexdigest())


def test_httpx_streamed_response_arrives_while_the_app_runs(
    certificates: Certificates, tls: str
) -> None:
    """The first chunk of a streamed body reaches the client while the app waits; a second
    request on the same connection releases it, and the rest follows."""

    async def main() -> tuple[list[bytes], httpx.Response, httpx.Response]:
        verify = certificates.client_context()
        async with httpx.AsyncClient(http2=True, verify=verify, timeout=5) as client:
            async with client.stream("GET", f"{tls}/stream/one") as streamed:
                chunks = streamed.aiter_raw()
                first = await anext(chunks)
                released = await client.get(f"{tls}/release/one")
                rest = [chunk async for chunk in chunks]
            return [first, *rest], streamed, released

    chunks, streamed, released = asyncio.run(main())
    assert chunks == [b"first\n", b"second\n"]
    assert (streamed.http_version, released.http_version) == ("HTTP/2", "HTTP/2")
    assert streamed.headers["x-kind"] == "stream"
    assert "content-length" not in streamed.headers
    assert "transfer-encoding" not in streamed.headers  # no chunked framing over h2


def test_httpx_fifty_concurrent_requests_share_one_connection(
    certificates: Certificates, tls: str, access: AccessLog
) -> None:
    """50 requests at once on one client: each gets its own answer, all on one connection
    (one client port), each an HTTP/2 request to the app and in the access log."""

    async def main() -> list[httpx.Response]:
        verify = certificates.client_context()
        async with httpx.AsyncClient(http2=True, verify=verify, timeout=10) as client:
            return await asyncio.gather(*(client.get(f"{tls}/many?n={n}") for n in range(50)))

    responses = asyncio.run(main())
    assert [(r.status_code, r.http_version) for r in responses] == [(200, "HTTP/2")] * 50
    seen = [response.json() for response in responses]
    assert [s["query"] for s in seen] == [f"n={n}" for n in range(50)]
    assert {s["http_version"] for s in seen} == {"2"}
    assert len({s["client_port"] for s in seen}) == 1, "one connection carried them all"
    assert len(access.matching(r'"GET /many\?n=\d+ HTTP/2" 200', 50)) == 50


# ------------------------------------------------------------------------------ Chromium
def test_chromium_loads_the_demo_page_over_h2(browser: Any, certificates: Certificates) -> None:
    """devserve without an app serves its demo page; headless Chromium fetches it by ALPN h2
    (Navigation Timing's nextHopProtocol) and the page shows its own scope's version, "2"."""
    with run_devserve(
        "--ssl-certfile", str(certificates.certfile), "--ssl-keyfile", str(certificates.keyfile)
    ) as server:
        context = browser.new_context(ignore_https_errors=True)
        try:
            page = context.new_page()
            response = page.goto(server.url + "/")
            assert response is not None and response.status == 200
            protocol = page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol"
            )
            version = page.locator("tr", has=page.locator("th", has_text="http_version"))
            shown = version.locator("td code").first.inner_text()
        finally:
            context.close()
    assert server.url.startswith("https://")
    assert (protocol, shown) == ("h2", '"2"')


# ------------------------------------------------------------------------------ found here
def test_http2_connections_do_not_wait_for_nagle() -> None:
    """An HTTP/2 server writes SETTINGS, their ACK and the response in separate small writes;
    without TCP_NODELAY the kernel holds the response until the client ACKs (40 ms later on
    Linux). Under uvloop (--loop auto) the option is set; under asyncio it must be too."""
    with run_server(app) as running, socket.create_connection((running.host, running.port)) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        assert s.recv(65536)  # the server's SETTINGS: the connection is HTTP/2 now

        def nodelay() -> list[int]:
            return [
                conn.transport.get_extra_info("socket").getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY
                )
                for conn in running.server.state.connections
            ]

        assert running.call(nodelay) == [1]

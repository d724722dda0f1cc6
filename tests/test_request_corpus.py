"""A data-driven corpus of raw requests (tests/requests/): what the app sees, or how it is refused.

`valid/NAME.http` holds the exact request bytes (CRLF line endings, stored as-is) and
`valid/NAME.json` the parts of the ASGI scope/body the app must see (method, path, raw_path,
query_string, headers, body, http_version; bytes as latin-1 text; an "xfail" key names a known
server bug). `invalid/NAME.http` is answered
with the statuses in `invalid/NAME.json` ("statuses", in order), then the connection is closed and
nothing hidden in the bytes is ever run; an "xfail" key names a known server bug.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import wire_apps
from tests.utils import Running, run_server
from tests.wire_apps import parse_responses, read_responses, read_until_closed

CORPUS = Path(__file__).parent / "requests"
LIMIT_REQUEST_LINE = 256
MAX_HEADER_SIZE = 1024


def cases(kind: str) -> list[Any]:
    params = []
    for request in sorted((CORPUS / kind).glob("*.http")):
        expected = json.loads(request.with_suffix(".json").read_text(encoding="utf-8"))
        marks = []
        if "xfail" in expected:
            marks.append(pytest.mark.xfail(strict=True, reason=expected["xfail"]))
        params.append(pytest.param(request.read_bytes(), expected, id=request.stem, marks=marks))
    return params


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with run_server(
        wire_apps.record, limit_request_line=LIMIT_REQUEST_LINE, max_header_size=MAX_HEADER_SIZE
    ) as running:
        yield running


def test_corpus_is_large_enough() -> None:
    """The corpus keeps at least 15 valid and 20 invalid requests, each with its expectation."""
    assert len(cases("valid")) >= 15
    assert len(cases("invalid")) >= 20
    for path in (CORPUS / "valid").glob("*.http"):
        assert b"\r\n\r\n" in path.read_bytes(), f"{path.name} lost its CRLF line endings"


@pytest.mark.parametrize(("request_bytes", "expected"), cases("valid"))
def test_valid_request(server: Running, request_bytes: bytes, expected: dict[str, Any]) -> None:
    """A valid request reaches the app with exactly the scope fields and body in its .json."""
    with server.connect() as sock:
        sock.sendall(request_bytes)
        [response] = read_responses(sock, 1)[:1]
    assert response.status == 200, response
    seen = json.loads(response.body)
    for key, value in expected.items():
        if key == "xfail":
            continue
        assert seen[key] == value, f"{key}: app saw {seen[key]!r}, expected {value!r}"


@pytest.mark.parametrize(("request_bytes", "expected"), cases("invalid"))
def test_invalid_request(server: Running, request_bytes: bytes, expected: dict[str, Any]) -> None:
    """An invalid request gets the listed statuses, then a closed connection; nothing smuggled."""
    with server.connect() as sock:
        sock.sendall(request_bytes)
        raw, closed = read_until_closed(sock, timeout=1.0)
    responses = parse_responses(raw)
    assert [r.status for r in responses] == expected["statuses"], raw
    assert responses[-1].header("connection") == "close"
    assert closed
    assert b"/smuggled" not in raw  # the record app echoes paths: a hidden request never ran
    # and the server goes on serving new connections
    with server.connect() as sock:
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
        raw, closed = read_until_closed(sock)
    [response] = parse_responses(raw)
    assert response.status == 200 and closed

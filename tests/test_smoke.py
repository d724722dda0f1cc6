"""End-to-end basics: a real server, real sockets."""

from __future__ import annotations

import httpx

from tests import apps
from tests.utils import run_devserve, run_server


def test_hello_over_a_real_socket() -> None:
    """A GET to a running server returns the app's body with framing and server headers."""
    with run_server(apps.hello) as server:
        response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["content-length"] == "13"
    assert response.headers["server"] == "devserve"
    assert "date" in response.headers


def test_cli_serves_the_demo_app() -> None:
    """`devserve` with no APP serves the demo page that explains the request's scope."""
    with run_devserve() as proc:
        response = httpx.get(proc.url + "/?x=1")
    assert response.status_code == 200
    assert "query_string" in response.text and "x=1" in response.text

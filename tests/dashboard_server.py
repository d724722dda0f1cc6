"""A real devserve with its web dashboard on a free port, and a client for it: the token read
from the line devserve prints (and, whole, from `ctl status`), HTTP through httpx with the
session's cookie and key set by hand, the WebSocket through websockets' own client; and a
browser page for it that fails the test on any script error."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx
from websockets.sync.client import ClientConnection, connect

from devserver.control.access import redacted
from devserver.control.client import ControlClient
from tests.utils import Process, clean_env, devserve_command, spawned

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

APPS = str(Path(__file__).parent / "cli_apps")
DASHBOARD = re.compile(r"dashboard(?: \(read-only\))?: (https?://[^/\s]+)/(?:\?token=([^\s\"]+))?")


def session_headers(traded: httpx.Response) -> dict[str, str]:
    """What a browser sends after trading the token (the 303 `traded`): the session's cookie,
    and the page's key from the fragment of the redirect."""
    assert traded.status_code == 303, traded
    cookie = traded.headers["set-cookie"].split(";")[0]
    key = traded.headers["location"].partition("#key=")[2]
    assert key, traded.headers["location"]
    return {"cookie": cookie, "x-devserve-key": key}


class Dashboard:
    def __init__(self, process: Process, base: str, token: str) -> None:
        self.process, self.base, self.token = process, base, token
        self.port = int(base.rsplit(":", 1)[1])
        self._session: dict[str, str] | None = None

    @property
    def cookie(self) -> dict[str, str]:
        """A browser's credentials: the session cookie and the page key (one session)."""
        if self._session is None:
            self._session = session_headers(self.get(f"/?token={self.token}"))
        return self._session

    @property
    def bearer(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    @property
    def url(self) -> str:
        """The URL devserve prints: the one a user opens."""
        return f"{self.base}/?token={self.token}"

    def status(self) -> dict[str, Any]:
        return self.get("/_devserve/api/status", **self.bearer).json()  # type: ignore[no-any-return]

    def app_url(self) -> str:
        match = re.search(r"serving on (https?://\S+)", self.process.out.text)
        assert match is not None
        return match.group(1)

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(self.base + path, headers=headers, timeout=5)

    def command(self, message: dict[str, Any], **headers: str) -> httpx.Response:
        return httpx.post(
            self.base + "/_devserve/api/command", json=message, headers=headers, timeout=5
        )

    def websocket(self, origin: str | None = None, **headers: str) -> ClientConnection:
        ws_url = self.base.replace("http://", "ws://") + "/_devserve/ws"
        return connect(
            ws_url, origin=origin or self.base, additional_headers=headers, open_timeout=5
        )  # type: ignore[arg-type]


@contextlib.contextmanager
def dashboard(tmp_path: Path, *args: str) -> Iterator[Dashboard]:
    """devserve with its dashboard on a free port, serving; stopped at the end. The token is
    the one printed, else the one given with --dashboard-token."""
    command = devserve_command(
        "--no-tui", "--port", "0", "--dashboard", "127.0.0.1:0",
        "--control", str(tmp_path / "ctl.sock"), "--app-dir", APPS, *args, "supervised_app:app",
    )  # fmt: skip
    with spawned(command, clean_env()) as process:
        match = DASHBOARD.search(process.out.wait_for(DASHBOARD.pattern, timeout=20))
        assert match is not None
        process.out.wait_for("serving on", timeout=20)
        yield Dashboard(process, match.group(1), full_token(tmp_path / "ctl.sock", match))


def free_address() -> str:
    """A local address no one listens on now: for a devserve stopped and started again where a
    page still waits for it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def full_token(control: Path, printed: re.Match[str]) -> str:
    """The token, from `ctl status` (the control socket's owner sees the whole URL); the log
    line shows at most its first four characters."""
    url = ControlClient(str(control)).request("status")["server"]["dashboard"]
    token = unquote(url.partition("?token=")[2])
    if printed.group(2) is not None:
        assert printed.group(2) == redacted(token)
    return token


def receive_until(ws: ClientConnection, kind: str, seen: list[Any] | None = None) -> dict[str, Any]:
    """The next message of type `kind` (the stream's snapshots and events come between; they
    go to `seen`), within 10 s."""
    deadline = time.monotonic() + 10
    while True:
        message = json.loads(ws.recv(timeout=max(0.0, deadline - time.monotonic())))
        if message["type"] == kind:
            return message  # type: ignore[no-any-return]
        if seen is not None:
            seen.append(message)


# once a test stops devserve, the browser itself logs the refused reconnects: not the page's
BROWSERS_OWN_ERRORS = (
    "WebSocket connection",
    "ERR_CONNECTION_REFUSED",
    "the server responded with a status of 401",  # the session check before /login
)


@contextlib.contextmanager
def browser_page(browser: Browser, width: int = 1366, height: int = 768) -> Iterator[Page]:
    """A fresh page (its own cookies) of the given size that fails the test on any script
    error it logs."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    errors = [e for e in errors if not any(line in e for line in BROWSERS_OWN_ERRORS)]
    assert errors == []

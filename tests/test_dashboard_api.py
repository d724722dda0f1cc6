"""The web dashboard's server side (control/web.py, control/access.py) over real sockets.

A real devserve serves the dashboard on a free port (tests/dashboard_server.py); the test reads
the URL, with its token, from the line devserve prints. HTTP goes through httpx with the
session's cookie and key set by hand (so each test says exactly what it sends), the WebSocket
through websockets' own client.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from devserver.control.access import redacted
from tests.dashboard_server import APPS, DASHBOARD, dashboard, receive_until, session_headers
from tests.utils import clean_env, devserve_command, raw_exchange, require_module, spawned, until


def test_the_token_in_the_url_becomes_an_httponly_strict_cookie(tmp_path: Path) -> None:
    """/?token=T answers 303 to / with a session: an HttpOnly cookie, and the page key in the
    fragment; neither is the token, and the two open the API."""
    with dashboard(tmp_path) as board:
        traded = board.get(f"/?token={board.token}")
        page = board.get("/", **board.cookie)
        session = board.get("/_devserve/api/session", **session_headers(traded))
        board.process.out.stop()
    assert traded.status_code == 303
    assert re.fullmatch(r"/#key=[\w-]{40,}", traded.headers["location"])
    cookie = traded.headers["set-cookie"]
    assert re.match(rf"devserve-dashboard-{board.port}=\d+\.[\w-]{{30,}};", cookie), cookie
    assert board.token not in cookie and board.token not in traded.headers["location"]
    assert session.status_code == 200
    # Path: browsers send a cookie to every port of its host; the app's paths never get it
    parts = {p.strip() for p in cookie.split(";")}
    assert {"HttpOnly", "SameSite=Strict", "Path=/_devserve"} <= parts
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'src="/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def test_without_the_token_there_is_the_login_page_and_no_data(tmp_path: Path) -> None:
    """The page itself holds no data (it asks the API, which says 401, and then goes to
    /login); a wrong token in the URL gets the login page at once, with 401 and no cookie."""
    with dashboard(tmp_path) as board:
        page = board.get("/")
        wrong = board.get("/?token=wrong")
        login = board.get("/login")
        board.process.out.stop()
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    assert str(board.process.proc.pid) not in page.text
    for answer in (wrong, login):
        assert 'id="login"' in answer.text
        assert "set-cookie" not in answer.headers
    assert (wrong.status_code, login.status_code) == (401, 200)


def test_every_api_call_needs_the_token(tmp_path: Path) -> None:
    """401 without it; the cookie or a bearer token opens /_devserve/api/session, status and
    command; a cookie for another port's dashboard does not."""
    with dashboard(tmp_path) as board:
        bare = [
            board.get("/_devserve/api/session"),
            board.get("/_devserve/api/status"),
            board.command({"command": "status"}),
        ]
        other_port = board.get(
            "/_devserve/api/session",
            **{**board.cookie, "cookie": board.cookie["cookie"].replace(str(board.port), "1")},
        )
        session = board.get("/_devserve/api/session", **board.cookie)
        status = board.get("/_devserve/api/status", authorization=f"Bearer {board.token}")
        reply = board.command({"id": 7, "command": "status"}, **board.cookie)
        board.process.out.stop()
    assert [r.status_code for r in bare] == [401, 401, 401]
    assert bare[0].json() == {"error": "this needs the dashboard's token"}
    assert other_port.status_code == 401
    assert (session.status_code, session.json()) == (200, {"read_only": False})
    assert status.status_code == 200
    # a page sees no token: a session must not be a way to get it
    assert status.json()["server"]["dashboard"] == f"{board.base}/?token={board.token[:4]}…"
    assert reply.status_code == 200
    assert (reply.json()["id"], reply.json()["ok"]) == (7, True)


def test_a_command_carries_out_and_a_foreign_origin_is_refused(tmp_path: Path) -> None:
    """scale +1 from the page's own origin changes the target; from another site: 403, and
    the target stays; a malformed body is a 400 naming the problem."""
    with dashboard(tmp_path) as board:
        foreign = board.command(
            {"id": 1, "command": "scale", "workers": "+1"},
            origin="http://evil.test",
            **board.cookie,
        )
        after_foreign = board.get("/_devserve/api/status", **board.cookie).json()["server"]
        scaled = board.command(
            {"id": 2, "command": "scale", "workers": "+1"}, origin=board.base, **board.cookie
        )
        garbled = httpx.post(
            board.base + "/_devserve/api/command", content=b"{nope", headers=board.cookie, timeout=5
        )
        board.process.out.stop()
    assert foreign.status_code == 403
    assert foreign.json() == {"error": "a command from another site's page"}
    assert after_foreign["workers_target"] == 1
    assert scaled.status_code == 200
    assert scaled.json()["result"] == {"target": 2}
    assert garbled.status_code == 400
    assert garbled.json()["error"].startswith("not JSON")


def test_the_websocket_says_hello_streams_and_answers_commands(tmp_path: Path) -> None:
    with dashboard(tmp_path) as board:
        with board.websocket(**board.cookie) as ws:
            hello = json.loads(ws.recv(timeout=10))
            snapshot = receive_until(ws, "snapshot")
            ws.send(json.dumps({"id": 5, "command": "scale", "workers": "+1"}))
            meanwhile: list[Any] = []  # the scale's events may come before its reply
            result = receive_until(ws, "result", meanwhile)
            ws.send("not json")
            error = receive_until(ws, "error", meanwhile)
            while not any(m.get("event", {}).get("kind") == "scale" for m in meanwhile):
                meanwhile.append(receive_until(ws, "event"))
            events = [m["event"] for m in meanwhile if m["type"] == "event"]
        board.process.out.stop()
    assert hello == {"version": 1, "type": "hello", "read_only": False}
    assert "history" in snapshot["snapshot"]
    assert [w["state"] for w in snapshot["snapshot"]["workers"]] == ["ready"]
    assert result["id"] == 5 and result["result"] == {"target": 2}
    assert error["error"].startswith("not JSON")
    assert {"kind": "scale", "target": 2} in [
        {k: e.get(k) for k in ("kind", "target")} for e in events
    ]


@pytest.mark.parametrize(
    ("origin", "with_cookie", "status"),
    [("http://evil.test", True, 403), ("null", True, 403), (None, False, 401)],
)
def test_the_websocket_refuses_foreign_origins_and_missing_tokens(
    tmp_path: Path, origin: str | None, with_cookie: bool, status: int
) -> None:
    with dashboard(tmp_path) as board:
        headers = board.cookie if with_cookie else {}
        with pytest.raises(InvalidStatus) as refused:
            board.websocket(origin=origin, **headers)
        board.process.out.stop()
    assert refused.value.response.status_code == status


def test_read_only_shows_everything_and_refuses_every_action(tmp_path: Path) -> None:
    with dashboard(tmp_path, "--dashboard-read-only") as board:
        session = board.get("/_devserve/api/session", **board.cookie).json()
        status = board.command({"id": 1, "command": "status"}, **board.cookie)
        refused = [
            board.command({"id": 2, "command": command, **args}, **board.cookie)
            for command, args in (("scale", {"workers": "+1"}), ("restart", {}), ("stop", {}))
        ]
        with board.websocket(**board.cookie) as ws:
            hello = json.loads(ws.recv(timeout=10))
            ws.send(json.dumps({"id": 3, "command": "kill", "pid": 1}))
            error = receive_until(ws, "error")
        target = board.get("/_devserve/api/status", **board.cookie).json()["server"][
            "workers_target"
        ]
        output = board.process.out.stop()
    assert session == {"read_only": True}
    assert status.status_code == 200
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert "read-only" in refused[0].json()["error"]
    assert hello["read_only"] is True
    assert (error["id"], error["ok"]) == (3, False) and "read-only" in error["error"]
    assert target == 1
    assert "dashboard (read-only):" in output


def test_static_files_and_the_open_endpoints(tmp_path: Path) -> None:
    """The page's files need no token (they hold no data) but nothing outside their folder is
    served; /livez, /readyz and /metrics answer on the dashboard's address too."""
    with dashboard(tmp_path) as board:
        css = board.get("/static/app.css")
        script = board.get("/static/app.js")
        missing = [
            board.get(path).status_code
            for path in ("/static/nope.js", "/static/../pyproject.toml", "/static/%2e%2e/cli.py")
        ]
        head = httpx.head(board.base + "/static/app.css", timeout=5)
        posted = httpx.post(board.base + "/static/app.css", timeout=5)
        ready = board.get("/readyz")
        metrics = board.get("/metrics")
        board.process.out.stop()
    assert (css.status_code, css.headers["content-type"]) == (200, "text/css; charset=utf-8")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert missing == [404, 404, 404]
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(css.content))
    assert posted.status_code == 405
    assert (ready.json()["ready"], ready.json()["workers_ready"]) == (True, 1)
    assert "devserve_requests_total" in metrics.text


def test_the_page_references_only_its_own_files() -> None:
    """No CDN, no build step: every script, stylesheet and import is a file under /static/."""
    static = Path(__file__).parent.parent / "dashboard" / "web" / "static"
    sources = [p for p in static.iterdir() if p.suffix in (".html", ".js", ".css")]
    assert {"index.html", "login.html", "app.js", "app.css"} <= {p.name for p in sources}
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", text), source.name
        for ref in re.findall(r'(?:src|href)="([^"#?]+)"', text):
            if ref.startswith("data:") or ref == "/":
                continue  # inline, or the page itself
            assert ref.startswith("/static/") and (static / ref[8:]).is_file(), ref
        for ref in re.findall(r"""from\s+["'](\S+)["']""", text):
            assert (static / ref.removeprefix("./").removeprefix("/static/")).is_file(), ref


# ----------------------------------------------------------------------------- the CLI's side
def _free_port_pair() -> tuple[int, socket.socket]:
    """A free port P, with P + 1 held by the returned socket (so the dashboard cannot take it)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        holder = socket.socket()
        try:
            holder.bind(("127.0.0.1", port + 1))
        except OSError:
            holder.close()
            continue
        holder.listen()
        return port, holder
    raise AssertionError("no free pair of ports")


def test_by_default_it_goes_next_to_the_app_and_moves_when_that_port_is_taken(
    tmp_path: Path,
) -> None:
    """Dev mode without --dashboard: on the app's port + 1; when a process holds that port,
    devserve says so and takes a free one rather than failing."""
    port, holder = _free_port_pair()
    env = clean_env(XDG_RUNTIME_DIR=str(tmp_path))
    command = devserve_command(
        "--no-tui", "--port", str(port), "--control", "off", "--app-dir", APPS,
        "supervised_app:app",
    )  # fmt: skip
    with holder, spawned(command, env) as process:
        match = DASHBOARD.search(process.out.wait_for(DASHBOARD.pattern, timeout=20))
        assert match is not None
        output = process.out.stop()
    assert f"cannot listen on 127.0.0.1:{port + 1}" in output
    assert "the dashboard takes a free port instead" in output
    # no terminal, no control socket, a token not kept: the auto dashboard cannot be opened
    assert "devserve: the dashboard is locked: its token would be shown nowhere" in output
    assert not match.group(1).endswith(f":{port + 1}")

    holder.close()  # now free: the default address takes it, and keeps its token in a file
    with spawned(command, env) as process:
        first = DASHBOARD.search(process.out.wait_for(DASHBOARD.pattern, timeout=20))
        process.out.stop()
    with spawned(command, env) as process:
        second = DASHBOARD.search(process.out.wait_for(DASHBOARD.pattern, timeout=20))
        process.out.stop()
    assert first is not None and second is not None
    assert first.group(1) == f"http://127.0.0.1:{port + 1}"
    kept = tmp_path / "devserve" / f"dashboard-127.0.0.1-{port + 1}.token"
    # a reopened devserve keeps the page's token (the log shows its first characters only)
    assert first.group(2) == second.group(2) == redacted(kept.read_text().strip())
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_prod_has_no_dashboard_unless_asked(tmp_path: Path) -> None:
    base = ("--prod", "--workers", "1", "--port", "0", "--control", "off", "--app-dir", APPS)
    with spawned(devserve_command(*base, "supervised_app:app"), clean_env()) as process:
        quiet = process.out.wait_for("serving on", timeout=20)
        output = process.out.stop()
    control = ("--control", str(tmp_path / "ctl.sock"))  # where its token is shown
    asked = devserve_command(*base, "supervised_app:app", "--dashboard", *control)
    with spawned(asked, clean_env()) as process:
        shown = process.out.wait_for("dashboard", timeout=20)
        process.out.stop()
    assert quiet and "dashboard" not in output
    assert re.search(
        r"dashboard: http://127\.0\.0\.1:\d+/ \(its token: devserve ctl status\)", shown
    )


def test_a_given_token_is_not_printed_and_is_the_one_required(tmp_path: Path) -> None:
    with dashboard(tmp_path, "--dashboard-token", "s3cret-token-for-tests") as board:
        output = board.process.out.text
        session = httpx.get(
            board.base + "/_devserve/api/session",
            headers={"authorization": "Bearer s3cret-token-for-tests"},
        )
        board.process.out.stop()
    assert "s3cret" not in output and "token=" not in output
    assert session.status_code == 200


def test_no_token_is_refused_beyond_loopback_and_allowed_on_it(tmp_path: Path) -> None:
    refused = subprocess.run(
        devserve_command(
            "--no-tui",
            "--port",
            "0",
            "--control",
            "off",
            "--dashboard",
            "0.0.0.0:0",
            "--dashboard-token",
            "",
        ),
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "devserve: error: --dashboard 0.0.0.0:0 is reachable from other machines: it needs a "
        "token of 16 characters or more (leave --dashboard-token out for a random one, or "
        "bind 127.0.0.1)"
    ]
    with dashboard(tmp_path, "--dashboard-token", "") as board:
        session = board.get("/_devserve/api/session")
        board.process.out.stop()
    assert session.status_code == 200


def test_the_dashboard_can_share_the_admin_address(tmp_path: Path) -> None:
    """--admin and --dashboard on one address: one listener answers both kinds of path."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    with dashboard(tmp_path, "--admin", address, "--dashboard", address) as board:
        livez = board.get("/livez")
        session = board.get("/_devserve/api/session", **board.cookie)
        board.process.out.stop()
    assert board.base == f"http://{address}"
    assert livez.status_code == 200 and session.status_code == 200


def test_the_token_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kept token that others could read is not trusted: a new one replaces it, 0600."""
    from devserver.control.access import resolve_token

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    first = resolve_token(None, "127.0.0.1", 18123)
    kept = tmp_path / "devserve" / "dashboard-127.0.0.1-18123.token"
    assert resolve_token(None, "127.0.0.1", 18123) == first
    kept.chmod(0o644)
    replaced = resolve_token(None, "127.0.0.1", 18123)
    assert replaced != first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700


def test_stopping_devserve_closes_an_open_page_with_1012(tmp_path: Path) -> None:
    """An open page learns that devserve is going (close 1012: restarting, so it reconnects)
    and devserve stops cleanly, without a traceback for the cut stream."""
    with dashboard(tmp_path) as board, board.websocket(**board.cookie) as ws:
        receive_until(ws, "snapshot")
        board.process.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert board.process.proc.wait(timeout=10) == 0
        until(lambda: board.process.out.eof, "the end of devserve's output")  # every line read
        output = board.process.out.text
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert "Traceback" not in output and "Exception" not in output
    assert output.rstrip().endswith("stopped")  # nothing after: the page's close is no news


def test_with_the_apps_certificate_the_dashboard_speaks_tls(tmp_path: Path) -> None:
    """--ssl-certfile: the dashboard is https too (its token never crosses a network bare),
    its cookie is Secure, and the WebSocket is wss."""
    trustme = require_module("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    tls = ("--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile))
    with dashboard(tmp_path, *tls) as board:
        traded = httpx.get(f"{board.base}/?token={board.token}", verify=trusted, timeout=5)
        wss = board.base.replace("https://", "wss://") + "/_devserve/ws"
        session = session_headers(traded)
        with connect(wss, ssl=trusted, origin=board.base, additional_headers=session) as ws:  # type: ignore[arg-type]
            hello = json.loads(ws.recv(timeout=10))
        board.process.out.stop()
    assert board.base.startswith("https://127.0.0.1:")
    assert traded.status_code == 303
    assert "Secure" in {part.strip() for part in traded.headers["set-cookie"].split(";")}
    assert hello["type"] == "hello"


def test_a_rebound_host_name_is_refused(tmp_path: Path) -> None:
    """A page whose DNS name was rebound to 127.0.0.1 sends its own name as Host: a loopback
    dashboard refuses it, even with no token to guard it (--dashboard-token '')."""
    with dashboard(tmp_path, "--dashboard-token", "") as board:
        evil = {"host": f"evil.test:{board.port}", "origin": f"http://evil.test:{board.port}"}
        command = board.command({"id": 1, "command": "scale", "workers": "+1"}, **evil)
        status = board.get("/_devserve/api/status", **evil)
        page = board.get("/", **evil)
        handshake = (
            f"GET /_devserve/ws HTTP/1.1\r\nHost: {evil['host']}\r\nOrigin: {evil['origin']}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", board.port), timeout=5) as raw:
            ws_answer = raw_exchange(raw, handshake)
        by_name = board.get("/_devserve/api/session", host=f"localhost:{board.port}")
        target = board.get("/_devserve/api/status").json()["server"]["workers_target"]
        board.process.out.stop()
    assert [r.status_code for r in (command, status, page)] == [403, 403, 403]
    assert ws_answer.startswith(b"HTTP/1.1 403 ")
    assert by_name.status_code == 200  # localhost is a loopback name
    assert target == 1


def test_the_cookie_is_found_among_other_apps_cookies(tmp_path: Path) -> None:
    """Every app on the host shares the Cookie header; one with a value http.cookies rejects
    (JSON, spaces) must not hide the dashboard's."""
    with dashboard(tmp_path) as board:
        mine = board.cookie["cookie"]
        header = f'prefs={{"a": 1}}; theme=dark mode; {mine}; last="x'
        key = board.cookie["x-devserve-key"]
        session = board.get("/_devserve/api/session", cookie=header, **{"x-devserve-key": key})
        board.process.out.stop()
    assert session.status_code == 200


def test_the_cookie_alone_opens_nothing(tmp_path: Path) -> None:
    """Browsers send the cookie to every port of the host, so a page of any other server on it
    can have the browser send it there: with the cookie alone (or the key alone, or a key of
    another session) every API call and the WebSocket are refused."""
    with dashboard(tmp_path) as board:
        mine = board.cookie
        other = session_headers(board.get(f"/?token={board.token}"))
        partial = [
            {"cookie": mine["cookie"]},
            {"x-devserve-key": mine["x-devserve-key"]},
            {"cookie": mine["cookie"], "x-devserve-key": other["x-devserve-key"]},
        ]
        answers = [board.get("/_devserve/api/status", **headers) for headers in partial]
        commands = [board.command({"id": 1, "command": "status"}, **h) for h in partial]
        refused = []
        for headers in partial:
            with pytest.raises(InvalidStatus) as denied:
                board.websocket(**headers)
            refused.append(denied.value.response.status_code)
        both = board.get("/_devserve/api/status", **mine)
        board.process.out.stop()
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert [c.status_code for c in commands] == [401, 401, 401]
    assert refused == [401, 401, 401]
    assert both.status_code == 200


def test_the_page_sends_its_key_as_a_websocket_subprotocol(tmp_path: Path) -> None:
    """A browser cannot set headers on a WebSocket: the key comes as the subprotocol
    `devserve-key.KEY` beside `devserve`, which the server picks."""
    with dashboard(tmp_path) as board:
        cookie, key = board.cookie["cookie"], board.cookie["x-devserve-key"]
        ws_url = board.base.replace("http://", "ws://") + "/_devserve/ws"
        with connect(
            ws_url,
            origin=board.base,  # type: ignore[arg-type]
            additional_headers={"cookie": cookie},
            subprotocols=["devserve", f"devserve-key.{key}"],  # type: ignore[list-item]
            open_timeout=5,
        ) as ws:
            hello = json.loads(ws.recv(timeout=10))
            chosen = ws.subprotocol
        board.process.out.stop()
    assert hello["type"] == "hello"
    assert chosen == "devserve"


def test_the_apps_own_pages_cannot_command_the_dashboard(tmp_path: Path) -> None:
    """The app's pages are on the same host but another port: another origin, refused."""
    with dashboard(tmp_path) as board:
        app_origin = board.app_url()
        scale = {"id": 1, "command": "scale", "workers": "+1"}
        command = board.command(scale, origin=app_origin, **board.cookie)
        with pytest.raises(InvalidStatus) as refused:
            board.websocket(origin=app_origin, **board.cookie)
        board.process.out.stop()
    assert command.status_code == 403
    assert refused.value.response.status_code == 403


def test_in_prod_the_token_stays_out_of_the_logs(tmp_path: Path) -> None:
    """--prod logs go to collectors: the line names the URL and where to get the token, and
    `devserve ctl status` (the control socket's owner) shows it; no token file is kept."""
    control = tmp_path / "ctl.sock"
    env = clean_env(XDG_RUNTIME_DIR=str(tmp_path / "run"), XDG_CACHE_HOME=str(tmp_path / "c"))
    command = devserve_command(
        "--prod", "--workers", "1", "--port", "0", "--control", str(control),
        "--dashboard", "127.0.0.1:0", "--app-dir", APPS, "supervised_app:app",
    )  # fmt: skip
    with spawned(command, env) as process:
        line = process.out.wait_for("dashboard", timeout=20)
        status = subprocess.run(
            devserve_command("ctl", "--control", str(control), "status"),
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        output = process.out.stop()
    assert re.search(
        r"dashboard: http://127\.0\.0\.1:\d+/ \(its token: devserve ctl status\)", line
    )
    url = re.search(r"^dashboard (\S+)$", status.stdout, re.M)
    assert url is not None and "?token=" in url.group(1)
    assert url.group(1).split("=", 1)[1] not in output
    assert not (tmp_path / "run").exists() and not (tmp_path / "c").exists()

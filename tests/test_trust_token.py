"""The dashboard's token stays off the command line and out of every log, and its sessions end.

Real devserve processes; the token is read back the way its owner would (`ctl status`), since
no log line holds more than its first characters.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from devserver.control.access import Access, redacted
from devserver.control.client import ControlClient
from devserver.logging import Printable, redact_records
from tests.dashboard_server import (
    APPS,
    DASHBOARD,
    dashboard,
    full_token,
    receive_until,
    session_headers,
)
from tests.utils import clean_env, devserve_command, spawned

TOKEN = "from-a-file-0123456789abcdef"


def test_the_token_file_is_read_trimmed_and_never_shown(tmp_path: Path) -> None:
    """--dashboard-token-file: its token (surrounding whitespace dropped) is the one required,
    and it is neither in the process's argv (`ps`) nor in any line devserve writes."""
    secret = tmp_path / "token"
    secret.write_text(f"  {TOKEN}\n\n")
    with dashboard(tmp_path, "--dashboard-token-file", str(secret)) as board:
        session = board.get("/_devserve/api/session", authorization=f"Bearer {TOKEN}")
        argv = Path(f"/proc/{board.process.proc.pid}/cmdline").read_bytes()
        output = board.process.out.stop()
    assert board.token == TOKEN
    assert session.status_code == 200
    assert TOKEN.encode() not in argv
    assert TOKEN[4:] not in output and "token=" not in output


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty"),
        (b" \n\t\n", "the file is empty"),
        (b"\xff\xfe", "cannot read"),
        (b"t" * 5000, "longer than a token can be"),
    ],
)
def test_an_empty_or_unreadable_token_file_is_one_line(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    secret = tmp_path / "token"
    secret.write_bytes(content)
    result = subprocess.run(
        devserve_command("--no-tui", "--port", "0", "--dashboard-token-file", str(secret)),
        capture_output=True, text=True, timeout=30, env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"devserve: error: --dashboard-token-file {secret}: {problem}")


def test_the_token_from_the_environment(tmp_path: Path) -> None:
    """DEVSERVE_DASHBOARD_TOKEN works as --dashboard-token, off the command line, unprinted."""
    control = tmp_path / "ctl.sock"
    command = devserve_command(
        "--no-tui", "--port", "0", "--dashboard", "127.0.0.1:0", "--control", str(control),
        "--app-dir", APPS, "supervised_app:app",
    )  # fmt: skip
    with spawned(command, clean_env(DEVSERVE_DASHBOARD_TOKEN=TOKEN)) as process:
        match = DASHBOARD.search(process.out.wait_for(DASHBOARD.pattern, timeout=20))
        assert match is not None
        process.out.wait_for("serving on", timeout=20)
        bearer = {"authorization": f"Bearer {TOKEN}"}
        session = httpx.get(match.group(1) + "/_devserve/api/session", headers=bearer, timeout=5)
        wrong = httpx.get(match.group(1) + "/_devserve/api/session", timeout=5)
        assert full_token(control, match) == TOKEN
        output = process.out.stop()
    assert (session.status_code, wrong.status_code) == (200, 401)
    assert TOKEN[4:] not in output


def test_a_generated_token_is_in_no_log_and_no_page(tmp_path: Path) -> None:
    """JSON logs (what collectors keep), the stream's log events and snapshots (what every
    page sees, replayed to late ones) and /api/status show `?token=abcd…`, never the token;
    the control socket's owner gets the whole URL."""
    with dashboard(tmp_path, "--log-format", "json") as board:
        secret = board.token
        with board.websocket(**board.cookie) as ws:
            seen: list[object] = []
            receive_until(ws, "snapshot", seen)
            snapshot = receive_until(ws, "snapshot", seen)
        status = board.get("/_devserve/api/status", **board.cookie).json()
        command = board.command({"id": 1, "command": "status"}, **board.cookie).json()
        output = board.process.out.stop()
    shown = f"{board.base}/?token={secret[:4]}…"
    logged = [json.loads(line)["message"] for line in output.splitlines()]
    assert f"dashboard: {shown}" in logged
    assert secret not in output and secret[4:] not in output
    assert any("dashboard: " in json.dumps(m) for m in seen)  # the log line was replayed
    assert secret not in json.dumps(seen)
    for server in (snapshot["snapshot"]["server"], status["server"], command["result"]["server"]):
        assert server["dashboard"] == shown


def test_a_dashboard_whose_token_nobody_could_get_is_refused(tmp_path: Path) -> None:
    """--prod with --dashboard, no control socket and no token given: the token would be shown
    nowhere (a production token is not logged, nor kept): one line, exit 2."""
    result = subprocess.run(
        devserve_command(
            "--prod", "--port", "0", "--control", "off", "--dashboard", "127.0.0.1:0",
            "--app-dir", APPS, "supervised_app:app",
        ),
        capture_output=True, text=True, timeout=30, env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(
        "devserve: error: --dashboard: its token would be shown nowhere"
    )
    assert "serving on" not in result.stdout + result.stderr


def forged(token: str, port: int, began: float) -> dict[str, str]:
    """A session that began at `began`, with a genuine key (the test knows the token)."""
    session = f"{int(began)}.forged-session-id-0123456789"
    key = Access(token).page_key(session)
    return {"cookie": f"devserve-dashboard-{port}={session}", "x-devserve-key": key}


def test_a_session_expires_twelve_hours_after_the_token_was_traded(tmp_path: Path) -> None:
    """Sessions end 12 h after they began, used or not; one that claims a start in the future
    (beyond a minute of clock skew) is refused too."""
    with dashboard(tmp_path) as board:
        now = time.time()
        answers = {
            age: board.get("/_devserve/api/session", **forged(board.token, board.port, now - age))
            for age in (0, 11.9 * 3600, 12 * 3600 + 5, -3600)
        }
        with pytest.raises(InvalidStatus) as old_socket:
            board.websocket(**forged(board.token, board.port, now - 13 * 3600))
        board.process.out.stop()
    assert {age: a.status_code for age, a in answers.items()} == {
        0: 200,
        11.9 * 3600: 200,
        12 * 3600 + 5: 401,
        -3600: 401,
    }
    assert old_socket.value.response.status_code == 401


def test_signing_out_ends_the_session_and_closes_its_websocket(tmp_path: Path) -> None:
    """POST /_devserve/api/logout: the cookie is cleared, the session (cookie and key) is
    refused from then on and its open WebSocket closes (1008); other sessions go on."""
    with dashboard(tmp_path) as board:
        mine, other = board.cookie, session_headers(board.get(f"/?token={board.token}"))
        with board.websocket(**mine) as ws:
            receive_until(ws, "snapshot")
            foreign = httpx.post(
                board.base + "/_devserve/api/logout",
                headers={**mine, "origin": "http://evil.test"},
                timeout=5,
            )
            still = board.get("/_devserve/api/session", **mine)
            out = httpx.post(
                board.base + "/_devserve/api/logout", headers={**mine, "origin": board.base}
            )
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=10)
        after = board.get("/_devserve/api/session", **mine)
        with pytest.raises(InvalidStatus) as reopened:
            board.websocket(**mine)
        others = board.get("/_devserve/api/session", **other)
        board.process.out.stop()
    assert (foreign.status_code, still.status_code) == (403, 200)
    assert (out.status_code, out.json()) == (200, {"ended": True})
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert after.status_code == 401 and reopened.value.response.status_code == 401
    assert others.status_code == 200


def test_logs_show_a_long_tokens_first_characters_only() -> None:
    """The rule every log line follows: four characters of a token of 16 or more, none of a
    shorter one; a short token is cut only after `token=`, not wherever its letters occur."""
    long = "abcdefghijklmnopqrstuvwx"
    assert redacted(long) == "abcd…" and redacted("short") == "…"
    assert Access(long).redact(f"x {long} /?token={long}") == "x abcd… /?token=abcd…"
    assert Access("dev").redact("devserve /?token=dev") == "devserve /?token=…"
    assert Access("").redact("/?token=") == "/?token="


def test_only_a_checked_session_counts_as_one() -> None:
    """A cookie alone, an old run's cookie on a dashboard without a token, or a bearer token is
    no session that could end (a tokenless dashboard once closed every page holding an old
    cookie); a cookie with its page key is."""
    long = "abcdefghijklmnopqrstuvwx"
    access = Access(long)
    session, key = access.new_session()
    cookie = (b"cookie", f"{access.cookie_for(8001)}={session}".encode())
    assert access.checked_session([cookie, (b"x-devserve-key", key.encode())], 8001) == session
    assert access.checked_session([cookie], 8001) is None
    assert access.checked_session([cookie, (b"x-devserve-key", b"forged")], 8001) is None
    stale = (b"cookie", f"{access.cookie_for(8001)}=100.abc".encode())
    assert Access("").allows([stale], 8001) and Access("").checked_session([stale], 8001) is None
    bearer = (b"authorization", f"Bearer {long}".encode())
    assert access.allows([bearer], 8001) and access.checked_session([bearer], 8001) is None


def test_the_terminal_that_started_devserve_gets_the_whole_link(tmp_path: Path) -> None:
    """In dev mode without the panel, the link is written straight to the terminal devserve
    runs in (not logged): clicking it is the point. Its log line still shows `abcd…` only."""
    import pty

    control = tmp_path / "ctl.sock"
    command = devserve_command(
        "--no-tui", "--port", "0", "--dashboard", "127.0.0.1:0", "--control", str(control),
        "--app-dir", APPS, "supervised_app:app",
    )  # fmt: skip
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, env=clean_env()
    )
    os.close(follower)
    seen, deadline = b"", time.monotonic() + 20
    try:
        while b"dashboard: " not in seen.partition(b"this terminal only")[2]:
            left = deadline - time.monotonic()
            assert select.select([leader], [], [], max(0.0, left))[0], f"timed out: {seen!r}"
            seen += os.read(leader, 65536)
        owners = ControlClient(str(control)).request("status")["server"]["dashboard"]
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.close(leader)
    text = seen.decode(errors="replace")
    link = text.split("devserve: dashboard: ", 1)[1].split(" ", 1)[0]
    base, _, secret = link.partition("?token=")
    assert link == owners and len(secret) >= 16
    assert f"dashboard: {base}?token={secret[:4]}…" in text
    assert text.count(secret) == 1


def test_redacted_records_keep_their_arguments_for_the_other_filters() -> None:
    """The token is cut from the format and from each argument apart, so Printable still
    escapes what a client sent in the same record."""
    long = "abcdefghijklmnopqrstuvwx"
    before = logging.getLogRecordFactory()
    try:
        redact_records(Access(long).redact)
        record = logging.getLogger("devserve.server").makeRecord(
            "devserve.server", logging.WARNING, __file__, 1, "%s at /?token=" + long,
            ("/a\x1b[8m" + long,), None,
        )  # fmt: skip
    finally:
        logging.setLogRecordFactory(before)
    assert Printable().filter(record)
    assert record.getMessage() == "/a\\x1b[8mabcd… at /?token=abcd…"

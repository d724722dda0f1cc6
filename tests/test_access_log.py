"""The access log: one line per request, gunicorn-style formats, off switch, --log-config."""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from devserver.logging import make_access_logger
from tests.utils import Process, devserve_command, read_response, run_devserve, until

APPS = str(Path(__file__).parent / "cli_apps")
SCOPE_APP = ("--app-dir", APPS, "scope_app:app")


def wait_for_file_line(path: Path, pattern: str) -> str:
    """The first line of `path` matching `pattern`, once there is one (the file handler flushes
    per record)."""
    regex = re.compile(pattern)

    def matching() -> str | None:
        return next((line for line in text_of(path).splitlines() if regex.search(line)), None)

    return until(matching, f"a line matching {pattern!r} in {path}", detail=lambda: text_of(path))


def text_of(path: Path) -> str:
    return path.read_text() if path.exists() else ""


DEFAULT_LINE = re.compile(
    r'(?P<client>127\.0\.0\.1:\d+) - "(?P<method>\w+) (?P<target>\S+) HTTP/1\.1" '
    r"(?P<status>\d{3}) (?P<bytes>\d+)B (?P<ms>\d+\.\d)ms"
)


def test_one_default_line_per_request() -> None:
    """Each request logs one line with client, method, path, status, bytes and duration."""
    with run_devserve(*SCOPE_APP) as proc:
        output = proc.out
        sizes = []
        for path in ("/one?x=1", "/two", "/three"):
            response = httpx.get(proc.url + path)
            sizes.append(len(response.content))
        httpx.post(proc.url + "/four", content=b"data")
        output.wait_for(r'"POST /four ')
        text = output.stop()
    matches = [DEFAULT_LINE.search(line) for line in text.splitlines()]
    lines = [m for m in matches if m is not None]
    assert [(m["method"], m["target"]) for m in lines] == [
        ("GET", "/one?x=1"),
        ("GET", "/two"),
        ("GET", "/three"),
        ("POST", "/four"),
    ]
    assert [int(m["bytes"]) for m in lines[:3]] == sizes
    assert {m["status"] for m in lines} == {"200"}
    assert all(float(m["ms"]) >= 0 for m in lines)


def test_gunicorn_atoms_format() -> None:
    """--access-log-format expands h, r, s, b, D, L and {header}i atoms."""
    fmt = 'ACCESS %(h)s "%(r)s" %(s)s %(b)s %(D)s %(L)s "%({user-agent}i)s" %(m)s %(U)s %(q)s'
    with run_devserve("--access-log-format", fmt, *SCOPE_APP) as proc:
        output = proc.out
        response = httpx.get(proc.url + "/atoms?k=v", headers={"User-Agent": "probe/1.0"})
        line = output.wait_for(r"ACCESS ")
    match = re.search(
        r'ACCESS (\S+) "GET /atoms\?k=v HTTP/1\.1" 200 (\d+) (\d+) (\d+\.\d{6}) "probe/1\.0" '
        r"GET /atoms k=v$",
        line.rstrip("\n"),
    )
    assert match is not None, line
    assert match[1] == "127.0.0.1"
    assert int(match[2]) == len(response.content)
    micros, seconds = int(match[3]), float(match[4])
    assert abs(micros / 1e6 - seconds) < 0.01
    assert seconds < 5


def test_missing_header_atom_and_empty_body_show_a_dash() -> None:
    """An absent request header and a zero-byte body both show as '-' (b), and 0 (B)."""
    fmt = "ACCESS [%({x-missing}i)s] [%(b)s] [%(B)s] [%(s)s]"
    with run_devserve("--access-log-format", fmt, *SCOPE_APP) as proc:
        output = proc.out
        httpx.head(proc.url + "/")
        line = output.wait_for(r"ACCESS ")
    assert "ACCESS [-] [-] [0] [200]" in line


def test_no_access_log_prints_none() -> None:
    """With --no-access-log requests are served but no access line is written."""
    with run_devserve("--no-access-log", *SCOPE_APP) as proc:
        output = proc.out
        for _ in range(3):
            assert httpx.get(proc.url + "/quiet").status_code == 200
        text = output.stop()
    assert "/quiet" not in text
    assert "stopped" in text


def log_config(access_file: Path) -> dict[str, object]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "access_file": {
                "class": "logging.FileHandler",
                "filename": str(access_file),
                "formatter": "plain",
            },
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
            },
        },
        "loggers": {
            "devserve.access": {
                "handlers": ["access_file"],
                "level": "INFO",
                "propagate": False,
            },
            "devserve.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "devserve.supervisor": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def test_log_config_json_routes_access_log_to_a_file(tmp_path: Path) -> None:
    """A dictConfig JSON file sends devserve.access to a file and nowhere else."""
    access_file = tmp_path / "access.log"
    config_file = tmp_path / "logging.json"
    config_file.write_text(json.dumps(log_config(access_file)))
    with run_devserve("--log-config", str(config_file), *SCOPE_APP) as proc:
        output = proc.out
        httpx.get(proc.url + "/to-json-file")
        line = wait_for_file_line(access_file, "/to-json-file")
        text = output.stop()
    assert line.startswith("devserve.access INFO ")
    assert '"GET /to-json-file HTTP/1.1" 200' in line
    assert "/to-json-file" not in text
    assert "devserve.supervisor INFO serving on" in text


@pytest.mark.parametrize("how", ["SIGUSR1", "devserve ctl reopen-logs"])
def test_reopen_after_logrotate_moved_the_file(tmp_path: Path, how: str) -> None:
    """logrotate renames the file, then asks devserve to reopen: the lines written before stay
    in the old file, the workers' next lines go to a new file at the configured path."""
    access_file = tmp_path / "access.log"
    config_file = tmp_path / "logging.json"
    config_file.write_text(json.dumps(log_config(access_file)))
    control = tmp_path / "ctl.sock"
    args = ("--control", str(control), "--log-config", str(config_file))
    with run_devserve(*args, *SCOPE_APP) as proc:
        httpx.get(proc.url + "/before-rotation")
        wait_for_file_line(access_file, "/before-rotation")
        rotated = access_file.rename(tmp_path / "access.log.1")
        if how == "SIGUSR1":
            proc.proc.send_signal(signal.SIGUSR1)
        else:
            ctl = devserve_command("ctl", "--control", str(control), "reopen-logs")
            result = subprocess.run(ctl, capture_output=True, text=True, timeout=20)
            assert (result.returncode, result.stdout) == (0, "log files reopened\n"), result

        # the workers reopen when the supervisor's word reaches them: ask until a line lands
        def logged_after_rotation() -> bool:
            httpx.get(proc.url + "/after-rotation")
            return "/after-rotation" in text_of(access_file)

        until(logged_after_rotation, "a line in the reopened file")
        proc.out.stop()
    old = rotated.read_text()
    assert "/before-rotation" in old
    assert "/before-rotation" not in access_file.read_text()


def test_log_config_yaml_routes_access_log_to_a_file(tmp_path: Path) -> None:
    """A dictConfig YAML file works the same as JSON."""
    yaml = __import__("yaml")
    access_file = tmp_path / "access.log"
    config_file = tmp_path / "logging.yaml"
    config_file.write_text(yaml.safe_dump(log_config(access_file)))
    with run_devserve("--log-config", str(config_file), *SCOPE_APP) as proc:
        output = proc.out
        httpx.get(proc.url + "/to-yaml-file")
        line = wait_for_file_line(access_file, "/to-yaml-file")
        text = output.stop()
    assert '"GET /to-yaml-file HTTP/1.1" 200' in line
    assert "/to-yaml-file" not in text


def test_log_config_ini_file_config(tmp_path: Path) -> None:
    """A fileConfig INI file can route the access log too."""
    access_file = tmp_path / "access.log"
    config_file = tmp_path / "logging.ini"
    config_file.write_text(
        "[loggers]\nkeys=root,access,server\n\n"
        "[handlers]\nkeys=file,console\n\n"
        "[formatters]\nkeys=plain\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        "[logger_access]\nlevel=INFO\nhandlers=file\npropagate=0\nqualname=devserve.access\n\n"
        "[logger_server]\nlevel=INFO\nhandlers=console\npropagate=0\nqualname=devserve.server\n\n"
        f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({str(access_file)!r},)\n\n"
        "[handler_console]\nclass=StreamHandler\nformatter=plain\nargs=(sys.stderr,)\n\n"
        "[formatter_plain]\nformat=%(name)s %(message)s\n"
    )
    with run_devserve("--log-config", str(config_file), *SCOPE_APP) as proc:
        httpx.get(proc.url + "/to-ini-file")
        line = wait_for_file_line(access_file, "/to-ini-file")
    assert line.startswith("devserve.access ")


def test_keep_alive_requests_each_get_a_line() -> None:
    """Several requests on one keep-alive connection produce one line each."""
    with run_devserve("--access-log-format", "KA %(U)s %(s)s", *SCOPE_APP) as proc:
        output = proc.out
        with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
            for n in range(3):
                sock.sendall(f"GET /ka{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                head, _ = read_response(sock)
                assert head.startswith(b"HTTP/1.1 200")
        output.wait_for(r"KA /ka2 200")
        text = output.stop()
    assert re.findall(r"KA (/ka\d) 200", text) == ["/ka0", "/ka1", "/ka2"]


def test_invalid_access_log_format_is_rejected_at_startup() -> None:
    """A format that %-formatting cannot expand ('50%') is refused before serving, exit 2."""
    command = devserve_command("--no-tui", "--port", "0", "--access-log-format", "%(h)s 50%",
                               "--app-dir", APPS, "scope_app:app")  # fmt: skip
    popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Process(popen, "", []).out
    try:
        line = output.wait_for(r"serving on |error:")
        popen.wait(timeout=10)  # it exits by itself after the error line
    finally:
        if popen.poll() is None:
            popen.terminate()
            popen.wait(timeout=10)
        assert popen.stdout is not None
        popen.stdout.close()
    assert line.startswith("devserve: error: --access-log-format")
    assert popen.returncode == 2


def _over_h2(path: str = "/items", agent: bytes = b"h2-client") -> SimpleNamespace:
    """A finished request as the access log reads it, from HTTP/2 stream 3."""
    scope = {
        "type": "http",
        "http_version": "2",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"page=2",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"user-agent", agent)],
    }
    return SimpleNamespace(
        scope=scope, method="GET", status=200, bytes_sent=5, started_at=time.perf_counter()
    )


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (None, r'^127\.0\.0\.1:5000 - "GET /items\?page=2 HTTP/2" 200 5B \d+\.\dms$'),
        ('"%(r)s" %(H)s', r'^"GET /items\?page=2 HTTP/2" HTTP/2$'),
    ],
)
def test_an_http2_request_logs_as_http_2(fmt: str | None, expected: str) -> None:
    """A request that came over HTTP/2 (http_version "2") is logged as `HTTP/2`, in the default
    line and in the gunicorn atoms r and H."""
    (line,) = access_lines(fmt, _over_h2())
    assert re.match(expected, line), line


@pytest.mark.parametrize("fmt", [None, "%(r)s %(U)s %({user-agent}i)s"])
def test_long_paths_and_headers_are_cut_in_the_access_log(fmt: str | None) -> None:
    """A 5,000-character path and User-Agent (over HTTP/2, HPACK re-sends them as one byte
    each): every field of the line is cut to 1,024 characters, the cut marked."""
    request = _over_h2("/" + "p" * 5000, b"a" * 5000)
    (line,) = access_lines(fmt, request)
    assert len(line) < 3 * 1024 + 100, len(line)
    assert "p" * 1000 + "…" in line
    if fmt is not None:
        assert "a" * 1000 + "…" in line


def access_lines(fmt: str | None, request: SimpleNamespace) -> list[str]:
    logger = logging.getLogger("devserve.access")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        make_access_logger(fmt, colour=False)(None, request)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return lines

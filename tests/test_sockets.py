"""Listeners: IPv6, Unix sockets, inherited fds, several binds at once, TLS, backlog."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devserver.config import Config
from devserver.sockets import BindError, addresses, bind
from tests.utils import (
    Output,
    Process,
    devserve_command,
    raw_exchange,
    require_module,
    run_devserve,
)

APPS = str(Path(__file__).parent / "cli_apps")
SCOPE_APP = ("--app-dir", APPS, "scope_app:app")


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def spawn(*args: str, pass_fds: tuple[int, ...] = ()) -> Iterator[Output]:
    """Start devserve with `args` only (no --port 0), optionally passing fds; wait until ready."""
    proc = subprocess.Popen(
        devserve_command("--no-tui", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        pass_fds=pass_fds,
    )
    process = Process(proc, "", [])
    output = process.out
    try:
        line = output.wait_for(r"serving on |error:", timeout=20)
        match = re.search(r"serving on (\S+)", line)
        assert match is not None, output.text
        process.url = match.group(1)
        yield output
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)
        assert proc.stdout is not None
        proc.stdout.close()


def unix_get(path: str, target: str = "/") -> tuple[bytes, dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        response = raw_exchange(
            sock, f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        )
    head, _, body = response.partition(b"\r\n\r\n")
    return head, json.loads(body)


# --------------------------------------------------------------------------- IPv6
@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback() -> None:
    """`--host ::1` serves over IPv6; the URL is bracketed and the scope has IPv6 addresses."""
    with run_devserve("--host", "::1", *SCOPE_APP) as proc:
        assert proc.url.startswith("http://[::1]:")
        data = httpx.get(proc.url + "/v6").json()
    assert data["client"][0] == "::1"
    assert data["server"] == ["::1", proc.port]


# --------------------------------------------------------------------------- Unix sockets
def test_unix_domain_socket() -> None:
    """`--uds PATH` serves on a Unix socket; scope server is (path, None) and client is None."""
    with tempfile.TemporaryDirectory(prefix="ds") as directory:
        path = os.path.join(directory, "s.sock")
        with run_devserve("--uds", path, *SCOPE_APP) as proc:
            assert proc.url == f"unix:{path}"
            head, data = unix_get(path, "/over-unix")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert data["path"] == "/over-unix"
        assert data["server"] == [path, None]
        assert data["client"] is None


def test_unix_socket_replaces_a_stale_socket_file() -> None:
    """A socket file left behind by a previous run is replaced, not a bind error."""
    with tempfile.TemporaryDirectory(prefix="ds") as directory:
        path = os.path.join(directory, "s.sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
        assert os.path.exists(path)
        with run_devserve("--uds", path, *SCOPE_APP):
            _, data = unix_get(path)
        assert data["client"] is None


def test_unix_socket_is_trusted_for_proxy_headers_only_when_asked() -> None:
    """A Unix-socket peer is trusted for X-Forwarded-For only with 'unix' in the allow list."""
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    )
    with tempfile.TemporaryDirectory(prefix="ds") as directory:
        path = os.path.join(directory, "s.sock")
        for allow, expected in (("127.0.0.1", None), ("unix", ["203.0.113.9", 0])):
            with run_devserve("--uds", path, "--forwarded-allow-ips", allow, *SCOPE_APP):
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(path)
                    body = raw_exchange(sock, request).partition(b"\r\n\r\n")[2]
                assert json.loads(body)["client"] == expected


# --------------------------------------------------------------------------- inherited fd
def test_inherited_file_descriptor() -> None:
    """`--fd N` serves on a listening socket the parent created and passed down."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        fd = listener.fileno()
        with spawn("--fd", str(fd), *SCOPE_APP, pass_fds=(fd,)) as output:
            assert output.process.url == f"http://127.0.0.1:{port}"
            data = httpx.get(f"http://127.0.0.1:{port}/from-fd").json()
    assert data["path"] == "/from-fd"
    assert data["server"] == ["127.0.0.1", port]


def test_inherited_fd_that_is_not_a_socket_fails_to_start() -> None:
    """`--fd` naming something that is not a stream socket exits 3 with one error line."""
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run(
            devserve_command("--no-tui", "--fd", str(read_end), *SCOPE_APP),
            capture_output=True,
            text=True,
            timeout=20,
            pass_fds=(read_end,),
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("devserve: error:")
    assert f"fd://{read_end}" in lines[0]


# --------------------------------------------------------------------------- several binds
def test_several_binds_all_answer() -> None:
    """Two --bind addresses each get a listener, each logged, and both answer requests."""
    with spawn("--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0", *SCOPE_APP) as output:
        first = output.process.url
        second_line = output.wait_for(rf"serving on (?!{re.escape(first)}\s)")
        second = second_line.split("serving on ")[1].strip()
        assert first != second
        for url in (first, second):
            assert httpx.get(url + "/both").json()["path"] == "/both"


def test_bind_mixing_tcp_and_unix() -> None:
    """`--bind HOST:PORT --bind unix:PATH` serves on both kinds at once."""
    with tempfile.TemporaryDirectory(prefix="ds") as directory:
        path = os.path.join(directory, "s.sock")
        with spawn("--bind", "127.0.0.1:0", "--bind", f"unix:{path}", *SCOPE_APP) as output:
            output.wait_for(re.escape(f"serving on unix:{path}"))
            assert httpx.get(output.process.url + "/").status_code == 200
            _, data = unix_get(path)
            assert data["server"] == [path, None]


def test_addresses_precedence() -> None:
    """--bind replaces --uds/--fd, which replace --host/--port; IPv6 hosts are bracketed."""
    assert addresses(Config(host="::1", port=9)) == ["[::1]:9"]
    assert addresses(Config(uds="/tmp/x.sock", port=9)) == ["unix:/tmp/x.sock"]
    assert addresses(Config(fd=5, port=9)) == ["fd://5"]
    assert addresses(Config(bind=("1.2.3.4:5",), uds="/tmp/x")) == ["1.2.3.4:5"]


def test_bind_error_names_the_address() -> None:
    """A failing bind raises BindError whose message names the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(BindError, match=re.escape(address)):
            bind(address, 16)


# --------------------------------------------------------------------------- TLS
def test_tls_with_trustme_certificates(tmp_path: Path) -> None:
    """With --ssl-certfile/--ssl-keyfile the server speaks HTTPS and scope scheme is https."""
    trustme = require_module("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with run_devserve(
        "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile), *SCOPE_APP
    ) as proc:
        assert proc.url.startswith("https://127.0.0.1:")
        response = httpx.get(proc.url + "/secure", verify=client_context)
        with pytest.raises(httpx.ConnectError):
            httpx.get(proc.url + "/", verify=ssl.create_default_context())  # untrusted CA
    assert response.status_code == 200
    assert response.json()["scheme"] == "https"
    assert response.json()["path"] == "/secure"


def test_tls_with_a_bad_certificate_fails_to_start(tmp_path: Path) -> None:
    """A certificate file that is not PEM exits 2 (a bad configuration) with one error line."""
    certfile = tmp_path / "cert.pem"
    certfile.write_text("not a certificate")
    result = subprocess.run(
        devserve_command(
            "--no-tui", "--port", "0", "--ssl-certfile", str(certfile),
            "--ssl-keyfile", str(certfile), *SCOPE_APP,
        ),
        capture_output=True,
        text=True,
        timeout=20,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("devserve: error:")
    assert "TLS" in result.stderr


# --------------------------------------------------------------------------- backlog
def test_backlog_option_is_accepted() -> None:
    """`--backlog 16` starts and serves normally."""
    with run_devserve("--backlog", "16", *SCOPE_APP) as proc:
        assert httpx.get(proc.url + "/").status_code == 200

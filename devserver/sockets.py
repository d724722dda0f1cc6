"""Listening sockets: bind TCP (IPv4/IPv6), Unix sockets, or adopt inherited fds; TLS context.

Binding happens before any app code runs, so a port in use is reported as a startup failure.
Each address is described once (`Listener.url`) for logs and the panels.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
from dataclasses import dataclass

from devserver.config import Config


class BindError(Exception):
    """A listener could not be created; the message names the address and, when known, the
    flag that asked for it (`--admin 127.0.0.1:9000: address already in use`)."""

    def __init__(self, address: str, reason: str, flag: str = "") -> None:
        self.address, self.reason, self.flag = address, reason, flag
        where = f"{flag} {address}" if flag else f"cannot listen on {address}"
        super().__init__(f"{where}: {reason}")

    def named(self, flag: str) -> BindError:
        """The same failure, naming the flag that asked for the address."""
        return BindError(self.address, self.reason, flag)


class TLSError(BindError):
    """The TLS certificate or key cannot be loaded (a BindError: no listener can serve)."""


@dataclass
class Listener:
    sock: socket.socket
    address: str  # as the user wrote it, normalised: HOST:PORT, unix:PATH, fd://N

    def url(self, tls: bool) -> str:
        if self.sock.family == socket.AF_UNIX:
            return f"unix:{self.sock.getsockname() or self.address[5:]}"
        host, port = self.sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"{'https' if tls else 'http'}://{shown}:{port}"


def addresses(config: Config) -> list[str]:
    """Every address to listen on, from --bind, else --uds/--fd, else --host/--port."""
    if config.bind:
        return list(config.bind)
    if config.uds:
        return [f"unix:{config.uds}"]
    if config.fd is not None:
        return [f"fd://{config.fd}"]
    host = f"[{config.host}]" if ":" in config.host else config.host
    return [f"{host}:{config.port}"]


def app_flag(config: Config) -> str:
    """The flag that gave the app's addresses, for messages about them."""
    if config.bind:
        return "--bind"
    if config.uds:
        return "--uds"
    return "--fd" if config.fd is not None else "--host/--port"


def bind_all(config: Config, inherited: list[int] | None = None) -> list[Listener]:
    """Every listener of the config; sockets passed by systemd (see systemd.listen_fds) win.
    A BindError names the flag the failing address came from."""
    if inherited:
        return [Listener(_adopt_fd(fd), f"fd://{fd}") for fd in inherited]
    listeners: list[Listener] = []
    try:
        for address in addresses(config):
            listeners.append(Listener(bind(address, config.backlog, app_flag(config)), address))
    except BindError:
        for listener in listeners:
            listener.sock.close()
        raise
    return listeners


def bind(address: str, backlog: int, flag: str = "") -> socket.socket:
    """A listening socket on `address`; BindError names `flag` (the option that asked for it)
    and the address."""
    try:
        if address.startswith("unix:"):
            return _bind_unix(address[5:], backlog)
        if address.startswith("fd://"):
            return _adopt_fd(int(address[5:]))
        host, _, port = address.rpartition(":")
        return _bind_tcp(host.strip("[]"), int(port), backlog)
    except OSError as exc:
        reason = str(exc.strerror or exc)
        raise BindError(address, reason[:1].lower() + reason[1:], flag) from None


def _bind_tcp(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not host:
        host, family = "0.0.0.0", socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _bind_unix(path: str, backlog: int) -> socket.socket:
    if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
        os.unlink(path)  # a stale socket from a previous run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _adopt_fd(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        raise OSError(f"fd {fd} is not a stream socket")
    sock.setblocking(False)
    return sock


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server TLS context, or None without --ssl-certfile."""
    if config.ssl_certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(
            config.ssl_certfile, config.ssl_keyfile, password=config.ssl_keyfile_password
        )
        if config.ssl_ca_certs:
            context.load_verify_locations(config.ssl_ca_certs)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        reason = f"cannot load the TLS certificate or key: {exc}"
        raise TLSError(config.ssl_certfile, reason, "--ssl-certfile") from None
    # ALPN: the client picks from these, in our order of preference (RFC 7301)
    protocols = {"auto": ["h2", "http/1.1"], "1": ["http/1.1"], "2": ["h2"]}[config.http]
    context.set_alpn_protocols(protocols)
    return context

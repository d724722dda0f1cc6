"""The control socket: the control API as newline-delimited JSON on a Unix socket, mode 0600.

Local only by construction (a filesystem socket only its owner can open). One connection may send
any number of requests and gets one reply line each; `subscribe` turns it into a stream until the
client hangs up. The wire format is drawn in control/schema.py. All the work is in hub.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import stat

from devserver.control import schema
from devserver.control.hub import Hub

logger = logging.getLogger("devserve.supervisor")


class ControlSocketError(Exception):
    """The control socket cannot be created; the message names the path."""


def default_path(directory: str | None = None) -> str:
    """Per working directory, so `devserve ctl` run where the server runs finds it."""
    directory = os.path.abspath(directory or os.getcwd())
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        digest = hashlib.sha1(directory.encode()).hexdigest()[:12]
        return os.path.join(runtime, f"devserve-{digest}.sock")
    return os.path.join(directory, ".devserve.sock")


def resolve_path(setting: str) -> str | None:
    """The --control setting as a path: 'auto' → default_path(), 'off' → None."""
    if setting == "off":
        return None
    return default_path() if setting == "auto" else setting


def in_use(path: str) -> bool:
    """True when a live server answers on `path` (a leftover socket file does not count)."""
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _owner(path: str) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError:
        return None


def _warn_if_others_can_replace(path: str) -> None:
    """Other users who may write the socket's directory can take its path before devserve
    starts, or (without the sticky bit) replace the socket; `ctl` and `top` refuse a socket that
    is not their user's, so this cannot leak commands, but the operator should know why they
    might fail."""
    directory = os.path.dirname(os.path.abspath(path))
    with contextlib.suppress(OSError):
        if os.stat(directory).st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            logger.warning(
                "control socket %s: other users may write %s and could take or replace the "
                "socket; give --control a path in a private directory",
                path,
                directory,
            )


class ControlServer:
    def __init__(self, hub: Hub, path: str) -> None:
        self.hub = hub
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        """Listen; raises ControlSocketError if another server owns the path."""
        if in_use(self.path):
            owner = _owner(self.path)
            if owner is not None and owner != os.getuid():
                raise ControlSocketError(
                    f"control socket {self.path} is held by another user (uid {owner}); give "
                    "--control a path in a private directory"
                )
            raise ControlSocketError(f"control socket {self.path} is in use by another devserve")
        _warn_if_others_can_replace(self.path)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(self.path).st_mode):
                os.unlink(self.path)  # left behind by a server that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # created 0600: no window where others could connect
        try:
            sock.bind(self.path)
            sock.listen(16)  # at once: a client that sees the file should not be refused
        except OSError as exc:
            sock.close()
            raise ControlSocketError(f"cannot create control socket {self.path}: {exc}") from None
        finally:
            os.umask(previous)
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=schema.MAX_LINE
        )

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self._closing = True
        for task in list(self._streams):
            task.cancel()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            while line := await reader.readline():
                await self._answer(line, writer)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass  # the client went away, or sent a line over the limit
        except asyncio.CancelledError:
            # close() cancels open connections (a subscriber waits on the hub): end quietly,
            # since Python 3.11's streams log a handler task that ends cancelled as an error
            if not self._closing:
                raise
        finally:
            self._streams.discard(task)
            writer.close()

    async def _answer(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            message = schema.decode(line)
        except schema.SchemaError as exc:
            writer.write(schema.encode(schema.error(None, str(exc))))
            await writer.drain()
            return
        if isinstance(message, dict) and message.get("command") == "subscribe":
            writer.write(schema.encode(schema.result(message.get("id"), {"subscribed": True})))
            async for item in self.hub.stream(recent=message.get("recent") is True):
                if self._closing:
                    return
                writer.write(schema.encode(item))
                await writer.drain()
            return
        writer.write(schema.encode(self.hub.handle(message)))
        await writer.drain()

"""Clients of the control socket, for `devserve ctl`, `devserve top` and tests (stdlib only).

`ControlClient(path).request("status")` returns the result or raises ControlError with the
server's message; `NotRunning` says that nothing listens at the path. `AsyncControlClient` is
the same for an asyncio program (the control panel).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from devserver.control import schema

# a subscriber hears a snapshot every second: this long without a word, the server is stopped
# (SIGSTOP, a debugger) or frozen, and the panel must not keep showing its last numbers as live
STREAM_SILENCE = 5.0


class ControlError(Exception):
    """The server refused a command, or the conversation broke; the text says which."""


class NotRunning(ControlError):
    """No devserve listens on the control socket."""


class ControlClient:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._ids = itertools.count(1)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise NotRunning(f"no devserve is listening on {self.path}") from None
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot connect to {self.path}: {exc}") from None
        return sock

    def request(self, command: str, **args: Any) -> schema.Message:
        """Send one command; returns its result."""
        with self._connect() as sock:
            sock.sendall(schema.encode(schema.request(command, next(self._ids), **args)))
            reply = next(_lines(sock), None)
        return _result(reply)

    def subscribe(self, recent: bool = False) -> Generator[schema.Message, None, None]:
        """Snapshots and events, as the server sends them (with `recent`, first the latest
        events from before), until the caller stops iterating."""
        sock = self._connect()
        sock.settimeout(None)
        try:
            args = {"recent": True} if recent else {}
            sock.sendall(schema.encode(schema.request("subscribe", next(self._ids), **args)))
            lines = _lines(sock)
            next(lines, None)  # the acknowledgement
            yield from lines
        finally:
            sock.close()


class AsyncControlClient:
    """The control socket from asyncio: one connection per command, one for the stream."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._ids = itertools.count(1)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(self.path, limit=schema.MAX_LINE)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(f"no devserve is listening on {self.path}") from None
        except OSError as exc:
            raise ControlError(f"cannot connect to {self.path}: {exc}") from None

    async def request(self, command: str, **args: Any) -> schema.Message:
        """Send one command; returns its result."""
        reader, writer = await self._connect()
        try:
            writer.write(schema.encode(schema.request(command, next(self._ids), **args)))
            async with asyncio.timeout(self.timeout):
                line = await reader.readline()
        except (OSError, ValueError) as exc:
            raise ControlError(f"the conversation with {self.path} broke: {exc}") from None
        except TimeoutError:
            raise ControlError(f"no answer from {self.path} in {self.timeout:g} s") from None
        finally:
            writer.close()
        return _result(schema.decode(line) if line else None)

    async def subscribe(self, recent: bool = False) -> AsyncIterator[schema.Message]:
        """Snapshots, request records and events, as the server sends them (with `recent`,
        first the latest events from before); ends when the server goes away."""
        reader, writer = await self._connect()
        try:
            args = {"recent": True} if recent else {}
            writer.write(schema.encode(schema.request("subscribe", next(self._ids), **args)))
            async with asyncio.timeout(STREAM_SILENCE):
                await reader.readline()  # the acknowledgement
            while True:
                async with asyncio.timeout(STREAM_SILENCE):
                    line = await reader.readline()
                if not line:
                    return
                yield schema.decode(line)
        except TimeoutError:  # before OSError, its base class
            raise ControlError(
                f"no word from {self.path} in {STREAM_SILENCE:g} s (stopped or frozen?)"
            ) from None
        except (OSError, ValueError):
            return  # the server went away mid-line, or sent one over the limit
        finally:
            writer.close()


def _result(reply: Any) -> schema.Message:
    if reply is None:
        raise ControlError("the server closed the connection without answering")
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "the server refused the command")))
    result: schema.Message = reply["result"]
    return result


def _lines(sock: socket.socket) -> Iterator[schema.Message]:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
            if len(buffer) > schema.MAX_LINE:
                raise ControlError("a reply line over the size limit")
        line, _, buffer = buffer.partition(b"\n")
        yield schema.decode(line)

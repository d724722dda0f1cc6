"""Clients of the control socket, for `devserve ctl`, `devserve top` and tests (stdlib only).

`ControlClient(path).request("status")` returns the result or raises ControlError with the
server's message; `NotRunning` says that nothing listens at the path. `AsyncControlClient` is
the same for an asyncio program (the control panel).

A stream survives a line it cannot read (not JSON, not an object, over the size limit): in
its place the subscriber gets `unreadable(...)`, a `log` event of the client's own, and reading
goes on; a stream that stopped at the first bad line would leave a panel showing stale numbers
as live. A reply to a command that cannot be read is a ControlError.

A control socket that belongs to another user is refused before a byte is sent (`NotYours`),
as ssh refuses an agent socket that is not the user's own, root included: a socket in a
directory others can write to may have been put there by them, and what it answers ends up in
this user's terminal. The server's uid is checked again once connected (SO_PEERCRED), so a
socket swapped in after the check is refused too.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import socket
import struct
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any, Unpack, cast

from devserver.control import schema

# a subscriber hears a snapshot every second: this long without a word, the server is stopped
# (SIGSTOP, a debugger) or frozen, and the panel must not keep showing its last numbers as live
STREAM_SILENCE = 5.0


class ControlError(Exception):
    """The server refused a command, or the conversation broke; the text says which."""


class NotRunning(ControlError):
    """No devserve listens on the control socket."""


class NotYours(ControlError):
    """The control socket, or the process that answers on it, belongs to another user."""


def check_owner(path: str) -> None:
    """Raise NotYours when the socket file at `path` belongs to another user; call before
    connecting. (A path that cannot be stat'ed is left to connect() to explain.)"""
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return
    _same_user(path, uid)


def _check_peer(path: str, sock: socket.socket) -> None:
    """Raise NotYours when the process that accepted `sock` runs as another user."""
    if not hasattr(socket, "SO_PEERCRED"):
        return  # not Linux: the file's owner, checked before connecting, has to do
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _same_user(path, struct.unpack("3i", creds)[1])


def _same_user(path: str, uid: int) -> None:
    if uid == os.getuid():
        return
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid {uid}"
    raise NotYours(
        f"control socket {path} belongs to another user ({name}), not to you: not connecting "
        f"(run this as {name})"
    )


class ControlClient:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._ids = itertools.count(1)

    def _connect(self) -> socket.socket:
        check_owner(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
            _check_peer(self.path, sock)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise NotRunning(f"no devserve is listening on {self.path}") from None
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot connect to {self.path}: {exc}") from None
        except NotYours:
            sock.close()
            raise
        return sock

    def request(self, command: str, **args: Unpack[schema.Arguments]) -> schema.CommandResult:
        """Send one command; returns its result."""
        with self._connect() as sock:
            sock.sendall(schema.encode(schema.request(command, next(self._ids), **args)))
            reply = next(_raw_lines(sock), b"")
        return _result(_reply(reply))

    def subscribe(self, recent: bool = False) -> Generator[schema.StreamMessage, None, None]:
        """Snapshots and events, as the server sends them (with `recent`, first the latest
        events from before), until the caller stops iterating."""
        sock = self._connect()
        sock.settimeout(None)
        try:
            args: schema.Arguments = {"recent": True} if recent else {}
            sock.sendall(schema.encode(schema.request("subscribe", next(self._ids), **args)))
            lines = _raw_lines(sock)
            next(lines, None)  # the acknowledgement
            for line in lines:
                yield _message(line)
        finally:
            sock.close()


class AsyncControlClient:
    """The control socket from asyncio: one connection per command, one for the stream."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._ids = itertools.count(1)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        check_owner(self.path)
        try:
            reader, writer = await asyncio.open_unix_connection(self.path, limit=schema.MAX_LINE)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(f"no devserve is listening on {self.path}") from None
        except OSError as exc:
            raise ControlError(f"cannot connect to {self.path}: {exc}") from None
        try:
            _check_peer(self.path, writer.get_extra_info("socket"))
        except NotYours:
            writer.close()
            raise
        return reader, writer

    async def request(self, command: str, **args: Unpack[schema.Arguments]) -> schema.CommandResult:
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
        return _result(_reply(line))

    async def subscribe(self, recent: bool = False) -> AsyncIterator[schema.StreamMessage]:
        """Snapshots, request records and events, as the server sends them (with `recent`,
        first the latest events from before); ends when the server goes away."""
        reader, writer = await self._connect()
        try:
            args: schema.Arguments = {"recent": True} if recent else {}
            writer.write(schema.encode(schema.request("subscribe", next(self._ids), **args)))
            async with asyncio.timeout(STREAM_SILENCE):
                await _read_line(reader)  # the acknowledgement
            while True:
                async with asyncio.timeout(STREAM_SILENCE):
                    line = await _read_line(reader)
                if line == b"":
                    return
                yield _message(line)
        except TimeoutError:  # before OSError, its base class
            raise ControlError(
                f"no word from {self.path} in {STREAM_SILENCE:g} s (stopped or frozen?)"
            ) from None
        except OSError:
            return  # the server went away
        finally:
            writer.close()


def unreadable(reason: str) -> schema.EventMessage:
    """What a subscriber gets in place of a line it could not read: a `log` event of the
    client's own (source "client"), which a panel shows among the events."""
    line = f"skipped a message from devserve that this client cannot read: {reason}"
    event: schema.LogEvent = {
        "kind": "log",
        "source": "client",
        "level": "warning",
        "line": line,
        "t": time.time(),
    }
    return schema.event(event)


def _decode(line: bytes | None) -> schema.Message | str:
    """A line (None: one over the limit) as a message, else why it is not one. Unknown types
    pass: the schema asks clients to ignore them, not to fail."""
    if line is None:
        return f"a line over the {schema.MAX_LINE} byte limit"
    try:
        message = schema.decode(line)
    except schema.SchemaError as exc:
        return f"{exc} (it began {line[:40]!r})"
    if not isinstance(message, dict):
        return f"not a JSON object (it began {line[:40]!r})"
    return message


def _message(line: bytes | None) -> schema.StreamMessage:
    """A stream's line as a message, or `unreadable` when it is not one. Only its being a JSON
    object is checked: a reader checks each part it uses (a newer server may send more)."""
    message = _decode(line)
    if isinstance(message, str):
        return unreadable(message)
    return cast("schema.StreamMessage", message)


def _reply(line: bytes | None) -> Any:
    """A command's reply line: None when the server hung up; ControlError when unreadable."""
    if line == b"":
        return None
    message = _decode(line)
    if isinstance(message, str):
        raise ControlError(f"devserve's reply cannot be read: {message}")
    return message


def _result(reply: Any) -> schema.CommandResult:
    if reply is None:
        raise ControlError("the server closed the connection without answering")
    if not isinstance(reply, dict) or not isinstance(reply.get("result", {}), dict):
        raise ControlError("the server's reply is not a control API reply")
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "the server refused the command")))
    result: schema.CommandResult = reply.get("result", {})
    return result


def _raw_lines(sock: socket.socket) -> Iterator[bytes | None]:
    """The socket's lines, each with its newline; None for one over the limit, which is read
    to its end and dropped, so the next line is read whole."""
    buffer, skipping = b"", False
    while True:
        while b"\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
            if len(buffer) > schema.MAX_LINE and b"\n" not in buffer:
                buffer, skipping = b"", True  # the rest of this line is dropped as it comes
        line, _, buffer = buffer.partition(b"\n")
        if skipping or len(line) >= schema.MAX_LINE:
            skipping = False
            yield None
        else:
            yield line + b"\n"


async def _read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line with its newline (b"" at the end); None for one over the reader's limit,
    which is read to its end and dropped."""
    skipping = False
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # the end, maybe after a last partial line
            return b"" if skipping else exc.partial
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)  # what is buffered of it goes
            skipping = True
            continue
        return None if skipping else line

#!/usr/bin/env python3
"""Hostile-client soak: one devserve worker under slow, stalled and flooding clients, while a
well-behaved client counts what it still gets; the RSS of the supervisor and the worker is
sampled throughout. It reports what it sees and never tunes or fixes the server.

Phases: the server starts (pinned to --server-cpus), the well-behaved client (a subprocess on
--client-cpus, --good-conns keep-alive connections, one request at a time, GET and a small POST
echo in turn, --good-timeout s per socket operation) runs --warmup s alone, then every attack
runs for --duration s, then the well-behaved client runs --recovery s more, alone again.
Attacks (asyncio tasks on raw non-blocking sockets, each reconnecting when the server ends its
connection; --only picks some):

  slowloris       --slowloris connections trickling a request head, a byte every --trickle s
  stalled-body    --stalled connections: a POST head with Content-Length: 1000000, 10 body bytes,
                  then nothing (the app reads the body; the server should answer 408)
  header-flood    = header-fields + header-big, request after request, a new connection each:
  header-fields   --header-conns connections sending 10,000 tiny header fields
  header-big      --header-conns connections sending one 60 kB header field of 0xff bytes
  ws-ping         --ws-conns WebSocket connections sending masked pings as fast as the socket
                  takes them, never reading a pong
  pipeline        = pipeline-noread + pipeline-read:
  pipeline-noread --pipeline-conns connections writing pipelined GETs without ever reading
  pipeline-read   as many writing the same way and reading every response
  idle            --idle connections that connect and send nothing

Every 0.5 s a thread samples the RSS and CPU time of the supervisor and the worker, the
worker's open connections as devserve's control socket reports them, the connections the
kernel holds ESTABLISHED on the server's port, and per attack the bytes queued in the kernel on
the server's side of its connections (sent by the client and not yet read by the server, and
written by the server and not yet read by the client): memory outside the worker's RSS.
Run it with the project's .venv (psutil, uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import HOST, REPO, SNAPSHOT, devserve_source, free_port, take_snapshot  # noqa: E402

APP_DIR = os.path.join(HERE, "apps")
APP = "asgi_soak:app"
UVICORN = "/tmp/peers-venv/bin/uvicorn"
ATTACKS = (
    *("slowloris", "stalled-body", "header-flood", "header-fields", "header-big", "ws-ping"),
    *("pipeline", "pipeline-noread", "pipeline-read", "idle"),
)
CONNECT_TIMEOUT = 5.0
GOOD_BODY = b"x" * 100
GOOD_REQUESTS = (
    (b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n", b"Hello, world!"),
    (b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100\r\n\r\n" + GOOD_BODY, GOOD_BODY),
)
RETRYABLE = {"ka_eof_before_response"}  # a keep-alive close racing the next request


# --------------------------------------------------------------------------- well-behaved client


class EOFBeforeEnd(Exception):
    """The server closed the connection before the response was complete."""


def exchange(sock: socket.socket, request: bytes) -> tuple[int, bytes, bool, int]:
    """Send one request, read one response: (status, body, server wants to close, bytes got)."""
    sock.sendall(request)
    buf, got = b"", 0
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFBeforeEnd(got)
        buf, got = buf + chunk, got + len(chunk)
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.lower().partition(b":")[::2] for line in lines[1:])
    length = int(headers.get(b"content-length", b"0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFBeforeEnd(got)
        body, got = body + chunk, got + len(chunk)
    close = headers.get(b"connection", b"").strip() == b"close"
    return int(lines[0].split()[1]), body, close, got


def classify(exc: BaseException, connected: bool, reused: bool) -> str:
    """A short name for a failed request; `reused`: a keep-alive connection that had already
    answered, where an EOF before any byte is the retryable idle-close race."""
    if not connected:
        return "refused" if isinstance(exc, ConnectionRefusedError) else "connect_timeout"
    ka = "ka_" if reused else ""
    if isinstance(exc, EOFBeforeEnd):
        return f"{ka}eof_before_response" if not exc.args[0] else "eof_mid_response"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionResetError):
        return f"{ka}reset"
    return f"{ka}{type(exc).__name__}"


def good_loop(port: int, timeout: float, pause: float, log: list, stop: threading.Event) -> None:
    """One keep-alive connection, one request at a time, reconnecting after a close or a
    failure; appends (start, seconds, outcome) to log for every request."""
    sock: socket.socket | None = None
    answered = 0
    for n in itertools.count():
        if stop.is_set():
            break
        request, expect = GOOD_REQUESTS[n % 2]
        t0, connected = time.monotonic(), sock is not None
        try:
            if sock is None:
                sock = socket.create_connection((HOST, port), timeout=timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connected, answered = True, 0
            status, body, close, _ = exchange(sock, request)
            outcome = "ok" if (status, body) == (200, expect) else f"http{status}"
            if status == 200 and body != expect:
                outcome = "bad_body"
            answered += 1
            if close:
                sock.close()
                sock = None
        except (OSError, EOFBeforeEnd, ValueError, IndexError) as exc:
            outcome = classify(exc, connected, answered > 0)
            if sock is not None:
                sock.close()
            sock = None
        log.append((t0, time.monotonic() - t0, outcome))
        stop.wait(pause)
    if sock is not None:
        sock.close()


def good_client_main(a: argparse.Namespace) -> None:
    """The --good-client subprocess: run until stdin closes, then print the log as JSON."""
    stop = threading.Event()
    logs: list[list] = [[] for _ in range(a.good_conns)]
    threads = [
        threading.Thread(target=good_loop, args=(a.port, a.good_timeout, a.good_pause, log, stop))
        for log in logs
    ]
    for t in threads:
        t.start()
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join()
    json.dump(sorted(e for log in logs for e in log), sys.stdout)


# --------------------------------------------------------------------------- attacks


class Closed(Exception):
    """The server ended an attacker's connection: args[0] is 'eof' or 'reset'."""


@dataclass
class Tally:
    """What one attack did and what the server answered it; touched only from the loop's
    thread, read (ints only) by the sampler."""

    name: str
    planned: int
    open: int = 0
    peak_open: int = 0
    connects: int = 0
    connect_errors: Counter = field(default_factory=Counter)
    ends: Counter = field(default_factory=Counter)  # how connections ended: eof, reset, done
    held_s: list[float] = field(default_factory=list)  # connect -> the server ended it
    statuses: Counter = field(default_factory=Counter)
    counters: Counter = field(default_factory=Counter)
    ports: set[int] = field(default_factory=set)  # local ports of the open connections

    async def session(self, port: int, body: Callable[[socket.socket], Awaitable[None]]) -> None:
        """One connection: connect, run body(sock), account for how it ended. body returns
        when the client is done with it, or raises Closed or a socket error."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            sock.close()
            self.connect_errors[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
            return
        t0, port_of = time.monotonic(), sock.getsockname()[1]
        self.ports.add(port_of)
        self.connects += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        try:
            await body(sock)
            self.ends["done"] += 1
        except Closed as exc:
            self.ends[exc.args[0]] += 1
            self.held_s.append(time.monotonic() - t0)
        except (ConnectionResetError, BrokenPipeError):
            self.ends["reset"] += 1
            self.held_s.append(time.monotonic() - t0)
        except TimeoutError:  # an answer the body waited for did not come
            self.ends["timeout"] += 1
        finally:
            self.open -= 1
            self.ports.discard(port_of)
            sock.close()

    def note(self, data: bytes) -> None:
        """Count the status of a response that starts this chunk."""
        if data.startswith(b"HTTP/1.1 "):
            self.statuses[data[9:12].decode("ascii", "replace")] += 1


def poll(sock: socket.socket, tally: Tally) -> None:
    """Read whatever the server sent without waiting; raise Closed when it ended the
    connection."""
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            raise Closed("reset") from None
        if not data:
            raise Closed("eof")
        tally.note(data)


async def read_until_closed(sock: socket.socket, tally: Tally) -> None:
    """Read (noting statuses) until the server ends the connection."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await loop.sock_recv(sock, 65536)
        except ConnectionResetError:
            raise Closed("reset") from None
        if not data:
            raise Closed("eof")
        tally.note(data)


async def read_head(sock: socket.socket, timeout: float) -> bytes:
    """The response head (b'' when the server closed first); raises TimeoutError."""
    loop = asyncio.get_running_loop()
    buf = b""
    async with asyncio.timeout(timeout):
        while b"\r\n\r\n" not in buf:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                return buf
            buf += chunk
    return buf


SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: soak\r\nUser-Agent: slowloris\r\nX-Slow: "


async def slowloris(sock: socket.socket, t: Tally, a: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    for i in itertools.count():
        await loop.sock_sendall(sock, SLOW_HEAD[i : i + 1] or b"a")
        t.counters["bytes_sent"] += 1
        await asyncio.sleep(a.trickle * random.uniform(0.8, 1.2))
        poll(sock, t)


STALLED_HEAD = b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 10


async def stalled_body(sock: socket.socket, t: Tally, a: argparse.Namespace) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, STALLED_HEAD)
    await read_until_closed(sock, t)


MANY_HEADERS = (
    b"GET / HTTP/1.1\r\nHost: soak\r\n"
    + b"".join(b"x%d: 1\r\n" % i for i in range(10_000))
    + b"\r\n"
)
BIG_HEADER = b"GET / HTTP/1.1\r\nHost: soak\r\nX-Big: " + b"\xff" * 60_000 + b"\r\n\r\n"


def header_flood(request: bytes) -> Callable[..., Awaitable[None]]:
    async def flood(sock: socket.socket, t: Tally, a: argparse.Namespace) -> None:
        loop = asyncio.get_running_loop()
        t.counters["requests"] += 1
        try:
            async with asyncio.timeout(5):
                await loop.sock_sendall(sock, request)
        except TimeoutError:
            t.counters["send_stalled_5s"] += 1
        except (ConnectionResetError, BrokenPipeError):
            t.counters["reset_while_sending"] += 1
        try:
            head = await read_head(sock, 5)
        except TimeoutError:
            t.counters["no_answer_5s"] += 1
            return
        except ConnectionResetError:
            raise Closed("reset") from None
        if head:
            t.note(head)
        else:
            t.counters["closed_without_answer"] += 1

    return flood


WS_HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n"
)
PING = (
    bytes([0x89, 0x84])
    + b"\x37\xfa\x21\x3d"
    + bytes(b ^ m for b, m in zip(b"ping", b"\x37\xfa\x21\x3d", strict=True))
)
PINGS_PER_BATCH = 4096


async def ws_ping(sock: socket.socket, t: Tally, a: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16))
    await loop.sock_sendall(sock, WS_HANDSHAKE % key)
    head = await read_head(sock, 5)
    t.note(head)
    if not head.startswith(b"HTTP/1.1 101"):
        await asyncio.sleep(1)
        return
    batch = PING * PINGS_PER_BATCH
    while True:
        await loop.sock_sendall(sock, batch)
        t.counters["pings_sent"] += PINGS_PER_BATCH


PIPELINED = b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"
PIPELINE_BATCH = 2048


async def pipeline_write(sock: socket.socket, t: Tally) -> None:
    loop = asyncio.get_running_loop()
    batch = PIPELINED * PIPELINE_BATCH
    while True:
        await loop.sock_sendall(sock, batch)
        t.counters["requests_sent"] += PIPELINE_BATCH


async def pipeline_noread(sock: socket.socket, t: Tally, a: argparse.Namespace) -> None:
    await pipeline_write(sock, t)


async def pipeline_read(sock: socket.socket, t: Tally, a: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    writer = asyncio.create_task(pipeline_write(sock, t))
    tail = b""
    try:
        while True:
            try:
                data = await loop.sock_recv(sock, 262144)
            except ConnectionResetError:
                raise Closed("reset") from None
            if not data:
                raise Closed("eof")
            t.counters["responses_read"] += (tail + data).count(b"HTTP/1.1 ") - tail.count(
                b"HTTP/1.1 "
            )
            tail = data[-8:]
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await writer


async def idle(sock: socket.socket, t: Tally, a: argparse.Namespace) -> None:
    await read_until_closed(sock, t)


Body = Callable[[socket.socket, Tally, argparse.Namespace], Awaitable[None]]


def plan(a: argparse.Namespace) -> list[tuple[str, int, Body]]:
    """(attack, connections, body) for every attack --only keeps (by its name or its group)."""
    rows: list[tuple[str, str, int, Body]] = [
        ("slowloris", "slowloris", a.slowloris, slowloris),
        ("stalled-body", "stalled-body", a.stalled, stalled_body),
        ("header-fields", "header-flood", a.header_conns, header_flood(MANY_HEADERS)),
        ("header-big", "header-flood", a.header_conns, header_flood(BIG_HEADER)),
        ("ws-ping", "ws-ping", a.ws_conns, ws_ping),
        ("pipeline-noread", "pipeline", a.pipeline_conns, pipeline_noread),
        ("pipeline-read", "pipeline", a.pipeline_conns, pipeline_read),
        ("idle", "idle", a.idle, idle),
    ]
    keep = set(a.only.split(",")) if a.only else {r[1] for r in rows}
    return [(name, n, body) for name, group, n, body in rows if keep & {name, group} and n > 0]


async def attacker(port: int, t: Tally, body: Body, a: argparse.Namespace) -> None:
    """One attacking connection, reconnecting whenever it ends."""
    await asyncio.sleep(random.uniform(0, 1))  # spread the connects over a second
    while True:
        await t.session(port, lambda sock: body(sock, t, a))


async def attack(port: int, tallies: list[Tally], a: argparse.Namespace, started: Callable) -> None:
    """Run every planned attack for --duration s, then cancel them all."""
    tasks = []
    for (_, n, body), t in zip(plan(a), tallies, strict=True):
        tasks += [asyncio.create_task(attacker(port, t, body, a)) for _ in range(n)]
    started()
    await asyncio.sleep(a.duration)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --------------------------------------------------------------------------- the server


def control_status(path: str, timeout: float = 2.0) -> dict | None:
    """devserve's `status` over its control socket (JSON lines), or None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(b'{"id": 1, "command": "status"}\n')
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                buf += chunk
        reply = json.loads(buf.partition(b"\n")[0])
    except (OSError, ValueError):
        return None
    return reply.get("result") if reply.get("ok") else None


class Server:
    """The server under test: its command, its process tree, what it says about itself."""

    def __init__(self, a: argparse.Namespace, port: int, tmp: str) -> None:
        self.kind, self.port = a.server, port
        self.control = os.path.join(tmp, "control.sock") if a.server == "devserve" else None
        self.log_path = os.path.join(tmp, "server.log")
        pin = ["taskset", "-c", a.server_cpus] if a.pin else []
        self.argv = pin + (self.devserve_argv(a) if self.control else self.uvicorn_argv())
        self.proc: subprocess.Popen | None = None

    def devserve_argv(self, a: argparse.Namespace) -> list[str]:
        return [
            *(os.path.join(REPO, ".venv", "bin", "python"), "-m", "devserver", APP),
            *("--app-dir", APP_DIR, "--host", HOST, "--port", str(self.port)),
            *("--prod", "--workers", "1", "--no-access-log", "--control", str(self.control)),
            *("--timeout-request-body", str(a.timeout_request_body)),
            *("--limit-connections", str(a.limit_connections)),
        ]

    def uvicorn_argv(self) -> list[str]:
        return [
            *(UVICORN, APP, "--app-dir", APP_DIR, "--host", HOST, "--port", str(self.port)),
            *("--no-access-log", "--log-level", "warning"),
        ]

    def start(self) -> None:
        env = dict(os.environ)
        if SNAPSHOT:
            env["PYTHONPATH"] = SNAPSHOT["dir"] + os.pathsep + env.get("PYTHONPATH", "")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=APP_DIR, env=env
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            with (
                contextlib.suppress(OSError, EOFBeforeEnd, ValueError, IndexError),
                socket.create_connection((HOST, self.port), timeout=1) as s,
            ):
                if exchange(s, GOOD_REQUESTS[0][0])[0] == 200 and self.pids()[1]:
                    return
            time.sleep(0.1)
        raise RuntimeError("server not ready after 60 s")

    def status(self) -> dict | None:
        return control_status(self.control) if self.control else None

    def pids(self, status: dict | None = None) -> tuple[int | None, list[int]]:
        """(supervisor pid or None, worker pids)."""
        assert self.proc is not None
        if not self.control:
            return None, [self.proc.pid]
        status = status or self.status()
        workers = [w["pid"] for w in (status or {}).get("workers", [])]
        return (status or {}).get("server", {}).get("pid", self.proc.pid), workers

    def stop(self) -> float:
        """SIGTERM; SIGKILL the tree after 35 s. Seconds it took (-1: killed)."""
        assert self.proc is not None
        tree = [self.proc, *psutil.Process(self.proc.pid).children(recursive=True)]
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(35)
            return time.monotonic() - t0
        except subprocess.TimeoutExpired:
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            self.proc.wait(10)
            return -1.0

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


# --------------------------------------------------------------------------- sampling


def server_sockets(port: int) -> dict[int, tuple[int, int]]:
    """The connections the kernel holds ESTABLISHED with `port` as their local port (accepted
    or still in the listen backlog), by the client's port: (bytes the server has written that
    the client has not read, bytes the client sent that the server has not read)."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                tx, rx = (int(x, 16) for x in fields[4].split(":"))
                out[int(fields[2].rsplit(":", 1)[1], 16)] = (tx, rx)
    return out


def queued(socks: dict[int, tuple[int, int]], ports: list[int]) -> tuple[int, int]:
    """Bytes queued in the kernel on the server's side of these client ports: (unread by the
    client, unread by the server)."""
    mine = [socks.get(p, (0, 0)) for p in ports]
    return sum(q[0] for q in mine), sum(q[1] for q in mine)


def proc_usage(pid: int | None) -> tuple[float | None, float | None]:
    """(RSS MiB, CPU seconds) of pid, or Nones."""
    if pid is None:
        return None, None
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            cpu = p.cpu_times()
            return p.memory_info().rss / 2**20, cpu.user + cpu.system
    except psutil.Error:
        return None, None


class Sampler(threading.Thread):
    """Every `interval` s: RSS and CPU of supervisor and worker, connections (control socket
    and kernel), every attack's open connections."""

    def __init__(self, server: Server, tallies: list[Tally], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.server, self.tallies, self.interval = server, tallies, interval
        self.samples: list[dict] = []
        self.worker_pids: list[int] = []
        self.stop_evt = threading.Event()

    def run(self) -> None:
        while not self.stop_evt.wait(self.interval):
            self.samples.append(self.sample())

    def sample(self) -> dict:
        t = time.monotonic()
        status = self.server.status()
        sup, workers = self.server.pids(status)
        workers = workers or self.worker_pids[-1:]
        self.worker_pids += [w for w in workers if w not in self.worker_pids]
        s: dict = {"t": t, "worker_pid": workers[0] if workers else None}
        s["supervisor_rss"], s["supervisor_cpu"] = proc_usage(sup)
        s["worker_rss"], s["worker_cpu"] = proc_usage(s["worker_pid"])
        socks = server_sockets(self.server.port)
        s["established"] = len(socks)
        s["attack_queues"] = {x.name: queued(socks, list(x.ports)) for x in self.tallies}
        if status:
            s["accepted"] = sum(w.get("connections", 0) for w in status["workers"])
            s["websockets"] = sum(w.get("websockets", 0) for w in status["workers"])
            s["worker_restarts"] = sum(w.get("restarts", 0) for w in status["workers"])
            s["statuses"] = [w.get("statuses") for w in status["workers"]]
        s["attack_open"] = {x.name: x.open for x in self.tallies}
        return s


# --------------------------------------------------------------------------- report


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def good_phases(log: list, t_start: float, t_end: float) -> list[dict]:
    """The well-behaved client's requests before, during and after the attack."""
    phases = []
    for name, lo, hi in (
        ("before", 0, t_start),
        ("attack", t_start, t_end),
        ("after", t_end, 1e18),
    ):
        rows = [e for e in log if lo <= e[0] < hi]
        kinds = Counter(e[2] for e in rows if e[2] != "ok")
        lat = sorted(e[1] * 1000 for e in rows if e[2] == "ok")
        phases.append(
            {
                "phase": name,
                "requests": len(rows),
                "ok": len(rows) - sum(kinds.values()),
                "failures": sum(n for k, n in kinds.items() if k not in RETRYABLE),
                "ka_eof_races": sum(n for k, n in kinds.items() if k in RETRYABLE),
                "kinds": dict(kinds),
                "p50_ms": statistics.median(lat) if lat else None,
                "p99_ms": lat[int(0.99 * (len(lat) - 1))] if lat else None,
                "max_ms": max((e[1] * 1000 for e in rows), default=None),
                "failure_times_s": [round(e[0] - t_start, 2) for e in rows if e[2] != "ok"][:50],
            }
        )
    return phases


def memory(samples: list[dict], t_start: float, t_end: float) -> dict:
    """RSS before the attack, its peak during it (and the recovery), and at the end; peak
    connections; the worker's CPU share during the attack."""
    before = [s for s in samples if s["t"] < t_start] or samples[:1]
    during = [s for s in samples if s["t"] >= t_start] or samples[-1:]
    inside = [s for s in samples if t_start <= s["t"] <= t_end]
    out: dict = {}
    for proc in ("supervisor", "worker"):
        vals = [s[f"{proc}_rss"] for s in during if s[f"{proc}_rss"] is not None]
        out[proc] = {
            "before_mib": before[-1][f"{proc}_rss"],
            "peak_mib": max(vals, default=None),
            "end_mib": samples[-1][f"{proc}_rss"],
        }
    cpu = [s["worker_cpu"] for s in inside if s["worker_cpu"] is not None]
    if len(inside) > 1 and len(cpu) == len(inside):
        out["worker_cpu_pct"] = 100 * (cpu[-1] - cpu[0]) / (inside[-1]["t"] - inside[0]["t"])
    out["peak_accepted"] = max((s.get("accepted", 0) for s in inside), default=None)
    out["peak_established"] = max((s["established"] for s in inside), default=None)
    out["worker_restarts"] = samples[-1].get("worker_restarts")
    return out


def tally_row(t: Tally, samples: list[dict]) -> dict:
    held = sorted(t.held_s)
    queues = [s["attack_queues"].get(t.name, (0, 0)) for s in samples]
    return {
        "peak_kernel_unread_by_server": max((q[1] for q in queues), default=0),
        "peak_kernel_unread_by_client": max((q[0] for q in queues), default=0),
        "attack": t.name,
        "conns": t.planned,
        "connects": t.connects,
        "connect_errors": dict(t.connect_errors),
        "peak_open": t.peak_open,
        "ends": dict(t.ends),
        "held_median_s": statistics.median(held) if held else None,
        "held_max_s": held[-1] if held else None,
        "statuses": dict(t.statuses),
        "counters": dict(t.counters),
    }


def markdown(doc: dict) -> str:
    a, m = doc["args"], doc["memory"]
    lines = [
        f"Soak of `{doc['server']}` at {doc['source']}: {a['duration']:g} s of attack "
        f"({', '.join(doc['attacks'])}), --timeout-request-body {a['timeout_request_body']:g}, "
        f"--limit-connections {a['limit_connections']}; well-behaved client: {a['good_conns']} "
        f"keep-alive connections, {a['good_timeout']:g} s timeout.",
        "",
        "| well-behaved client | requests | ok | failures | keep-alive EOF races | p50 ms | p99 ms "
        "| max ms | failure kinds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in doc["good"]:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(p["kinds"].items())) or "-"
        lines.append(
            f"| {p['phase']} | {p['requests']} | {p['ok']} | **{p['failures']}** "
            f"| {p['ka_eof_races']} | {fmt(p['p50_ms'])} | {fmt(p['p99_ms'])} "
            f"| {fmt(p['max_ms'])} | {kinds} |"
        )
    lines += ["", "| process | RSS before MiB | peak MiB | end MiB |", "|---|---|---|---|"]
    for proc in ("worker", "supervisor"):
        r = m[proc]
        lines.append(
            f"| {proc} | {fmt(r['before_mib'])} | **{fmt(r['peak_mib'])}** | {fmt(r['end_mib'])} |"
        )
    lines += [
        "",
        f"Peak connections: {m['peak_accepted']} open in the worker (control socket), "
        f"{m['peak_established']} ESTABLISHED on the port (kernel); worker CPU during the attack "
        f"{fmt(m.get('worker_cpu_pct'), 0)} %; worker restarts {m['worker_restarts']}; "
        f"worker pids seen {doc['worker_pids']}.",
        "",
        "| attack | conns | connects | peak open | how they ended "
        "| held median / max s | server answers | kernel queues at peak, KiB: unread by server "
        "/ by client | counters |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["attacks_detail"]:
        ends = ", ".join(f"{k} {n}" for k, n in sorted(r["ends"].items())) or "-"
        statuses = ", ".join(f"{k}: {n}" for k, n in sorted(r["statuses"].items())) or "-"
        counters = ", ".join(f"{k} {n:,}" for k, n in sorted(r["counters"].items()))
        errs = ", ".join(f"{k} {n}" for k, n in r["connect_errors"].items())
        errs = f" (errors: {errs})" if errs else ""
        lines.append(
            f"| {r['attack']} | {r['conns']} | {r['connects']}{errs} "
            f"| {r['peak_open']} | {ends} | {fmt(r['held_median_s'])} / {fmt(r['held_max_s'])} "
            f"| {statuses} | {r['peak_kernel_unread_by_server'] // 1024:,} / "
            f"{r['peak_kernel_unread_by_client'] // 1024:,} | {counters or '-'} |"
        )
    if doc["server_log_problems"]:
        lines += ["", f"Server log: {len(doc['server_log_problems'])} warning/error lines, first:"]
        lines += [f"    {x}" for x in doc["server_log_problems"][:5]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def start_good_client(a: argparse.Namespace, port: int) -> subprocess.Popen:
    argv = [sys.executable, os.path.abspath(__file__), "--good-client", "--port", str(port)]
    argv += ["--good-conns", str(a.good_conns), "--good-timeout", str(a.good_timeout)]
    argv += ["--good-pause", str(a.good_pause)]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def run(a: argparse.Namespace, tmp: str) -> dict:
    """Start the server, the well-behaved client and the sampler; attack; collect it all."""
    port = a.port or free_port()
    server = Server(a, port, tmp)
    source = devserve_source() if a.server == "devserve" else a.server
    server.start()
    tallies = [Tally(name, n) for name, n, _ in plan(a)]
    sampler, good = Sampler(server, tallies), start_good_client(a, port)
    marks: dict[str, float] = {}
    try:
        sampler.start()
        time.sleep(a.warmup)
        marks["start"] = time.monotonic()  # reset when every task exists
        asyncio.run(attack(port, tallies, a, lambda: marks.update(start=time.monotonic())))
        marks["end"] = time.monotonic()
        time.sleep(a.recovery)
    finally:
        out, _ = good.communicate(b"", timeout=30)
        sampler.stop_evt.set()
        sampler.join()
        shutdown_s = server.stop()
    log = server.log().splitlines()
    return {
        "server": a.server,
        "source": source,
        "commit": subprocess.run(
            ["git", "-C", REPO, "log", "--oneline", "-1"], capture_output=True, text=True
        ).stdout.strip(),
        "argv": server.argv,
        "args": {k: v for k, v in vars(a).items() if k != "good_client"},
        "attacks": [t.name for t in tallies],
        "good": good_phases(json.loads(out or b"[]"), marks["start"], marks["end"]),
        "memory": memory(sampler.samples, marks["start"], marks["end"]),
        "worker_pids": sampler.worker_pids,
        "attacks_detail": [tally_row(t, sampler.samples) for t in tallies],
        "shutdown_s": shutdown_s,
        "server_log_problems": [x for x in log if not x.startswith("INFO")],
        "samples": [{**s, "t": round(s["t"] - marks["start"], 2)} for s in sampler.samples],
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arg = ap.add_argument
    arg("--server", choices=("devserve", "uvicorn"), default="devserve")
    arg("--devserve-rev", help="run devserve's code as of this git revision (temp export)")
    arg("--duration", type=float, default=20.0, help="seconds of attack")
    arg("--warmup", type=float, default=3.0, help="s of the well-behaved client alone, before")
    arg("--recovery", type=float, default=3.0, help="s of the well-behaved client alone, after")
    arg("--timeout-request-body", type=float, default=5.0, help="devserve's option")
    arg("--limit-connections", type=int, default=2048, help="devserve's option")
    arg("--only", help=f"comma-separated attacks to run, of: {', '.join(ATTACKS)}")
    arg("--slowloris", type=int, default=200, help="slowloris connections")
    arg("--trickle", type=float, default=1.0, help="s between a slowloris' bytes")
    arg("--stalled", type=int, default=50, help="stalled-body connections")
    arg("--header-conns", type=int, default=2, help="connections per header-flood variant")
    arg("--ws-conns", type=int, default=5, help="WebSocket ping-flood connections")
    arg("--pipeline-conns", type=int, default=5, help="pipelining connections of each kind")
    arg("--idle", type=int, default=300, help="idle connections")
    arg("--good-conns", type=int, default=3, help="well-behaved keep-alive connections")
    arg("--good-timeout", type=float, default=5.0, help="s per socket operation")
    arg("--good-pause", type=float, default=0.02, help="s between a connection's requests")
    arg("--port", type=int, default=0)
    arg("--server-cpus", default="1")
    arg("--client-cpus", default="0")
    arg("--no-pin", dest="pin", action="store_false")
    arg("--out", help="JSON report path (default results/soak-<timestamp>.json)")
    arg("--no-json", action="store_true", help="print the table only")
    arg("--good-client", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.only and not set(a.only.split(",")) <= set(ATTACKS):
        ap.error(f"--only: attacks are {', '.join(ATTACKS)}")
    if a.server == "uvicorn" and not os.path.exists(UVICORN):
        ap.error(f"{UVICORN} not found (benchmarks/setup_peers.sh makes it)")
    return a


def main() -> None:
    a = parse_args()
    if a.good_client:
        good_client_main(a)
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.pin and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(c) for c in a.client_cpus.split(",")})
    else:
        a.pin = False
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if a.devserve_rev:
        take_snapshot(a.devserve_rev)
    tmp = tempfile.mkdtemp(prefix="soak-")
    try:
        doc = run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if SNAPSHOT:
            shutil.rmtree(SNAPSHOT["dir"], ignore_errors=True)
    print(markdown(doc))
    if not a.no_json:
        out = a.out or os.path.join(HERE, "results", time.strftime("soak-%Y%m%d-%H%M%S.json"))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

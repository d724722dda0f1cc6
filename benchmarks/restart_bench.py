#!/usr/bin/env python3
"""Worker spawn and rolling restart benchmark: devserve beside gunicorn+UvicornWorker and uvicorn.

For every round, every server is started fresh, in turn (A B C A B C ...), with 2 workers,
the server pinned to --server-cpus and this client to --client-cpus:

  1. cold start: spawn the command, poll GET / (a new connection each, every 5 ms) until the
     first 200; then wait until the full set of workers holds the listening socket
  2. load: --threads client threads (half keep-alive, half a new connection per request,
     --pause s between requests each); every answer names its worker (the x-worker-pid
     header of apps/asgi_hello_pid.py)
  3. after --steady s of load, SIGHUP to the root pid; the restart is done when every original
     worker pid is gone (exited or a zombie), a full set of new worker pids holds the listening
     socket, and each of those new workers has answered a request (load or a probe).
     Worker = a process of the server's tree, other than the root, that holds the listening
     socket (found through /proc), so the same rule applies to all servers.
  4. failed requests from the SIGHUP until --tail s after done: connection refused, reset,
     timeout, EOF, non-200. On a reused keep-alive connection, an EOF before any response
     byte is counted apart (`ka_eof_before_response`: the server closed an idle connection as
     the request went out, a race that clients retry); everything else is a hard failure.
  5. devserve only (servers whose template has {control}): per-worker spawn -> ready, by
     `scale +1` on the control socket, --spawns-per-round times, load stopped: the
     supervisor's own figure (its log line 'worker S (pid P, generation G) ready in N ms',
     from just after the fork to the worker's Ready message) and the figure seen from outside
     (scale command sent -> the control socket's status lists the new worker as ready, polled
     every 2 ms); then `scale -1` and wait for the extra worker to exit. The generation-2
     'ready in' lines logged during the restart under load are reported too.
  6. SIGTERM the root pid, SIGKILL leftovers of its tree by pid after 35 s.

Templates use {python} {bin} {repo} {port} {host} {app} {app_dir} {workers} {control}.
Run with the peers venv's interpreter (stdlib only; imports helpers from bench.py beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import (  # noqa: E402
    CLK_TCK,
    HOST,
    REPO,
    SNAPSHOT,
    _alive,
    _stat_fields,
    devserve_source,
    free_port,
    sys_cpu,
    take_snapshot,
    tree_pids,
    wait_quiet,
)
from bench import versions as dist_versions  # noqa: E402

APP_DIR = os.path.join(HERE, "apps")
APP = "asgi_hello_pid:app"
SERVERS = {
    "devserve": "{repo}/.venv/bin/devserve {app} --app-dir {app_dir} --host {host} --port {port} "
    "--prod --no-tui --workers {workers} --control {control} --no-access-log",
    "gunicorn+uvicorn": "{python} -m gunicorn -k uvicorn.workers.UvicornWorker -w {workers} "
    "-b {host}:{port} --log-level info {app}",
    "uvicorn": "{python} -m uvicorn {app} --host {host} --port {port} --workers {workers} "
    "--log-level info --no-access-log",
}
RETRYABLE = {"ka_eof_before_response"}
READY_RE = re.compile(r"worker (\d+) \(pid (\d+), generation (\d+)\) ready in (\d+) ms")
SERVING_RE = re.compile(r"restart: generation (\d+) serving after ([\d.]+)s")
REQ_KA = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


# --------------------------------------------------------------------------- HTTP client


class EOFBeforeEnd(Exception):
    """The peer closed the connection before the response was complete."""


class Conn:
    """A minimal HTTP/1.1 client connection that knows how many response bytes it has seen."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.responses = 0  # complete responses read on this connection
        self.got = 0  # bytes of the current response received so far
        self.body = b""  # the body of the last complete response

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFBeforeEnd
        self.got += len(chunk)
        return chunk

    def get(self, request: bytes) -> tuple[int, int, bool]:
        """(status, worker pid or 0, server wants to close)."""
        self.got = 0
        self.sock.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self._recv()
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        while len(body) < length:
            body += self._recv()
        self.responses += 1
        self.body = body
        close = headers.get(b"connection", b"").lower() == b"close"
        return status, int(headers.get(b"x-worker-pid", b"0") or 0), close

    def close(self) -> None:
        self.sock.close()


def classify(exc: BaseException, conn: Conn | None) -> str:
    """A short name for a failed request (see the module docstring)."""
    if conn is None:  # connect() failed
        if isinstance(exc, ConnectionRefusedError):
            return "refused"
        if isinstance(exc, TimeoutError):
            return "connect_timeout"
        return "connect_" + type(exc).__name__
    reused = "ka_" if conn.responses else ""
    where = "before_response" if conn.got == 0 else "mid_response"
    if isinstance(exc, EOFBeforeEnd):
        return f"{reused}eof_{where}"
    if isinstance(exc, TimeoutError):
        return f"timeout_{where}"
    if isinstance(exc, ConnectionResetError):
        return f"{reused}reset_{where}"
    if isinstance(exc, BrokenPipeError):
        return f"{reused}broken_pipe"
    return f"{reused}{type(exc).__name__}"


def fetch(
    port: int, conn: Conn | None, keep_alive: bool, timeout: float
) -> tuple[str, int, bytes, Conn | None]:
    """One GET on `conn`, or on a new connection when None: (outcome, worker pid or 0, body,
    the connection to reuse or None). Keep-alive or Connection: close; never raises."""
    pid, body = 0, b""
    try:
        if conn is None:
            conn = Conn(port, timeout)
        status, pid, close = conn.get(REQ_KA if keep_alive else REQ_CLOSE)
        outcome, body = ("ok" if status == 200 else f"http{status}"), conn.body
        if close or not keep_alive:
            conn.close()
            conn = None
    except (OSError, EOFBeforeEnd, ValueError, IndexError) as exc:
        outcome = classify(exc, conn)
        if conn is not None:
            conn.close()
            conn = None
    return outcome, pid, body, conn


def get_once(port: int, timeout: float) -> tuple[str, int]:
    """One GET on a new connection (Connection: close): (outcome, worker pid)."""
    outcome, pid, _, _ = fetch(port, None, False, timeout)
    return outcome, pid


class Load(threading.Thread):
    """GETs in a loop, on one keep-alive connection (reconnecting after a failure or a close)
    or on a new connection each; logs an entry per request (see entry())."""

    def __init__(self, port: int, keep_alive: bool, pause: float, timeout: float) -> None:
        super().__init__(daemon=True)
        self.port, self.keep_alive, self.pause, self.timeout = port, keep_alive, pause, timeout
        self.log: list[tuple] = []
        self.stop_evt = threading.Event()

    def entry(self, t0: float, outcome: str, pid: int, body: bytes) -> tuple:
        """What the log keeps of a request that started at t0 and just ended."""
        return (t0, time.monotonic(), outcome, pid)

    def run(self) -> None:
        conn: Conn | None = None
        while not self.stop_evt.is_set():
            t0 = time.monotonic()
            outcome, pid, body, conn = fetch(self.port, conn, self.keep_alive, self.timeout)
            self.log.append(self.entry(t0, outcome, pid, body))
            time.sleep(self.pause)
        if conn is not None:
            conn.close()


@contextlib.contextmanager
def under_load(root: int, threads: list[Load], res: dict, join_timeout: float) -> Iterator[None]:
    """Run the block with `threads` started; then stop and join them and put in `res` the CPU
    used meanwhile, in % of a core: by root's tree, by this client, and by everything else on
    the box (other processes: a disturbed trial is redone)."""
    busy0, srv0, cli0, t0 = sys_cpu()[0], tree_cpu_total(root), own_cpu(), time.monotonic()
    for t in threads:
        t.start()
    try:
        yield
    finally:
        for t in threads:
            t.stop_evt.set()
        for t in threads:
            t.join(join_timeout)
    busy, srv, cli = sys_cpu()[0] - busy0, tree_cpu_total(root) - srv0, own_cpu() - cli0
    span = time.monotonic() - t0
    res["server_cpu_pct"] = 100 * srv / span
    res["client_cpu_pct"] = 100 * cli / span
    res["other_cpu_pct"] = 100 * (busy - srv - cli) / span


def failures(window: list[tuple], t0: float) -> dict:
    """Counts of the failed requests among log entries (start, end, outcome, ...), times in the
    detail from t0: hard failures apart from the retryable keep-alive races."""
    kinds: dict[str, int] = {}
    for e in window:
        if e[2] != "ok":
            kinds[e[2]] = kinds.get(e[2], 0) + 1
    return {
        "requests_window": len(window),
        "hard_failures": sum(n for k, n in kinds.items() if k not in RETRYABLE),
        "ka_eof_races": sum(n for k, n in kinds.items() if k in RETRYABLE),
        "failure_kinds": kinds,
        "failures_detail": [
            (round(e[0] - t0, 4), round(e[1] - t0, 4), *e[2:]) for e in window if e[2] != "ok"
        ][:50],
        "max_request_ms": 1000 * max((e[1] - e[0] for e in window), default=0.0),
    }


def add_kinds(dicts: list[dict]) -> dict[str, int]:
    """The failure kinds of several trials or saves, added up."""
    total: dict[str, int] = {}
    for d in dicts:
        for k, n in d.items():
            total[k] = total.get(k, 0) + n
    return total


# --------------------------------------------------------------------------- processes


def listen_inodes(port: int) -> set[str]:
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        out.add(f"socket:[{fields[9]}]")
        except OSError:
            pass
    return out


def holds(pid: int, targets: set[str]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                return True
        except OSError:
            pass
    return False


def worker_pids(root: int, inodes: set[str]) -> set[int]:
    """Live processes of root's tree, other than root, that hold the listening socket."""
    return {p for p in tree_pids(root)[1:] if holds(p, inodes)}


def tree_cpu_total(root: int) -> float:
    """CPU seconds of root's tree, including descendants already reaped inside the tree
    (utime + stime + cutime + cstime of every live process), so workers that exit during a
    restart still count."""
    total = 0
    for p in tree_pids(root):
        st = _stat_fields(p)
        if st:
            total += sum(int(x) for x in st[11:15])
    return total / CLK_TCK


def own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def control(path: str, command: str, **args: object) -> dict:
    """One command on devserve's control socket (JSON lines, see devserver/control/schema.py)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(json.dumps({"id": 1, "command": command, **args}).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"control {command}: closed without an answer")
            buf += chunk
    reply = json.loads(buf.partition(b"\n")[0])
    if not reply.get("ok"):
        raise RuntimeError(f"control {command}: {reply.get('error')}")
    result: dict = reply["result"]
    return result


def stop_tree(proc: subprocess.Popen, timeout: float = 35.0) -> float:
    """SIGTERM the root, wait for the whole tree; SIGKILL leftovers by pid. Seconds (-1: killed)."""
    pids = tree_pids(proc.pid)
    t0 = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    while time.monotonic() - t0 < timeout:
        proc.poll()
        if proc.returncode is not None and not [p for p in pids if p != proc.pid and _alive(p)]:
            return time.monotonic() - t0
        time.sleep(0.01)
    for p in pids + tree_pids(proc.pid):
        if _alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    proc.wait(10)
    return -1.0


# --------------------------------------------------------------------------- one trial


class ServerTrial:
    """One server started once: start() it, measure(), then stop its tree and read its log;
    run() returns the results. Subclasses (here and in reload_bench.py) fill in the middle."""

    def __init__(self, name: str, template: str, rnd: int, a: argparse.Namespace, log_path: str):
        self.name, self.template, self.round, self.a = name, template, rnd, a
        self.res: dict = {"server": name, "round": rnd}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def run(self) -> dict:
        try:
            if self.start():
                self.measure()
        except Exception as exc:  # keep going with the other servers
            self.res["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if self.proc is not None:
                self.res["shutdown_s"] = stop_tree(self.proc)
            self.read_log()
        return self.res

    def start(self) -> bool:
        raise NotImplementedError

    def measure(self) -> None:
        raise NotImplementedError

    def launch(self, cwd: str, ready: Callable[[int], bool], **fields: object) -> bool:
        """Spawn the template (placeholders {python} {bin} {repo} {port} {host} and `fields`)
        in cwd, pinned to --server-cpus, output to the log; then poll ready(port) every 5 ms
        until it says yes (cold_start_s), at most 30 s."""
        a = self.a
        self.port = port = free_port()
        fields = {
            "python": a.python,
            "bin": os.path.dirname(a.python),
            "repo": REPO,
            "host": HOST,
            **fields,
        }
        quoted = {k: shlex.quote(str(v)) for k, v in fields.items()}
        argv = shlex.split(self.template.format(port=port, **quoted))
        if a.pin:
            argv = ["taskset", "-c", a.server_cpus, *argv]
        self.res["cmd"] = " ".join(argv).replace(str(port), "{port}")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if SNAPSHOT and "{repo}" in self.template:
            env["PYTHONPATH"] = SNAPSHOT["dir"]
        with open(self.log_path, "wb") as logf:
            self.t_launch = t0 = time.monotonic()
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        while time.monotonic() - t0 < 30:
            if self.proc.poll() is not None:
                self.res["error"] = f"exited early rc={self.proc.returncode}"
                return False
            if ready(port):
                break
            time.sleep(0.005)
        else:
            self.res["error"] = "not ready (no 200, or not the expected one) within 30 s"
            return False
        self.res["cold_start_s"] = time.monotonic() - t0
        return True

    def read_log(self) -> str:
        """The server's output (its last 20,000 characters kept in the results)."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        self.res["log"] = text[-20000:]
        return text


class Trial(ServerTrial):
    def __init__(self, name: str, template: str, rnd: int, a: argparse.Namespace, logdir: str):
        super().__init__(name, template, rnd, a, os.path.join(logdir, f"{name}-r{rnd}.log"))
        self.has_control = "{control}" in template
        self.control_path = os.path.join(logdir, f"{name}-r{rnd}.sock")

    def measure(self) -> None:
        self.restart()
        if self.has_control and self.a.spawns_per_round > 0:
            self.spawns()

    def start(self) -> bool:
        a = self.a
        ok = self.launch(
            APP_DIR,
            lambda port: get_once(port, 1.0)[0] == "ok",
            app=APP,
            app_dir=APP_DIR,
            workers=a.workers,
            control=self.control_path,
        )
        if not ok:
            return False
        self.inodes = listen_inodes(self.port)
        while len(worker_pids(self.proc.pid, self.inodes)) < a.workers:
            if time.monotonic() - self.t_launch > 30:
                self.res["error"] = "the workers never all held the listening socket"
                return False
            time.sleep(0.005)
        self.res["all_workers_s"] = time.monotonic() - self.t_launch
        return True

    def restart(self) -> None:
        a, root = self.a, self.proc.pid
        time.sleep(a.settle)
        threads = [Load(self.port, i % 2 == 0, a.pause, a.req_timeout) for i in range(a.threads)]
        with under_load(root, threads, self.res, a.req_timeout + 5):
            time.sleep(a.steady)
            old = worker_pids(root, self.inodes)
            self.res["old_pids"] = sorted(old)
            probes: list[tuple[float, float, str, int]] = []
            t_hup = time.monotonic()
            os.kill(root, signal.SIGHUP)
            t_gone = t_done = None
            new: set[int] = set()
            answered: set[int] = set()  # worker pids that answered since the SIGHUP
            seen = [len(t.log) for t in threads]
            next_probe = 0.0
            while time.monotonic() - t_hup < a.max_wait:
                now = time.monotonic()
                for i, t in enumerate(threads):
                    n = len(t.log)
                    answered.update(e[3] for e in t.log[seen[i] : n] if e[2] == "ok")
                    seen[i] = n
                live = worker_pids(root, self.inodes)
                if t_gone is None and not any(_alive(p) for p in old):
                    t_gone = now
                new = live - old
                if t_gone is not None and len(new) >= a.workers:
                    if now >= next_probe:  # make sure the new set answers, load or not
                        outcome, pid = get_once(self.port, a.req_timeout)
                        probes.append((now, time.monotonic(), outcome, pid))
                        if outcome == "ok":
                            answered.add(pid)
                        next_probe = time.monotonic() + 0.02
                    if new <= answered:
                        t_done = time.monotonic()
                        break
                time.sleep(0.005)
            time.sleep(a.tail)
        end = (t_done or t_hup + a.max_wait) + a.tail
        entries = [e for t in threads for e in t.log]
        window = [e for e in entries if e[1] >= t_hup and e[0] <= end]
        before = [e for e in entries if e[1] < t_hup]
        new_answers = [e[1] for e in window if e[2] == "ok" and e[3] not in old]
        self.res.update(
            {
                "restart_s": None if t_done is None else t_done - t_hup,
                "old_gone_s": None if t_gone is None else t_gone - t_hup,
                "first_new_answer_s": min(new_answers) - t_hup if new_answers else None,
                "new_pids": sorted(new),
                "requests_before": len(before),
                "failed_before": sum(1 for e in before if e[2] != "ok"),
                "load_rps": len(before) / a.steady if a.steady else None,
                "window_s": end - t_hup,
                **failures(window, t_hup),
                "probes": len(probes),
            }
        )
        if t_done is None:
            self.res["error"] = f"restart not done within {a.max_wait} s"

    def spawns(self) -> None:
        """scale +1 / -1 on the control socket, load stopped: per-worker spawn -> ready."""
        path, out = self.control_path, []
        time.sleep(0.5)
        for _ in range(self.a.spawns_per_round):
            before = {w["pid"] for w in control(path, "status")["workers"]}
            t0 = time.monotonic()
            control(path, "scale", workers="+1")
            pid = None
            while time.monotonic() - t0 < 30:
                for w in control(path, "status")["workers"]:
                    if w["pid"] not in before and w["state"] == "ready":
                        pid = w["pid"]
                if pid:
                    break
                time.sleep(0.002)
            t_ready = time.monotonic()
            control(path, "scale", workers="-1")
            while pid and _alive(pid) and time.monotonic() - t_ready < 30:
                time.sleep(0.01)
            out.append({"pid": pid, "external_ms": (t_ready - t0) * 1000 if pid else None})
            time.sleep(0.2)
        self.res["spawns"] = out

    def read_log(self) -> str:
        text = super().read_log()
        if not self.has_control:
            return text
        ready = {int(m[2]): (int(m[3]), float(m[4])) for m in READY_RE.finditer(text)}
        restarted = set(self.res.get("new_pids", []))  # not the workers of the scale cycles
        self.res["ready_ms_restart"] = [ms for p, (_, ms) in ready.items() if p in restarted]
        self.res["ready_ms_boot"] = [ms for gen, ms in ready.values() if gen == 1]
        m = SERVING_RE.search(text)
        self.res["serving_after_s"] = float(m[2]) if m else None
        for s in self.res.get("spawns", []):
            s["supervisor_ms"] = ready.get(s["pid"], (None, None))[1]
        return text


# --------------------------------------------------------------------------- report


def med(xs: list) -> tuple | None:
    xs = [x for x in xs if x is not None]
    return (statistics.median(xs), min(xs), max(xs), len(xs)) if xs else None


def fmt(t: tuple | None, digits: int = 2, n: bool = False) -> str:
    if t is None:
        return "n/a"
    s = f"{t[0]:.{digits}f} ({t[1]:.{digits}f}\u2013{t[2]:.{digits}f})"
    return s + (f", n={t[3]}" if n else "")


def versions(a: argparse.Namespace, dists: list[str]) -> dict:
    """Python, kernel, CPUs, the peers' versions (those of `dists` installed for --python),
    devserve's, and where devserve's code comes from."""
    v = {"python": platform.python_version(), "kernel": platform.release(), "cpus": os.cpu_count()}
    found = dist_versions(a.python, dists)
    v.update((d, found[d]) for d in dists if found.get(d))
    try:
        dv = [os.path.join(REPO, ".venv/bin/devserve"), "--version"]
        out = subprocess.run(dv, capture_output=True, text=True, timeout=30)
        v["devserve"] = out.stdout.strip().rpartition(" ")[2]
    except (OSError, subprocess.SubprocessError):
        pass
    v["devserve_source"] = devserve_source()
    return v


def report(results: list[dict], servers: dict, a: argparse.Namespace, info: dict) -> tuple:
    base = a.baseline if a.baseline in servers else None
    pin = f"server on CPU {a.server_cpus}, client on CPU {a.client_cpus}" if a.pin else "unpinned"
    lines = [
        f"Rolling restart (SIGHUP) of {a.workers} workers under load: {a.threads} client threads "
        f"({(a.threads + 1) // 2} keep-alive, {a.threads // 2} new connection per request), "
        f"{a.pause * 1000:.0f} ms pause between requests; {pin}; {a.rounds} rounds interleaved; "
        "median (min\u2013max). Restart = SIGHUP until every old worker pid is gone and every new "
        "worker has answered. Failures counted from SIGHUP to "
        f"{a.tail:.1f} s after the restart.",
        "",
        "| server | restart s | restart x "
        + (base or "-")
        + " | old workers gone s | hard failures / restart | keep-alive EOF races / restart "
        "| failure kinds (total) | requests in window | longest request ms | cold start s | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict = {}
    for name, tpl in servers.items():
        rs = [r for r in results if r["server"] == name]
        ratios = []
        for r in rs:
            b = next((x for x in results if x["server"] == base and x["round"] == r["round"]), None)
            if b and r.get("restart_s") and b.get("restart_s"):
                ratios.append(r["restart_s"] / b["restart_s"])
        kinds = add_kinds([r.get("failure_kinds", {}) for r in rs])
        s = {
            "template": tpl,
            "restart_s": med([r.get("restart_s") for r in rs]),
            "restart_ratio": med(ratios),
            "old_gone_s": med([r.get("old_gone_s") for r in rs]),
            "hard_failures": med([r.get("hard_failures") for r in rs]),
            "ka_eof_races": med([r.get("ka_eof_races") for r in rs]),
            "hard_failures_per_round": [r.get("hard_failures") for r in rs],
            "ka_eof_races_per_round": [r.get("ka_eof_races") for r in rs],
            "failure_kinds": kinds,
            "requests_window": med([r.get("requests_window") for r in rs]),
            "max_request_ms": med([r.get("max_request_ms") for r in rs]),
            "cold_start_s": med([r.get("cold_start_s") for r in rs]),
            "ok": sum(1 for r in rs if r.get("restart_s") is not None and not r.get("error")),
            "n": len(rs),
        }
        summary[name] = s
        per = ", ".join(str(x) for x in s["hard_failures_per_round"])
        per_ka = ", ".join(str(x) for x in s["ka_eof_races_per_round"])
        lines.append(
            f"| `{name}` | {fmt(s['restart_s'], 3)} | {fmt(s['restart_ratio'], 2)} "
            f"| {fmt(s['old_gone_s'], 3)} | {fmt(s['hard_failures'], 0)} [{per}] "
            f"| {fmt(s['ka_eof_races'], 0)} [{per_ka}] "
            f"| {', '.join(f'{k} {n}' for k, n in sorted(kinds.items())) or '-'} "
            f"| {fmt(s['requests_window'], 0)} | {fmt(s['max_request_ms'], 0)} "
            f"| {fmt(s['cold_start_s'], 3)} | {s['ok']}/{s['n']} |"
        )
    dev = [r for r in results if r["server"] in servers and "{control}" in servers[r["server"]]]
    if dev:
        sup = [s.get("supervisor_ms") for r in dev for s in r.get("spawns", [])]
        ext = [s.get("external_ms") for r in dev for s in r.get("spawns", [])]
        under = [ms for r in dev for ms in r.get("ready_ms_restart", [])]
        boot = [ms for r in dev for ms in r.get("ready_ms_boot", [])]
        serving = [r.get("serving_after_s") for r in dev]
        summary["_spawn"] = {
            "supervisor_ms": med(sup),
            "external_ms": med(ext),
            "restart_ready_ms": med(under),
            "boot_ready_ms": med(boot),
            "serving_after_s": med(serving),
            "goal_ms": 100,
        }
        names = ", ".join(sorted({r["server"] for r in dev}))
        where = f"server on CPU {a.server_cpus}" if a.pin else "unpinned"
        lines += [
            "",
            f"Per-worker spawn → ready ({names}, hello app, {where}), ms, "
            "median (min\u2013max), n:",
            "",
            "| measured | how | ms |",
            "|---|---|---|",
            *(
                f"| {what} | {how} | {fmt(t, digits, True)} |"
                for what, how, t, digits in (
                    (
                        "spawn → ready, idle",
                        "supervisor log 'ready in N ms' after `scale +1`",
                        med(sup),
                        0,
                    ),
                    (
                        "spawn → ready, idle, from outside",
                        "`scale +1` sent → status lists it ready (2 ms polls)",
                        med(ext),
                        1,
                    ),
                    (
                        "spawn → ready, during the restart under load",
                        "supervisor log, generation 2",
                        med(under),
                        0,
                    ),
                    ("spawn → ready, first boot", "supervisor log, generation 1", med(boot), 0),
                    (
                        "restart: SIGHUP → new generation serving",
                        "supervisor log 'serving after'",
                        med([x * 1000 if x is not None else None for x in serving]),
                        0,
                    ),
                )
                if t is not None
            ),
        ]
    vtxt = ", ".join(f"{k} {v}" for k, v in info.items())
    lines += ["", f"Versions: {vtxt}.", "", "Commands:", ""]
    lines += [f"- `{n}`: `{t}`" for n, t in servers.items()]
    return "\n".join(lines) + "\n", summary


def say(line: str) -> None:
    """A progress line, on stderr."""
    print(line, file=sys.stderr, flush=True)


def add_common_args(ap: argparse.ArgumentParser, **defaults: object) -> None:
    """The options restart_bench.py and reload_bench.py share; `defaults` (by dest) change
    some of the defaults."""
    d: dict = {
        "rounds": 5,
        "threads": 4,
        "pause": 0.002,
        "settle": 1.0,
        "steady": 1.5,
        "tail": 1.0,
        "max_wait": 60.0,
        "retries": 2,
        **defaults,
    }
    ap.add_argument("--only", help="comma-separated server names to keep")
    ap.add_argument("--skip", help="comma-separated server names to leave out")
    ap.add_argument("--list", action="store_true", help="print the server templates and exit")
    ap.add_argument(
        "--rounds", type=int, default=d["rounds"], help="starts per server, interleaved"
    )
    ap.add_argument(
        "--threads", type=int, default=d["threads"], help="load threads (half keep-alive)"
    )
    ap.add_argument(
        "--pause", type=float, default=d["pause"], help="s between requests, per thread"
    )
    ap.add_argument("--req-timeout", type=float, default=5.0, help="per-request timeout (s)")
    ap.add_argument(
        "--settle", type=float, default=d["settle"], help="s after the first 200, before the load"
    )
    ap.add_argument(
        "--steady",
        type=float,
        default=d["steady"],
        help="s of clean load before a SIGHUP or a save",
    )
    ap.add_argument(
        "--tail",
        type=float,
        default=d["tail"],
        help="s of counting failures after the restart or the first new response",
    )
    ap.add_argument(
        "--max-wait",
        type=float,
        default=d["max_wait"],
        help="give up on a restart or a reload after (s)",
    )
    ap.add_argument("--server-cpus", default="1")
    ap.add_argument("--client-cpus", default="0")
    ap.add_argument("--no-pin", dest="pin", action="store_false")
    ap.add_argument(
        "--baseline", default="uvicorn", help="restart or reload duration ratios against it"
    )
    ap.add_argument("--quiet-pct", type=float, default=15.0, help="wait for a quieter box first")
    ap.add_argument(
        "--max-other-cpu",
        type=float,
        default=15.0,
        help="redo a trial when other processes used more than this %% of a core during it",
    )
    ap.add_argument("--retries", type=int, default=d["retries"], help="redos of a disturbed trial")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the peers")
    ap.add_argument("--out", help="output prefix (default results/<benchmark>-<timestamp>)")
    ap.add_argument(
        "--devserve-rev",
        help="run devserve's code as of this git revision (e.g. HEAD), exported to a temp dir, "
        "instead of the working tree, which others may be editing during the run",
    )


def pick(servers: dict, a: argparse.Namespace) -> dict:
    """The servers left by --only and --skip."""
    if a.only:
        keep = [x.strip() for x in a.only.split(",")]
        servers = {k: v for k, v in servers.items() if k in keep}
    if a.skip:
        drop = {x.strip() for x in a.skip.split(",")}
        servers = {k: v for k, v in servers.items() if k not in drop}
    return servers


def prepare(a: argparse.Namespace, dists: list[str]) -> dict:
    """Pin this client, turn SIGTERM into KeyboardInterrupt (a trial's finally stops its
    server), take the --devserve-rev snapshot; the versions (see versions())."""
    if a.pin and (os.cpu_count() or 1) < 2:
        say("one CPU only: not pinning")
        a.pin = False
    if a.pin:
        os.sched_setaffinity(0, {int(c) for c in a.client_cpus.split(",")})

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)  # even when started in the background
    if a.devserve_rev:
        take_snapshot(a.devserve_rev)
    return versions(a, dists)


def run_rounds(
    servers: dict,
    a: argparse.Namespace,
    info: dict,
    trial: Callable[[str, object, int], dict],
    line: Callable[[dict], str],
    quiet_window: float = 1.0,
) -> list[dict]:
    """--rounds rounds, every server in turn in each: trial(name, spec, round) after a quiet
    box, redone (--retries) when other processes were busy during it; line(result) is printed
    after each. Drops the --devserve-rev snapshot at the end; notes in info the run's duration
    and whether devserve's code changed during it."""
    results = []
    t_run = time.monotonic()
    try:
        for rnd in range(1, a.rounds + 1):
            for name, spec in servers.items():
                for attempt in range(a.retries + 1):
                    waited = wait_quiet(a.quiet_pct, window=quiet_window)
                    source = devserve_source()
                    r = trial(name, spec, rnd)
                    r.update(waited_quiet_s=waited, devserve_source=source, attempt=attempt)
                    other = r.get("other_cpu_pct")
                    if other is None or other <= a.max_other_cpu or attempt == a.retries:
                        break
                    say(
                        f"r{rnd} {name}: {other:.0f} % of a core busy with other processes "
                        "during the trial; redoing it"
                    )
                results.append(r)
                say(line(r) + (f" ERROR {r['error']}" if r.get("error") else ""))
    finally:
        if SNAPSHOT:
            shutil.rmtree(SNAPSHOT["dir"], ignore_errors=True)
    sources = list(dict.fromkeys(r["devserve_source"] for r in results))
    if len(sources) > 1:
        info["devserve_source"] = " -> ".join(sources) + " (CHANGED during the run)"
    info["run_s"] = round(time.monotonic() - t_run)
    return results


def write_results(
    a: argparse.Namespace, name: str, md: str, info: dict, summary: dict, results: list[dict]
) -> None:
    """Print the report and write it to --out (default results/<name>-<timestamp>) .md and
    .json, the JSON with every trial's results."""
    print(md)
    out = a.out or os.path.join(HERE, "results", f"{name}-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".md", "w") as f:
        f.write(md)
    with open(out + ".json", "w") as f:
        doc = {"args": vars(a), "versions": info, "summary": summary, "results": results}
        json.dump(doc, f, indent=1, default=str)
    say(f"wrote {out}.md and {out}.json")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--server", action="append", help="NAME=TEMPLATE: replace NAME's template, or add NAME"
    )
    add_common_args(ap)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--spawns-per-round", type=int, default=4, help="devserve scale +1/-1 cycles")
    ap.add_argument("--keep-logs", action="store_true", help="keep the server logs")
    a = ap.parse_args()

    servers = dict(SERVERS)
    for spec in a.server or []:
        k, _, v = spec.partition("=")
        servers[k.strip()] = v.strip()
    servers = pick(servers, a)
    if a.list or not servers:
        for k, v in servers.items():
            print(f"{k}: {v}")
        return
    info = prepare(a, ["uvicorn", "gunicorn"])
    logdir = tempfile.mkdtemp(prefix="restart-bench-", dir="/tmp")

    def line(r: dict) -> str:
        sp = [s.get("supervisor_ms") for s in r.get("spawns", [])]
        return (
            f"r{r['round']} {r['server']:18s} restart={r.get('restart_s')}"
            f" old_gone={r.get('old_gone_s')} hard={r.get('hard_failures')}"
            f" ka_eof={r.get('ka_eof_races')} kinds={r.get('failure_kinds')}"
            f" window={r.get('requests_window')} max_ms={r.get('max_request_ms')}"
            f" cold={r.get('cold_start_s')} other_cpu={r.get('other_cpu_pct')}"
            + (f" ready_ms={r.get('ready_ms_restart')} spawns_ms={sp}" if sp else "")
        )

    try:
        results = run_rounds(
            servers, a, info, lambda name, tpl, rnd: Trial(name, tpl, rnd, a, logdir).run(), line
        )
    finally:
        if a.keep_logs:
            say(f"server logs kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    md, summary = report(results, servers, a, info)
    write_results(a, "restart", md, info, summary, results)


if __name__ == "__main__":
    main()

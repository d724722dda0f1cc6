#!/usr/bin/env python3
"""Interleaved benchmark harness for ASGI/WSGI servers (stdlib only + wrk or h2load + taskset).

For every round, every server is started fresh, in the order given (A B C A B C ...):

  1. spawn the server command (optionally `taskset -c SERVER_CPUS`), start the clock
  2. poll GET PATH until it answers 200      -> cold start (spawn -> first 200)
  3. check the body (expect / expect_len)    -> verified
  4. settle, read RSS/PSS over the process tree via /proc -> idle memory
  5. warm-up load (same client, shorter)
  6. measured load: wrk (http), h2load (h2load: HTTP/2 prior knowledge, or HTTP/1.1 with
     --h1) or ws_client.py (ws), client optionally pinned
     (`taskset -c CLIENT_CPUS`); server CPU time over the window is read from /proc
  7. read RSS/PSS again                      -> memory after load
  8. SIGTERM the root pid, time until root and every descendant are gone
     (SIGKILL by pid after --shutdown-timeout, recorded as killed)

Reports medians with min-max over rounds, and throughput as a ratio to the
baseline server measured in the same round.  Writes <out>.md and <out>.json.

Command templates (python str.format placeholders):
  {python}  interpreter running this script (or --python)
  {bin}     directory of {python} (console scripts of that venv)
  {port}    free TCP port chosen per start     {host}  127.0.0.1
  {app}     module:attr, e.g. asgi_hello:app   {module} module part only
  {workers} --workers value (default 1)        {app_dir} directory with the apps
  {repo}    the project root (parent of this benchmarks/ directory), e.g. {repo}/.venv/bin/devserve
  {control} a fresh path for a control socket, per start (in the log directory)
  {server_cpus} {client_cpus}  the suite's CPU lists (e.g. to pin a sidecar process)

A server whose log holds a line `BENCH-SIDECAR {json}` (benchmarks/subscriber.py writes one) gets
it checked after the stop: the JSON's "times" (CLOCK_MONOTONIC of each message it got) must cover
the measured window, with no gap over the suite's "sidecar_max_gap" seconds (1.5), else the trial fails.

Servers are started with cwd={app_dir}, so relative paths in a template resolve there: use {repo}.

In suites.json a server may be an object instead of a template string:
  {"cmd": TEMPLATE, "client_args": "--h1", "probe": "http1"}
client_args go to the load client after the suite's own (h2load: a later -c/-m wins); probe is how
readiness and the body are checked: "http1" (stdlib http.client) or "h2c" (curl
--http2-prior-knowledge, for servers that speak only HTTP/2 on the port); default: the suite's.
On the command line: --client-args NAME=ARGS.

Examples:
  python bench.py --suite hello                       # suites from suites.json
  python bench.py --suite hello --server 'devserve=devserve {app} --port {port} --prod'
  python bench.py --app asgi_hello --server 'uvicorn={python} -m uvicorn {app} --port {port}' \
                  --server 'granian={bin}/granian --interface asgi --port {port} {app}'
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import http.client
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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(HERE, "suites.json")
DEFAULT_APP_DIR = os.path.join(HERE, "apps")
REPO = os.path.dirname(HERE)  # the project root (benchmarks/ lives directly under it)
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"  # never anything else

DEFAULTS = {
    "mode": "http",            # http (wrk) | h2load | ws
    "app": "asgi_hello:app",
    "path": "/",
    "expect": None,            # substring the body must contain
    "expect_len": None,        # exact body length
    "rounds": 5,
    "duration": 10,            # seconds of measured wrk load
    "warmup": 3,               # seconds of warm-up wrk load
    "connections": 64,
    "threads": 1,
    "pin": True,               # pin server to server_cpus, client to client_cpus
    "server_cpus": "1",
    "client_cpus": "0",
    "workers": 1,
    "baseline": "uvicorn",
    "settle": 1.0,             # seconds between first 200 and idle RSS read
    "ready_timeout": 30.0,
    "shutdown_timeout": 35.0,
    "prime": True,             # one untimed start/stop per server before round 1
    "ws_conns": 32,
    "ws_msgs": 1000,
    "ws_size": 32,
    "ws_warmup_msgs": 200,
    "ws_timeout": 120,
    "ws_raw": False,
    "max_other_cpu": 15.0,     # a trial with more foreign CPU load (% of a core) than this is redone
    "retries": 2,              # ... at most this many times, after waiting for a quiet box
    "sidecar_max_gap": 1.5,    # seconds a sidecar (subscriber.py) may go without a message in the window
    "quiet_pct": 15.0,         # wait before each trial until the box is below this busy % (of a core)
    "probe": "http1",          # readiness/body check: http1 (http.client) | h2c (curl --http2-prior-knowledge)
    "h2_conns": 10,            # h2load -c (mode h2load)
    "h2_streams": 10,          # h2load -m: concurrent streams per connection (pipelined requests with --h1)
    "servers": {},
}


# --------------------------------------------------------------------------- /proc helpers

def _stat_fields(pid: int):
    """Fields of /proc/PID/stat from field 3 (state) on, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def _children_map():
    m: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = _stat_fields(int(d))
        if st is None:
            continue
        m.setdefault(int(st[1]), []).append(int(d))
    return m


def _alive(pid: int) -> bool:
    st = _stat_fields(pid)
    return st is not None and st[0] not in ("Z", "X")


def tree_pids(root: int) -> list[int]:
    """root and all its live descendants (zombies excluded), root first."""
    m = _children_map()
    out, i = [root], 0
    while i < len(out):
        out.extend(m.get(out[i], []))
        i += 1
    return [p for p in out if _alive(p)]


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
        return " ".join(p.decode(errors="replace") for p in parts if p)[:120]
    except OSError:
        return "?"


def mem_snapshot(root: int) -> dict:
    procs = []
    for p in tree_pids(root):
        procs.append({"pid": p, "rss_kb": _status_kb(p, "VmRSS"), "pss_kb": _pss_kb(p),
                      "cmd": _comm(p)})
    return {
        "rss_mib": sum(x["rss_kb"] for x in procs) / 1024.0,
        "pss_mib": sum(x["pss_kb"] for x in procs) / 1024.0,
        "nprocs": len(procs),
        "procs": procs,
    }


def tree_cpu_by_pid(root: int) -> dict[int, float]:
    out = {}
    for p in tree_pids(root):
        st = _stat_fields(p)
        if st:
            out[p] = (int(st[11]) + int(st[12])) / CLK_TCK  # utime + stime (fields 14, 15)
    return out


def tree_cpu_seconds(root: int) -> float:
    return sum(tree_cpu_by_pid(root).values())


# --------------------------------------------------------------------------- helpers

def sys_cpu() -> tuple[float, float]:
    """(busy seconds, steal seconds) summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def wait_quiet(max_busy_pct: float, window: float = 1.0, max_wait: float = 600.0) -> float:
    """Block until the whole box is nearly idle (busy < max_busy_pct of one core over `window`),
    e.g. while another session's load runs; returns seconds waited (gives up after max_wait)."""
    t0 = time.monotonic()
    while True:
        b0 = sys_cpu()[0]
        time.sleep(window)
        busy = 100.0 * (sys_cpu()[0] - b0) / window
        if busy < max_busy_pct or time.monotonic() - t0 > max_wait:
            return time.monotonic() - t0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 1.0):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def h2c_get(port: int, path: str, timeout: float = 1.0):
    """GET over cleartext HTTP/2 with prior knowledge (curl), for servers that answer nothing else
    on the port (granian --http 2). Raises OSError unless the answer came over HTTP/2."""
    argv = ["curl", "-sS", "--http2-prior-knowledge", "--max-time", str(timeout), "-o", "-",
            "-w", "\n%{http_code} %{http_version}", f"http://{HOST}:{port}{path}"]
    p = subprocess.run(argv, capture_output=True, timeout=timeout + 5)
    body, _, tail = p.stdout.rpartition(b"\n")
    if p.returncode != 0:
        raise OSError(p.stderr.decode(errors="replace").strip())
    code, version = tail.decode().split()
    if version != "2":
        raise OSError(f"answered over HTTP/{version}, not HTTP/2")
    return int(code), body


def _dur_ms(s: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", s.strip())
    if not m:
        raise ValueError(s)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}[m.group(2)]


def _size_mib(num: str, unit: str) -> float:
    return float(num) * {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 2**20}[unit]


def parse_wrk(out: str) -> dict:
    r: dict = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    r["mib_per_s"] = _size_mib(m.group(1), m.group(2)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+)(\w+) read", out)
    if m:
        r["requests"] = int(m.group(1))
        r["elapsed_s"] = _dur_ms(m.group(2)) / 1000
    m = re.search(r"Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)", out)
    if m:
        r["lat_avg_ms"], r["lat_stdev_ms"], r["lat_max_ms"] = (_dur_ms(m.group(i)) for i in (1, 2, 3))
    for pct, val in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)\s*$", out, re.M):
        r[f"p{pct}_ms"] = _dur_ms(val)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["sock_err"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    r["errors"] = r["non2xx"] + sum(r["sock_err"].values())
    return r


def parse_h2load(out: str) -> dict:
    """h2load's summary: req/s, request counts, status classes, and its `time for request` row
    (min/max/mean/sd over all requests; the percentiles come from --log-file, see h2load_latency)."""
    r: dict = {}
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s, ([\d.]+)(\w+)/s", out)
    if m:
        r["elapsed_s"], r["rps"] = float(m.group(1)), float(m.group(2))
        r["mib_per_s"] = _size_mib(m.group(3), m.group(4))
    else:
        r["rps"] = None
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    if m:
        for k, v in zip(("requests", "started", "done", "succeeded", "failed", "errored", "timeout"),
                        map(int, m.groups())):
            r[k] = v
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        r["status"] = dict(zip(("2xx", "3xx", "4xx", "5xx"), map(int, m.groups())))
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        r["lat_min_ms"], r["lat_max_ms"], r["lat_avg_ms"], r["lat_stdev_ms"] = (
            _dur_ms(m.group(i)) for i in (1, 2, 3, 4))
    m = re.search(r"Application protocol: (\S+)", out)
    r["protocol"] = m.group(1) if m else None
    st = r.get("status", {})
    r["non2xx"] = st.get("3xx", 0) + st.get("4xx", 0) + st.get("5xx", 0)
    r["errors"] = r.get("failed", 0) + r.get("errored", 0) + r.get("timeout", 0) + r["non2xx"]
    return r


def h2load_latency(path: str) -> dict:
    """p50/p90/p99 (nearest rank) of the per-request times in an h2load --log-file
    (start us, status, us until the end of the response; status -1 for a failed stream)."""
    us = []
    with open(path) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] != "-1":
                us.append(int(parts[2]))
    if not us:
        return {}
    us.sort()
    return {f"p{q}_ms": us[min(len(us) - 1, max(0, -(-len(us) * q // 100) - 1))] / 1000.0
            for q in (50, 90, 99)} | {"logged_requests": len(us)}


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _span(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else (None, None)


# --------------------------------------------------------------------------- one trial

class Trial:
    def __init__(self, suite: dict, name: str, template: str, round_no: int, args, log_dir: str):
        self.s, self.name, self.template, self.round = suite, name, template, round_no
        self.args, self.log_dir = args, log_dir
        self.opts = suite.get("server_opts", {}).get(name, {})  # client_args, probe
        self.res: dict = {"server": name, "round": round_no}
        self.proc = None

    def _cmd(self, port) -> list[str]:
        py = self.args.python
        app = self.s["app"]
        fmt = {
            "python": shlex.quote(py), "bin": shlex.quote(os.path.dirname(py)), "port": port,
            "host": HOST, "app": app, "module": app.split(":")[0], "workers": self.s["workers"],
            "app_dir": shlex.quote(self.s["app_dir"]), "repo": shlex.quote(REPO),
            "control": shlex.quote(self.control_path),
            "server_cpus": self.s.get("server_cpus") or "", "client_cpus": self.s.get("client_cpus") or "",
        }
        argv = shlex.split(self.template.format(**fmt))
        if self.s["pin"] and self.s.get("server_cpus"):
            argv = ["taskset", "-c", str(self.s["server_cpus"])] + argv
        elif not self.s["pin"]:
            argv = ["taskset", "-c", f"0-{os.cpu_count() - 1}"] + argv  # undo harness pinning
        return argv

    def _client_prefix(self) -> list[str]:
        if self.s["pin"] and self.s.get("client_cpus"):
            return ["taskset", "-c", str(self.s["client_cpus"])]
        return []

    def start(self) -> bool:
        port = free_port()
        self.port = port
        self.control_path = os.path.join(self.log_dir, f"{self.name}-r{self.round}.sock")
        if os.path.exists(self.control_path):
            os.unlink(self.control_path)  # left by an earlier attempt of this trial
        argv = self._cmd(port)
        self.res["cmd"] = " ".join(argv).replace(str(port), "{port}")
        self.log_path = os.path.join(self.log_dir, f"{self.name}-r{self.round}.log")
        logf = open(self.log_path, "wb")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if SNAPSHOT:
            env["PYTHONPATH"] = SNAPSHOT["dir"]  # devserver/ as of --devserve-rev, before the editable one
        self.res["devserve_source"] = devserve_source()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=self.s["app_dir"], stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        logf.close()
        deadline = t0 + self.s["ready_timeout"]
        body = None
        get = h2c_get if self.opts.get("probe", self.s["probe"]) == "h2c" else http_get
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.res["error"] = f"exited early rc={self.proc.returncode}"
                return False
            try:
                status, body = get(port, self.s["path"], timeout=1.0)
                if status == 200:
                    break
            except (OSError, http.client.HTTPException, subprocess.TimeoutExpired):
                pass
            time.sleep(0.005)
        else:
            self.res["error"] = "not ready before timeout"
            return False
        self.res["cold_start_s"] = time.monotonic() - t0
        ok = True
        if self.s.get("expect") is not None:
            ok = ok and self.s["expect"].encode() in body
        if self.s.get("expect_len") is not None:
            ok = ok and len(body) == int(self.s["expect_len"])
        self.res["verified"] = ok
        self.res["body_len"] = len(body)
        return True

    # ---- load generators
    def _wrk(self, seconds: float) -> tuple[str, float]:
        url = f"http://{HOST}:{self.port}{self.s['path']}"
        argv = self._client_prefix() + ["wrk", f"-t{self.s['threads']}", f"-c{self.s['connections']}",
                                        f"-d{int(seconds)}s", "--latency", url]
        self.res["client_cmd"] = " ".join(argv)
        c0 = _children_cpu()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        return p.stdout + p.stderr, _children_cpu() - c0

    def _h2load(self, seconds: float, log_file: str | None = None) -> tuple[str, float]:
        url = f"http://{HOST}:{self.port}{self.s['path']}"
        argv = self._client_prefix() + ["h2load", "-t1", f"-c{self.s['h2_conns']}", f"-m{self.s['h2_streams']}",
                                        f"-D{int(seconds)}"]
        c, m = self.s["h2_conns"], self.s["h2_streams"]  # client_args may use {h2_conns} {h2_streams} {h2_total}
        extra = self.opts.get("client_args", "").format(h2_conns=c, h2_streams=m, h2_total=c * m)
        argv += shlex.split(extra)  # after -c/-m: h2load takes the last one
        if log_file:
            argv.append(f"--log-file={log_file}")
        argv.append(url)
        self.res["client_cmd"] = " ".join(argv)
        c0 = _children_cpu()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        return p.stdout + p.stderr, _children_cpu() - c0

    def _h2load_results(self, out: str, log_file: str) -> None:
        """h2load's summary plus percentiles from its per-request log (read after the window, so
        this process's parsing does not count as foreign CPU load), and a check that it spoke the
        protocol it was meant to (h2c, or http/1.1 with --h1)."""
        self.res["h2load_tail"] = out[out.find("finished in"):] if "finished in" in out else out[-2000:]
        self.res.update(parse_h2load(out))
        try:
            self.res.update(h2load_latency(log_file))
            os.unlink(log_file)  # ~30 bytes a request; the percentiles are kept
        except OSError:
            pass
        want = "http/1.1" if "--h1" in shlex.split(self.opts.get("client_args", "")) else "h2c"
        if self.res.get("protocol") != want:
            self.res["error"] = f"h2load spoke {self.res.get('protocol')}, not {want}"
        elif not self.res.get("done"):
            self.res["error"] = "h2load: no request done"

    def _ws(self, msgs: int) -> tuple[dict, float]:
        url = f"ws://{HOST}:{self.port}/"
        argv = self._client_prefix() + [self.args.client_python, os.path.join(HERE, "ws_client.py"),
                                        "--url", url, "--conns", str(self.s["ws_conns"]),
                                        "--msgs", str(msgs), "--size", str(self.s["ws_size"]),
                                        "--timeout", str(self.s["ws_timeout"]),
                                        "--cpu-pid", str(self.proc.pid)] + (["--raw"] if self.s.get("ws_raw") else [])
        self.res["client_cmd"] = " ".join(argv)
        c0 = _children_cpu()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=self.s["ws_timeout"] + 30)
        cpu = _children_cpu() - c0
        try:
            return json.loads(p.stdout.strip().splitlines()[-1]), cpu
        except Exception:
            return {"error": (p.stdout + p.stderr)[-2000:]}, cpu

    def load(self):
        time.sleep(self.s["settle"])
        self.res["mem_idle"] = mem_snapshot(self.proc.pid)
        if self.s["mode"] == "ws":
            self._ws(self.s["ws_warmup_msgs"])
            r, _ = self._ws(self.s["ws_msgs"])  # CPU figures measured by the client over its window
            self.res.update(r)
            self.res["rps"] = r.get("msgs_per_s")
        else:
            h2 = self.s["mode"] == "h2load"
            if self.s["warmup"] > 0:
                (self._h2load if h2 else self._wrk)(self.s["warmup"])
            by0, sys0 = tree_cpu_by_pid(self.proc.pid), sys_cpu()
            w0 = time.monotonic()
            log_file = os.path.join(self.log_dir, f"{self.name}-r{self.round}.h2load.tsv")
            out, ccpu = self._h2load(self.s["duration"], log_file) if h2 else self._wrk(self.s["duration"])
            self.res["window"] = [w0, time.monotonic()]  # CLOCK_MONOTONIC, as a sidecar's times
            by1, sys1 = tree_cpu_by_pid(self.proc.pid), sys_cpu()
            cpu0, cpu1 = sum(by0.values()), sum(by1.values())
            if h2:
                self._h2load_results(out, log_file)
            else:
                self.res["wrk_raw"] = out
                self.res.update(parse_wrk(out))
            dur = self.res.get("elapsed_s") or self.s["duration"]
            self.res["server_cpu_pct"] = 100.0 * (cpu1 - cpu0) / dur
            # per process, root first: shows whether the load was spread over the workers
            self.res["cpu_by_proc_pct"] = [round(100.0 * (by1[p] - by0.get(p, 0.0)) / dur) for p in by1]
            self.res["client_cpu_pct"] = 100.0 * ccpu / dur
            # everything else busy on the box in the window (other processes, softirq not charged to us)
            self.res["other_cpu_pct"] = 100.0 * ((sys1[0] - sys0[0]) - (cpu1 - cpu0) - ccpu) / dur
            self.res["steal_pct"] = 100.0 * (sys1[1] - sys0[1]) / dur
        self.res["mem_after"] = mem_snapshot(self.proc.pid)

    def stop(self):
        if self.proc is None:
            return
        pids = tree_pids(self.proc.pid)
        t0 = time.monotonic()
        root_exit = None
        killed = False
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = t0 + self.s["shutdown_timeout"]
        while True:
            if root_exit is None and self.proc.poll() is not None:
                root_exit = time.monotonic() - t0
            left = [p for p in pids if p != self.proc.pid and _alive(p)]
            if root_exit is not None and not left:
                break
            if time.monotonic() > deadline:
                killed = True
                for p in left + ([self.proc.pid] if root_exit is None else []):
                    try:
                        os.kill(p, signal.SIGKILL)  # by pid, only our own tree
                    except ProcessLookupError:
                        pass
                self.proc.wait(10)
                break
            time.sleep(0.005)
        self.res["shutdown_s"] = time.monotonic() - t0
        self.res["shutdown_root_s"] = root_exit
        self.res["shutdown_killed"] = killed
        self.res["exit_code"] = self.proc.returncode
        try:
            with open(self.log_path, "rb") as f:
                self.res["log_tail"] = f.read()[-1500:].decode(errors="replace")
        except OSError:
            pass

    def run(self, measure: bool = True) -> dict:
        try:
            if self.start() and measure:
                self.load()
        except Exception as e:  # keep going with the other servers
            self.res["error"] = f"{type(e).__name__}: {e}"
        finally:
            self.stop()
        if measure:
            self.check_sidecar()
        return self.res

    def check_sidecar(self):
        """A `BENCH-SIDECAR {json}` line in the log (benchmarks/subscriber.py): its messages in the
        measured window, the longest silence there, and a failed trial if it did not cover it."""
        try:
            with open(self.log_path, "rb") as f:
                lines = [l for l in f.read().decode(errors="replace").splitlines()
                         if l.startswith("BENCH-SIDECAR ")]
        except (OSError, AttributeError):
            return
        if not lines:
            return
        sc = json.loads(lines[-1].split(" ", 1)[1])
        times = sc.pop("times", [])
        window = self.res.get("window")
        if window:
            w0, w1 = window
            inside = [t for t in times if w0 <= t <= w1]
            edges = [w0] + inside + [w1]
            sc["window_messages"] = len(inside)
            sc["window_max_gap_s"] = round(max(b - a for a, b in zip(edges, edges[1:])), 3)
            sc["connected_before_window_s"] = (round(w0 - sc["connected_at"], 3)
                                               if sc.get("connected_at") else None)
            covered = (sc.get("connected_at") is not None and sc["connected_at"] <= w0
                       and (sc.get("ended_at") or 0) >= w1
                       and sc["window_max_gap_s"] <= self.s["sidecar_max_gap"])
            sc["covered_window"] = covered
            if not covered and "error" not in self.res:
                self.res["error"] = (f"sidecar not alive over the measured window: "
                                     f"{sc['window_messages']} messages, longest gap "
                                     f"{sc['window_max_gap_s']} s, end: {sc.get('end')}")
        if not sc.get("ok") and "error" not in self.res:
            self.res["error"] = f"sidecar failed: {sc.get('end')}"
        self.res["sidecar"] = sc


# --------------------------------------------------------------------------- devserve's code

SNAPSHOT: dict[str, str] = {}  # with --devserve-rev: {"dir": ..., "commit": ...}


def take_snapshot(rev: str) -> None:
    """Export devserver/ at `rev` into a temp dir; servers then run with it first on PYTHONPATH,
    so commits and edits made in the working tree during the run change nothing."""
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", rev],
                            capture_output=True, text=True, check=True).stdout.strip()
    d = tempfile.mkdtemp(prefix=f"devserve-{commit}-", dir="/tmp")
    archive = subprocess.run(["git", "-C", REPO, "archive", commit, "devserver"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", d], input=archive, check=True)
    SNAPSHOT.update(dir=d, commit=commit)


def devserve_source() -> str:
    """The commit, plus a hash of devserver/ when the working tree differs from it (the project
    is installed editable, so edits during a run change what later trials measure)."""
    if SNAPSHOT:
        return f"{SNAPSHOT['commit']} (snapshot)"
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "devserver"],
                               capture_output=True, text=True).stdout
    except OSError:
        return "?"
    if not dirty:
        return head
    digest = hashlib.sha1()
    for d, _, files in sorted(os.walk(os.path.join(REPO, "devserver"))):
        for name in sorted(f for f in files if f.endswith(".py")):
            with open(os.path.join(d, name), "rb") as f:
                digest.update(name.encode() + f.read())
    return f"{head}+dirty:{digest.hexdigest()[:10]}"


# --------------------------------------------------------------------------- suites

def load_suites(args) -> list[dict]:
    cfg = {"defaults": {}, "server_sets": {}, "suites": {}}
    if os.path.exists(args.config):
        with open(args.config) as f:
            cfg.update(json.load(f))
    base = dict(DEFAULTS)
    base.update(cfg.get("defaults", {}))
    names = args.suite or []
    if not names and not args.server:
        raise SystemExit("give --suite NAME (see --list) and/or --server NAME=TEMPLATE")
    suites = []
    for n in names or ["adhoc"]:
        s = dict(base)
        if n != "adhoc":
            if n not in cfg["suites"]:
                raise SystemExit(f"unknown suite {n!r}; have {sorted(cfg['suites'])}")
            s.update(cfg["suites"][n])
        s["name"] = n
        servers = s.get("servers") or {}
        if isinstance(servers, str):
            servers = cfg["server_sets"][servers]
        opts = {k: dict(v) for k, v in servers.items() if isinstance(v, dict)}  # {"cmd": ..., "client_args": ...}
        servers = {k: (v["cmd"] if isinstance(v, dict) else v) for k, v in servers.items()}
        for spec in args.server or []:
            if "=" not in spec:
                raise SystemExit(f"--server wants NAME=TEMPLATE, got {spec!r}")
            k, v = spec.split("=", 1)
            servers[k.strip()] = v.strip()
        for spec in args.client_args or []:
            if "=" not in spec:
                raise SystemExit(f"--client-args wants NAME=ARGS, got {spec!r}")
            k, v = spec.split("=", 1)
            opts.setdefault(k.strip(), {})["client_args"] = v.strip()
        only = args.only or s.get("default_only")  # a suite may leave extra servers out by default
        if only:
            keep = [x.strip() for x in only.split(",")]
            servers = {k: v for k, v in servers.items() if k in keep}
        s["servers"] = servers
        s["server_opts"] = {k: v for k, v in opts.items() if k in servers}
        for key in ("mode", "path", "expect", "rounds", "duration", "warmup", "connections", "threads",
                    "server_cpus", "client_cpus", "workers", "baseline", "ws_conns", "ws_msgs", "ws_size",
                    "h2_conns", "h2_streams", "probe"):
            v = getattr(args, key, None)
            if v is not None:
                s[key] = v
        if args.app:
            s["app"] = args.app if ":" in args.app else args.app + ":app"
        if args.no_pin:
            s["pin"] = False
        if args.ws_raw:
            s["ws_raw"] = True
        if args.no_prime:
            s["prime"] = False
        s["app_dir"] = os.path.abspath(args.app_dir or s.get("app_dir") or DEFAULT_APP_DIR)
        suites.append(s)
    return suites


def versions(python: str, dists: list[str]) -> dict:
    code = ("import importlib.metadata as m, json, sys\n"
            "out={}\n"
            f"for d in {dists!r}:\n"
            "    try: out[d]=m.version(d)\n"
            "    except Exception: out[d]=None\n"
            "out['python']=sys.version.split()[0]\n"
            "print(json.dumps(out))")
    try:
        return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                         timeout=30).stdout)
    except Exception as e:
        return {"error": str(e)}


def env_info(args) -> dict:
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host_python": sys.version.split()[0],
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "packages": versions(args.python, ["uvicorn", "granian", "gunicorn", "hypercorn", "daphne",
                                           "uvloop", "httptools", "websockets", "wsproto", "h11",
                                           "twisted", "watchfiles", "devserve"] + (args.dist or [])),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    repo_py = os.path.join(REPO, ".venv", "bin", "python")
    if os.path.exists(repo_py):
        info["packages"]["devserve"] = versions(repo_py, ["devserve"]).get("devserve")
        info["devserve_python"] = versions(repo_py, []).get("python")
    try:
        info["wrk"] = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except Exception:
        info["wrk"] = None
    try:
        info["h2load"] = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip()
    except Exception:
        info["h2load"] = None
    return info


def round_ratios(trials: list[dict], name: str, base: str, key: str = "rps") -> list[float]:
    """name's `key` / base's `key` for every round where both have a good trial."""
    out = []
    for t in trials:
        if t["server"] != name or "error" in t or not t.get(key):
            continue
        b = next((x for x in trials if x["server"] == base and x["round"] == t["round"]
                  and x.get(key) and "error" not in x), None)
        if b:
            out.append(t[key] / b[key])
    return out


def summarize(suite: dict, trials: list[dict]) -> dict:
    names = list(suite["servers"])
    base = suite["baseline"]
    out = {}
    for n in names:
        ts = [t for t in trials if t["server"] == n and "error" not in t and t.get("rps")]
        errs = [t.get("error") for t in trials if t["server"] == n and t.get("error")]
        ratios = round_ratios(trials, n, base)

        def col(key, sub=None):
            vals = [(t.get(key) or {}).get(sub) if sub else t.get(key) for t in ts]
            return {"median": _median(vals), "min": _span(vals)[0], "max": _span(vals)[1]}

        last = ts[-1] if ts else {}
        out[n] = {
            "ok_rounds": len(ts), "failed_rounds": len(errs), "errors": errs[:3],
            "rps": col("rps"), "ratio": {"median": _median(ratios), "min": _span(ratios)[0],
                                         "max": _span(ratios)[1]},
            "p50_ms": col("p50_ms"), "p99_ms": col("p99_ms"), "mib_per_s": col("mib_per_s"),
            "lat_avg_ms": col("lat_avg_ms"), "lat_stdev_ms": col("lat_stdev_ms"),
            "server_cpu_pct": col("server_cpu_pct"), "client_cpu_pct": col("client_cpu_pct"),
            "other_cpu_pct": col("other_cpu_pct"), "steal_pct": col("steal_pct"),
            "rss_idle_mib": col("mem_idle", "rss_mib"), "rss_after_mib": col("mem_after", "rss_mib"),
            "pss_after_mib": col("mem_after", "pss_mib"), "nprocs": col("mem_after", "nprocs"),
            "cpu_by_proc_pct_per_round": [t.get("cpu_by_proc_pct") for t in ts],
            "rss_after_by_proc_mib": [round(p["rss_kb"] / 1024, 1) for p in
                                      (last.get("mem_after") or {}).get("procs", [])],
            "cold_start_s": col("cold_start_s"), "shutdown_s": col("shutdown_s"),
            "killed_on_shutdown": sum(1 for t in ts if t.get("shutdown_killed")),
            "load_errors_total": sum(t.get("errors", 0) or 0 for t in ts),
            "noisy_rounds": sum(1 for t in ts if t.get("noisy")),
            "verified": all(t.get("verified") for t in ts) if ts else False,
            "cmd": (last or {}).get("cmd"),
            "client_cmd": (last or {}).get("client_cmd"),
        }
        for other in (suite.get("compare") or {}).get(n, []):  # e.g. devserve (h2c) vs devserve-h1
            if other not in suite["servers"]:
                continue
            out[n].setdefault("vs", {})[other] = col_of(round_ratios(trials, n, other))
        scs = [t["sidecar"] for t in ts if t.get("sidecar")]
        if scs:
            out[n]["sidecar"] = {
                "trials": len(scs), "covered": sum(1 for x in scs if x.get("covered_window")),
                "window_messages": col_of([x.get("window_messages") for x in scs]),
                "window_max_gap_s": col_of([x.get("window_max_gap_s") for x in scs]),
                "connected_before_window_s": col_of([x.get("connected_before_window_s") for x in scs]),
                "messages": col_of([x.get("messages") for x in scs]),
                "records": col_of([x.get("records") for x in scs]),
                "kinds": [x.get("kinds") for x in scs],
                "cpu_s": col_of([x.get("cpu_s") for x in scs]),
            }
    return out


def col_of(vals):
    return {"median": _median(vals), "min": _span(vals)[0], "max": _span(vals)[1]}


def _fmt(d, prec=0, scale=1.0, spread=True):
    if not d or d.get("median") is None:
        return "n/a"
    m = d["median"] * scale
    s = f"{m:,.{prec}f}"
    if spread and d.get("min") is not None and d["min"] != d["max"]:
        s += f" ({d['min'] * scale:,.{prec}f}–{d['max'] * scale:,.{prec}f})"
    return s


def markdown(suite: dict, summ: dict) -> str:
    ws = suite["mode"] == "ws"
    if ws:
        load = (f"ws_client.py{' --raw' if suite.get('ws_raw') else ' (websockets library)'}: "
                f"{suite['ws_conns']} connections x {suite['ws_msgs']} echo round trips, "
                f"{suite['ws_size']}-byte text messages")
    elif suite["mode"] == "h2load":
        load = (f"h2load -t1 -c{suite['h2_conns']} -m{suite['h2_streams']} -D{suite['duration']} "
                f"(warm-up run {suite['warmup']}s); p50/p99 from its per-request --log-file, "
                "mean ms = its `time for request` mean")
    else:
        load = f"wrk -t{suite['threads']} -c{suite['connections']} -d{suite['duration']}s --latency (warm-up {suite['warmup']}s)"
    pin = (f"server pinned to CPU {suite['server_cpus']}, client pinned to CPU {suite['client_cpus']}"
           if suite["pin"] else "nothing pinned (server and client share both CPUs)")
    lines = [
        f"### Suite `{suite['name']}`: app `{suite['app']}` path `{suite['path']}`",
        "",
        f"{load}; {pin}; {suite['rounds']} interleaved rounds; medians with (min–max) over rounds; "
        f"ratio = throughput / `{suite['baseline']}` in the same round.",
        "",
    ]
    rate = "msgs/s" if ws else "req/s"
    hdr = [f"server", rate, f"x {suite['baseline']}", "p50 ms", "p99 ms"]
    h2 = suite["mode"] == "h2load"
    if h2:
        hdr.append("mean ms")
    if not ws and any((v["mib_per_s"]["median"] or 0) > 50 for v in summ.values()):
        hdr.append("MiB/s")
    hdr += ["srv CPU %", "client CPU %", "other CPU %", "RSS idle MiB", "RSS after MiB", "PSS after MiB",
            "procs (RSS each)", "cold start s", "shutdown s", "errors", "ok"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for n, v in summ.items():
        row = [f"`{n}`", _fmt(v["rps"], 0), _fmt(v["ratio"], 2), _fmt(v["p50_ms"], 2), _fmt(v["p99_ms"], 2)]
        if h2:
            row.append(_fmt(v["lat_avg_ms"], 2))
        if "MiB/s" in hdr:
            row.append(_fmt(v["mib_per_s"], 0))
        procs = v["rss_after_by_proc_mib"]
        row += [_fmt(v["server_cpu_pct"], 0, spread=False), _fmt(v["client_cpu_pct"], 0, spread=False)]
        row.append(_fmt(v["other_cpu_pct"], 0, spread=False))
        row += [
                _fmt(v["rss_idle_mib"], 1), _fmt(v["rss_after_mib"], 1), _fmt(v["pss_after_mib"], 1),
                f"{len(procs)} ({', '.join(f'{x:.0f}' for x in procs)})" if procs else "n/a",
                _fmt(v["cold_start_s"], 2), _fmt(v["shutdown_s"], 2) +
                (f" ({v['killed_on_shutdown']} killed)" if v["killed_on_shutdown"] else ""),
                str(v["load_errors_total"]) + (f" ({v['noisy_rounds']} noisy)" if v["noisy_rounds"] else ""),
                f"{v['ok_rounds']}/{v['ok_rounds'] + v['failed_rounds']}" + ("" if v["verified"] else " unverified")]
        lines.append("| " + " | ".join(row) + " |")
    for n, v in summ.items():
        sc = v.get("sidecar")
        if sc:
            lines += ["", f"Sidecar of `{n}` (benchmarks/subscriber.py), per trial: "
                      f"{_fmt(sc['window_messages'])} messages in the measured window, longest gap "
                      f"{_fmt(sc['window_max_gap_s'], 2)} s, connected {_fmt(sc['connected_before_window_s'], 1)} s "
                      f"before it; in all {_fmt(sc['messages'])} messages with {_fmt(sc['records'])} "
                      f"request records; its CPU {_fmt(sc['cpu_s'], 2)} s (counted in srv CPU %); "
                      f"window covered in {sc['covered']}/{sc['trials']} trials."]
    fails = {n: v["errors"] for n, v in summ.items() if v["errors"]}
    if fails:
        lines += ["", "Failures: " + "; ".join(f"`{n}`: {e}" for n, e in fails.items())]
    for n, v in summ.items():
        for other, r in (v.get("vs") or {}).items():
            lines += ["", f"`{n}` / `{other}` req/s, per round: {_fmt(r, 2)}"]
    lines += ["", "Commands:", ""] + [f"- `{n}`: `{v['cmd']}`" for n, v in summ.items() if v["cmd"]]
    if h2:
        lines += ["", "Load:", ""] + [f"- `{n}`: `{v['client_cmd']}`" for n, v in summ.items() if v.get("client_cmd")]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="suites JSON (default: suites.json beside this file)")
    ap.add_argument("--suite", action="append", help="suite name from the config (repeatable)")
    ap.add_argument("--list", action="store_true", help="list suites and exit")
    ap.add_argument("--server", action="append", help="NAME=TEMPLATE, added to the suite(s) (repeatable)")
    ap.add_argument("--only", help="comma-separated server names to keep")
    ap.add_argument("--app", help="module or module:attr in the app dir (default asgi_hello:app)")
    ap.add_argument("--app-dir", help="directory the servers are started in (default apps/)")
    ap.add_argument("--mode", choices=["http", "h2load", "ws"])
    ap.add_argument("--path")
    ap.add_argument("--expect", help="substring the body must contain")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--connections", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--server-cpus")
    ap.add_argument("--client-cpus")
    ap.add_argument("--no-pin", action="store_true", help="pin neither server nor client")
    ap.add_argument("--no-prime", action="store_true", help="skip the untimed priming start of each server")
    ap.add_argument("--baseline")
    ap.add_argument("--ws-conns", type=int)
    ap.add_argument("--ws-msgs", type=int)
    ap.add_argument("--ws-size", type=int)
    ap.add_argument("--ws-raw", action="store_true", help="use ws_client.py --raw")
    ap.add_argument("--h2-conns", type=int, help="h2load -c (mode h2load)")
    ap.add_argument("--h2-streams", type=int, help="h2load -m (mode h2load)")
    ap.add_argument("--probe", choices=["http1", "h2c"], help="readiness/body check (default: the suite's)")
    ap.add_argument("--client-args", action="append",
                    help="NAME=ARGS: extra load-client arguments for one server, e.g. 'devserve-h1=--h1'")
    ap.add_argument("--python", default=sys.executable, help="interpreter for {python} (default: this one)")
    ap.add_argument("--client-python", default=sys.executable, help="interpreter for ws_client.py")
    ap.add_argument("--dist", action="append", help="extra distribution to record the version of")
    ap.add_argument("--out", help="output path prefix (default results/<suites>-<timestamp>)")
    ap.add_argument("--devserve-rev", help="run devserve's code as of this commit (devserver/ exported "
                    "to a temp dir, first on PYTHONPATH), not the working tree's")
    args = ap.parse_args(argv)

    if args.list:
        with open(args.config) as f:
            cfg = json.load(f)
        for n, s in cfg["suites"].items():
            print(f"{n:14s} {s.get('description', '')}")
        return 0
    suites = load_suites(args)
    modes = {s["mode"] for s in suites}
    if "http" in modes and shutil.which("wrk") is None:
        raise SystemExit("wrk not found (apt-get install -y wrk)")
    if "h2load" in modes and shutil.which("h2load") is None:
        raise SystemExit("h2load not found (apt-get install -y nghttp2-client)")
    probes = {o.get("probe", s["probe"]) for s in suites for o in [{}, *s["server_opts"].values()]}
    if "h2c" in probes and shutil.which("curl") is None:
        raise SystemExit("curl not found (the h2c probe uses curl --http2-prior-knowledge)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or os.path.join(HERE, "results", "-".join(s["name"] for s in suites) + "-" + stamp)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    log_dir = f"/tmp/bench-logs-{stamp}"
    os.makedirs(log_dir, exist_ok=True)
    info = env_info(args)
    report = {"env": info, "argv": sys.argv, "suites": []}
    if args.devserve_rev:
        take_snapshot(args.devserve_rev)
    info["devserve_source"] = devserve_source()
    md = [f"## Benchmark run {info['date']}", "",
          f"Host: {info.get('cpu_model')}, {info['cpus']} CPUs, kernel {info['kernel']}; {info.get('wrk')}; "
          f"{info.get('h2load')}", "",
          "Versions: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v), "",
          f"devserve's code: {info['devserve_source']}", ""]
    all_cpus = set(range(os.cpu_count()))
    for s in suites:
        if not s["servers"]:
            raise SystemExit(f"suite {s['name']} has no servers")
        if s["pin"] and s.get("client_cpus"):
            os.sched_setaffinity(0, {int(c) for c in str(s["client_cpus"]).split(",")})
        else:
            os.sched_setaffinity(0, all_cpus)
        print(f"== suite {s['name']}: {list(s['servers'])}, {s['rounds']} rounds", file=sys.stderr, flush=True)
        if s["prime"]:
            for n, tpl in s["servers"].items():
                r = Trial(s, n, tpl, 0, args, log_dir).run(measure=False)
                print(f"   prime {n}: cold {r.get('cold_start_s', float('nan')):.2f}s "
                      f"{r.get('error', '')}", file=sys.stderr, flush=True)
        trials = []
        for rnd in range(1, s["rounds"] + 1):
            for n, tpl in s["servers"].items():
                for attempt in range(s["retries"] + 1):
                    waited = wait_quiet(s["quiet_pct"])
                    r = Trial(s, n, tpl, rnd, args, log_dir).run()
                    r["waited_quiet_s"], r["attempt"] = waited, attempt
                    oth = r.get("other_cpu_pct")
                    if oth is None or oth <= s["max_other_cpu"]:
                        break
                    r["noisy"] = True
                    print(f"   r{rnd} {n}: other CPU {oth:.0f}% > {s['max_other_cpu']}%, "
                          f"{'redoing' if attempt < s['retries'] else 'keeping (marked noisy)'}",
                          file=sys.stderr, flush=True)
                trials.append(r)
                print(f"   r{rnd} {n:22s} rate={r.get('rps') or 0:10.0f} p99={r.get('p99_ms') or 0:8.2f}ms "
                      f"cpu={r.get('server_cpu_pct') or 0:4.0f}% oth={r.get('other_cpu_pct') or 0:3.0f}% "
                      f"st={r.get('steal_pct') or 0:3.0f}% byproc={r.get('cpu_by_proc_pct')} cold={r.get('cold_start_s') or 0:.2f}s "
                      f"stop={r.get('shutdown_s') or 0:.2f}s err={r.get('errors', 0)} {r.get('error', '')}",
                      file=sys.stderr, flush=True)
        summ = summarize(s, trials)
        report["suites"].append({"suite": {k: v for k, v in s.items()}, "summary": summ, "trials": trials})
        md.append(markdown(s, summ))
        sources = sorted({t.get("devserve_source") for t in trials if t.get("devserve_source")})
        if len(sources) > 1:  # the tree changed during the run: later trials ran other code
            md.append(f"**Warning**: devserve's code changed during this suite ({', '.join(sources)}); "
                      "rerun with --devserve-rev.\n")
        # write after every suite so partial results survive
        with open(out + ".json", "w") as f:
            json.dump(report, f, indent=1, default=str)
        with open(out + ".md", "w") as f:
            f.write("\n".join(md))
    os.sched_setaffinity(0, all_cpus)
    print("\n".join(md))
    print(f"wrote {out}.md and {out}.json (server logs in {log_dir})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

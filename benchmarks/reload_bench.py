#!/usr/bin/env python3
"""Reload benchmark: save -> first response with the new code, and failed requests meanwhile.

For every round, every server is started fresh, in turn (A B C A B C ...), in its own temp app
directory under /tmp (the only directory it is told to watch), the server pinned to
--server-cpus and this client to --client-cpus (where the machine has 2 CPUs or more):

  1. write app.py (hello world; the body names the code version, an x-worker-pid header names
     the process) into a fresh /tmp/reload-bench-*/app, spawn the server there (cwd = app dir,
     its log outside that dir), poll GET / until the first 200 with version 0, settle
  2. load: a probe thread (a new connection per request, one every --probe-interval s) plus
     --threads load threads (half on one keep-alive connection each, reconnecting after a
     close or a failure; half a new connection per request), --pause s between requests each;
     and, before each save, one idle keep-alive connection per --idle-after value (one request
     then, the next one that many s after the first new response: a browser reloading the page)
  3. --saves times per start, each after --steady s of clean load: rewrite app.py in place
     (open 'w', one write, close; the body text and the file size change every save, so a
     stale __pycache__ can never match). The clock starts just before the open. For
     trigger=sighup (gunicorn) SIGHUP goes to the root pid right after the close
  4. (a) reload latency = save -> end of the first probe response (new connection) with the new
     version; also the first new response on any connection, and the end of the last old
     response ("settled": every process serves the new code)
     (b) requests of every thread from the save until --tail s after the first new response:
     hard failures (connection refused, reset, timeout, EOF, non-200), the keep-alive race
     counted apart (an EOF before any response byte on a reused keep-alive connection: the
     server closed the idle connection as the request went out, which clients retry), and
     stale responses (old version, request started after the first new response ended).
     A trial during which other processes used more than --max-other-cpu is redone (--retries)
  5. SIGTERM the root pid, SIGKILL leftovers of its tree by pid after 35 s

The app is apps/asgi_hello_pid.py with its body changed. Templates use {python} {bin} {repo}
{port} {host} {app_dir} {workers} (like bench.py); the app is app:app, imported from the cwd.
Stdlib only (imports helpers from bench.py and restart_bench.py beside it); run with the peers
venv's interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import tempfile
import time

# bench.py and restart_bench.py beside this script are found first (sys.path[0] is its folder)
from bench import tree_pids
from restart_bench import (
    HERE,
    Conn,
    Load,
    ServerTrial,
    add_common_args,
    add_kinds,
    failures,
    fetch,
    fmt,
    med,
    pick,
    prepare,
    run_rounds,
    say,
    under_load,
    write_results,
)

# name -> (template, trigger, workers); trigger: watch (the server watches the files itself) or
# sighup (this client sends SIGHUP to the root pid right after the save)
DEVSERVE = (
    "{repo}/.venv/bin/devserve app:app --host {host} --port {port} --workers {workers} "
    "--reload --reload-dir {app_dir} --control {app_dir}/ctl.sock --log-level warning --no-tui"
)
SERVERS: dict[str, tuple[str, str, int]] = {
    "devserve-1w": (DEVSERVE, "watch", 1),
    "devserve-2w": (DEVSERVE, "watch", 2),
    "uvicorn": (
        "{python} -m uvicorn app:app --host {host} --port {port} --reload --reload-dir {app_dir} "
        "--log-level warning",
        "watch",
        1,
    ),
    "granian": (
        "{python} -m granian --interface asgi --host {host} --port {port} --workers {workers} "
        "--reload --reload-paths {app_dir} --log-level warning app:app",
        "watch",
        1,
    ),
    # hypercorn has no option for the watched paths: it polls every loaded module's file, 1/s
    "hypercorn": (
        "{python} -m hypercorn --bind {host}:{port} --reload --log-level warning app:app",
        "watch",
        1,
    ),
    "gunicorn+uvicorn": (
        "{python} -m gunicorn -k uvicorn.workers.UvicornWorker -w {workers} -b {host}:{port} "
        "--log-level warning app:app",
        "sighup",
        1,
    ),
}
DISTS = ["uvicorn", "granian", "hypercorn", "gunicorn", "watchfiles"]
SERVING_RE = re.compile(r"reload: generation (\d+) serving after ([\d.]+)s")
VERSION_RE = re.compile(rb"^version-(\d+) ")

# the app: apps/asgi_hello_pid.py (hello world + an x-worker-pid header naming the process) with
# a body that names the code version
with open(os.path.join(HERE, "apps", "asgi_hello_pid.py")) as _f:
    HELLO_PID = _f.read()
HELLO_BODY = 'BODY = b"Hello, world!"'
if HELLO_BODY not in HELLO_PID:
    raise RuntimeError(f"apps/asgi_hello_pid.py no longer says {HELLO_BODY}")


def write_app(path: str, version: int) -> None:
    """Rewrite in place (same inode), as an editor that saves without a rename does; the body
    text and the file size change with every version."""
    body = f'BODY = b"version-{version} {"x" * version}"'
    with open(path, "w") as f:
        f.write("# written by benchmarks/reload_bench.py\n" + HELLO_PID.replace(HELLO_BODY, body))


# --------------------------------------------------------------------------- HTTP client

# one request: (start, end, outcome, version or -1, worker pid, thread kind)
Entry = tuple[float, float, str, int, int, str]


def entry(t0: float, outcome: str, pid: int, body: bytes, kind: str) -> Entry:
    """The Entry of a request that started at t0 and just ended."""
    m = VERSION_RE.match(body)
    return (t0, time.monotonic(), outcome, int(m[1]) if m else -1, pid, kind)


class Client(Load):
    """restart_bench's load thread, logging Entries: kind keepalive (one keep-alive connection,
    reconnecting after a failure or a close), new or probe (a new connection per request)."""

    def __init__(self, port: int, kind: str, pause: float, timeout: float) -> None:
        super().__init__(port, kind == "keepalive", pause, timeout)
        self.kind = kind

    def entry(self, t0: float, outcome: str, pid: int, body: bytes) -> Entry:
        return entry(t0, outcome, pid, body, self.kind)


def request(port: int, conn: Conn | None, timeout: float) -> tuple[Entry, Conn | None]:
    """One GET on an idle keep-alive connection (a new one when None): (its Entry, the
    connection to reuse or None)."""
    t0 = time.monotonic()
    outcome, pid, body, conn = fetch(port, conn, True, timeout)
    return entry(t0, outcome, pid, body, "idle-ka"), conn


def get_version(port: int, timeout: float) -> int | None:
    """One GET on a new connection: the version served, or None."""
    outcome, _, body, _ = fetch(port, None, False, timeout)
    m = VERSION_RE.match(body)
    return int(m[1]) if outcome == "ok" and m else None


# --------------------------------------------------------------------------- one trial


class Trial(ServerTrial):
    """One server started once, in its own temp dir, and --saves reloads under load."""

    def __init__(self, name: str, spec: tuple[str, str, int], rnd: int, a: argparse.Namespace):
        template, self.trigger, self.workers = spec
        self.base = tempfile.mkdtemp(prefix="reload-bench-", dir="/tmp")
        super().__init__(name, template, rnd, a, os.path.join(self.base, "server.log"))
        self.res.update(trigger=self.trigger, saves=[])
        self.app_dir = os.path.join(self.base, "app")  # watched; the log lives beside it

    def run(self) -> dict:
        try:
            return super().run()
        finally:
            if self.a.keep:
                say(f"kept {self.base}")
            else:
                shutil.rmtree(self.base, ignore_errors=True)

    def start(self) -> bool:
        os.mkdir(self.app_dir)
        self.app_path = os.path.join(self.app_dir, "app.py")
        write_app(self.app_path, 0)

        def ready(port: int) -> bool:
            return get_version(port, 1.0) == 0

        if not self.launch(self.app_dir, ready, app_dir=self.app_dir, workers=self.workers):
            return False
        self.res["cmd"] = self.res["cmd"].replace(self.base, "{tmp}")
        time.sleep(self.a.settle)
        return True

    def measure(self) -> None:
        a, root = self.a, self.proc.pid
        probe = Client(self.port, "probe", a.probe_interval, a.req_timeout)
        load = [
            Client(self.port, "keepalive" if i % 2 == 0 else "new", a.pause, a.req_timeout)
            for i in range(a.threads)
        ]
        clients = [probe, *load]
        with under_load(root, clients, self.res, a.req_timeout + 5):
            for version in range(1, a.saves + 1):
                s = self.one_save(version, clients)
                self.res["saves"].append(s)
                if s.get("error"):
                    self.res["error"] = s["error"]
                    break
        self.res["nprocs_end"] = len(tree_pids(root))

    def one_save(self, version: int, clients: list[Client]) -> dict:
        a = self.a
        # idle keep-alive connections, as a browser keeps them: one request now, the next one
        # --idle-after s after the first new response (a reload of the page after the save)
        idle_log: list[Entry] = []
        idle = []
        for _ in a.idle_after:
            e, conn = request(self.port, None, a.req_timeout)
            idle_log.append(e)
            idle.append(conn)
        time.sleep(a.steady)
        if self.proc.poll() is not None:
            return {"version": version, "error": f"server exited rc={self.proc.returncode}"}
        t_w = time.monotonic()
        write_app(self.app_path, version)
        if self.trigger == "sighup":
            os.kill(self.proc.pid, signal.SIGHUP)
        probe = clients[0]
        t_new = None
        seen = 0
        while time.monotonic() - t_w < a.max_wait:
            n = len(probe.log)
            for e in probe.log[seen:n]:
                if e[1] >= t_w and e[2] == "ok" and e[3] == version:
                    t_new = e[1]
                    break
            seen = n
            if t_new is not None:
                break
            time.sleep(0.002)
        t_base = t_new if t_new is not None else t_w + a.max_wait
        end = t_base + a.tail
        for conn, after in sorted(zip(idle, a.idle_after, strict=True), key=lambda x: x[1]):
            time.sleep(max(0.0, t_base + after - time.monotonic()))
            e, conn = request(self.port, conn, a.req_timeout)
            idle_log.append(e)
            if conn is not None:
                conn.close()
        time.sleep(max(0.0, end - time.monotonic()))
        entries = [e for c in clients for e in list(c.log)] + idle_log
        steady = [e for e in entries if t_w - a.steady <= e[0] and e[1] < t_w]
        window = [e for e in entries if e[1] >= t_w and e[0] <= end]
        new_any = [e[1] for e in window if e[2] == "ok" and e[3] == version]
        old = [e for e in window if e[2] == "ok" and e[3] != version]
        t_first = min(new_any) if new_any else None
        stale = [e for e in old if t_first is not None and e[0] > t_first]
        last_old = max((e[1] for e in old), default=t_w)
        s = {
            "version": version,
            "reload_s": None if t_new is None else t_new - t_w,
            "first_new_any_s": None if t_first is None else t_first - t_w,
            "settled_s": None if t_first is None else max(t_first, last_old) - t_w,
            "requests_steady": len(steady),
            "failed_steady": sum(1 for e in steady if e[2] != "ok"),
            "pids_steady": sorted({e[4] for e in steady if e[2] == "ok"}),
            "pids_after": sorted(
                {e[4] for e in window if e[2] == "ok" and e[3] == version and e[0] > (t_first or 0)}
            ),
            "window_s": end - t_w,
            **failures(window, t_w),
            "stale": len(stale),
            "stale_by_kind": {k: sum(1 for e in stale if e[5] == k) for k in {e[5] for e in stale}},
            "idle_ka": [(round(e[0] - t_w, 3), e[2], e[3]) for e in idle_log if e[0] >= t_w],
            "stale_detail": [(round(e[0] - t_w, 4), e[3], e[4], e[5]) for e in stale][:50],
        }
        if t_new is None:
            s["error"] = f"version {version} not served within {a.max_wait} s"
        say(
            f"  r{self.round} {self.name:24s} save {version}: reload={_ms(s['reload_s'])}"
            f" any={_ms(s['first_new_any_s'])} settled={_ms(s['settled_s'])}"
            f" hard={s['hard_failures']} ka_eof={s['ka_eof_races']} stale={s['stale']}"
            f" kinds={s['failure_kinds'] or '-'} window={len(window)}"
            + (f" ERROR {s['error']}" if s.get("error") else "")
        )
        return s

    def read_log(self) -> str:
        text = super().read_log()
        # devserve's own figure, for reference only (the measurement is from outside)
        self.res["serving_after_s"] = [float(m[2]) for m in SERVING_RE.finditer(text)]
        return text


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1000:.0f}ms"


# --------------------------------------------------------------------------- report


def report(results: list[dict], servers: dict, a: argparse.Namespace, info: dict) -> tuple:
    base = a.baseline if a.baseline in servers else None
    pin = f"server on CPU {a.server_cpus}, client on CPU {a.client_cpus}" if a.pin else "unpinned"
    ka, new = (a.threads + 1) // 2, a.threads // 2
    lines = [
        f"Reload: app.py rewritten in place, {a.saves} saves per start x {a.rounds} rounds "
        f"interleaved; load: a probe (new connection every {a.probe_interval * 1000:.0f} ms) + "
        f"{ka} keep-alive + {new} new-connection threads, {a.pause * 1000:.0f} ms pause; {pin}. "
        "Reload = save -> end of the first probe response with the new code; settled = save -> "
        "end of the last response with the old code. Failures counted from the save to "
        f"{a.tail:g} s after the first new response. Median (min\u2013max) over saves; "
        "`[…]` lists the per-save counts.",
        "",
        "| server | reload ms | reload x "
        + (base or "-")
        + " | first new, any connection ms | settled ms | hard failures / save "
        "| keep-alive EOF races / save | stale after first new / save | failure kinds (total) "
        "| requests / window | cold start s | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict = {}
    for name, (tpl, trig, workers) in servers.items():
        rs = [r for r in results if r["server"] == name]
        saves = [s for r in rs for s in r["saves"]]
        ratios = []
        for r in rs:
            b = next((x for x in results if x["server"] == base and x["round"] == r["round"]), None)
            for s in r["saves"]:
                bs = next(
                    (x for x in (b or {}).get("saves", []) if x["version"] == s["version"]), {}
                )
                if s.get("reload_s") and bs.get("reload_s"):
                    ratios.append(s["reload_s"] / bs["reload_s"])
        kinds = add_kinds([s.get("failure_kinds", {}) for s in saves])

        def ms(key: str, saves: list = saves) -> tuple | None:
            return med([None if s.get(key) is None else 1000 * s[key] for s in saves])

        sm = {
            "template": tpl,
            "trigger": trig,
            "workers": workers,
            "reload_ms": ms("reload_s"),
            "reload_ratio": med(ratios),
            "first_new_any_ms": ms("first_new_any_s"),
            "settled_ms": ms("settled_s"),
            "hard_failures": med([s.get("hard_failures") for s in saves]),
            "ka_eof_races": med([s.get("ka_eof_races") for s in saves]),
            "stale": med([s.get("stale") for s in saves]),
            "hard_failures_per_save": [s.get("hard_failures") for s in saves],
            "ka_eof_races_per_save": [s.get("ka_eof_races") for s in saves],
            "stale_per_save": [s.get("stale") for s in saves],
            "reload_ms_per_save": [
                None if s.get("reload_s") is None else round(1000 * s["reload_s"], 1) for s in saves
            ],
            "failure_kinds": kinds,
            "requests_window": med([s.get("requests_window") for s in saves]),
            "cold_start_s": med([r.get("cold_start_s") for r in rs]),
            "server_cpu_pct": med([r.get("server_cpu_pct") for r in rs]),
            "serving_after_ms": med([1000 * x for r in rs for x in r.get("serving_after_s", [])]),
            "ok": sum(1 for s in saves if s.get("reload_s") is not None),
            "n": a.rounds * a.saves,
            "errors": [r["error"] for r in rs if r.get("error")],
            # clean load before a save should be answered by one set of `workers` processes
            "steady_anomalies": [
                (r["round"], s["version"], s["failed_steady"], s["pids_steady"])
                for r in rs
                for s in r["saves"]
                if s.get("failed_steady") or len(s.get("pids_steady", [])) > workers
            ],
        }
        summary[name] = sm

        def per(key: str, sm: dict = sm) -> str:
            return ", ".join(str(x) for x in sm[key])

        how = "--reload" if trig == "watch" else "SIGHUP after the save"
        lines.append(
            f"| `{name}` ({how}, {workers}w) | {fmt(sm['reload_ms'], 0)} "
            f"| {fmt(sm['reload_ratio'], 2)} "
            f"| {fmt(sm['first_new_any_ms'], 0)} | {fmt(sm['settled_ms'], 0)} "
            f"| {fmt(sm['hard_failures'], 0)} [{per('hard_failures_per_save')}] "
            f"| {fmt(sm['ka_eof_races'], 0)} [{per('ka_eof_races_per_save')}] "
            f"| {fmt(sm['stale'], 0)} [{per('stale_per_save')}] "
            f"| {', '.join(f'{k} {n}' for k, n in sorted(kinds.items())) or '-'} "
            f"| {fmt(sm['requests_window'], 0)} | {fmt(sm['cold_start_s'], 2)} "
            f"| {sm['ok']}/{sm['n']} |"
        )
    goal = [
        f"- `{n}`: median {s['reload_ms'][0]:.0f} ms (goal \u2264 {a.goal_ms:.0f}), "
        f"{sum(x or 0 for x in s['hard_failures_per_save'])} hard failures, "
        f"{sum(x or 0 for x in s['ka_eof_races_per_save'])} keep-alive races and "
        f"{sum(x or 0 for x in s['stale_per_save'])} stale responses in "
        f"{s['ok']} reloads"
        + (
            f"; its own log: serving after {fmt(s['serving_after_ms'], 0)} ms"
            if s["serving_after_ms"]
            else ""
        )
        for n, s in summary.items()
        if n.startswith("devserve") and s["reload_ms"]
    ]
    if goal:
        lines += ["", "devserve against the goal:", "", *goal]
    errors = [f"- `{n}`: {'; '.join(s['errors'])}" for n, s in summary.items() if s["errors"]]
    errors += [
        f"- `{n}`: before a save, failed requests or more processes answering than workers "
        f"(round, save, failed, pids): {s['steady_anomalies']}"
        for n, s in summary.items()
        if s["steady_anomalies"]
    ]
    if errors:
        lines += ["", "Errors:", "", *errors]
    vtxt = ", ".join(f"{k} {v}" for k, v in info.items())
    lines += ["", f"Versions: {vtxt}.", "", "Commands:", ""]
    lines += [f"- `{n}` ({t[1]}, {t[2]} worker(s)): `{t[0]}`" for n, t in servers.items()]
    return "\n".join(lines) + "\n", summary


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--server",
        action="append",
        help="NAME=[TRIGGER:[WORKERS:]]TEMPLATE, TRIGGER watch|sighup: replace NAME or add it",
    )
    add_common_args(
        ap, threads=2, pause=0.005, settle=0.75, steady=0.75, tail=0.75, max_wait=10.0, retries=1
    )
    ap.add_argument("--saves", type=int, default=2, help="saves (reloads) per start")
    ap.add_argument("--probe-interval", type=float, default=0.005, help="s between probe GETs")
    ap.add_argument(
        "--idle-after",
        default="0.1,0.3,0.6",
        help="one idle keep-alive connection per value, opened before the save, used once this "
        "many s after the first new response ('' for none; each must be below --tail)",
    )
    ap.add_argument("--goal-ms", type=float, default=150.0)
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs and server logs")
    a = ap.parse_args()
    a.idle_after = [float(x) for x in a.idle_after.split(",") if x.strip()]
    if any(x >= a.tail for x in a.idle_after):
        ap.error("every --idle-after value must be below --tail")

    servers = dict(SERVERS)
    for spec in a.server or []:
        k, _, v = spec.partition("=")
        parts = v.split(":", 2)
        trig, workers, tpl = "watch", 1, v
        if parts[0] in ("watch", "sighup"):
            trig, tpl = parts[0], v.partition(":")[2]
            if len(parts) == 3 and parts[1].isdigit():
                workers, tpl = int(parts[1]), parts[2]
        servers[k.strip()] = (tpl.strip(), trig, workers)
    servers = pick(servers, a)
    if a.list or not servers:
        for k, v in servers.items():
            print(f"{k} ({v[1]}, {v[2]} worker(s)): {v[0]}")
        return
    info = prepare(a, DISTS)

    def line(r: dict) -> str:
        return (
            f"r{r['round']} {r['server']:24s} cold={r.get('cold_start_s', 0):.2f}s"
            f" srv_cpu={r.get('server_cpu_pct', 0):.0f}%"
            f" cli_cpu={r.get('client_cpu_pct', 0):.0f}%"
            f" other_cpu={r.get('other_cpu_pct', 0):.0f}%"
        )

    results = run_rounds(
        servers, a, info, lambda name, spec, rnd: Trial(name, spec, rnd, a).run(), line, 0.5
    )
    md, summary = report(results, servers, a, info)
    write_results(a, "reload", md, info, summary, results)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

#!/usr/bin/env python3
"""CPU time per request of two servers run side by side on the same CPU (a paired cross-check).

On a shared VM, the speed of a core changes from one 5 s trial to the next (±20 % here), far more
than the few percent `bench.py`'s interleaved rounds are asked to resolve. This runs servers A and
B *at the same time*, both pinned to the server CPU, each loaded by its own `wrk` (pinned to the
client CPU), and compares the CPU seconds each spent per request over the same window: whatever
slows the core slows both alike, so the ratio is steady (A against itself: 0.98-1.01).

CPU is read from /proc for the processes of each server's tree that are pinned to the server CPU
only (supervisor, fork server, worker), so a sidecar that moved itself elsewhere (subscriber.py
--cpus) is left out. Servers whose log has a `BENCH-SIDECAR` line must report ok, or the pair
is dropped. Every pair swaps which server starts first. Stdlib only; templates as in bench.py.

  P=/tmp/peers-venv/bin/python
  $P benchmarks/cpu_pair.py --suite metrics devserve-no-metrics devserve --pairs 8
  $P benchmarks/cpu_pair.py --suite metrics devserve-no-metrics devserve-no-metrics   # A/A check

Prints B/A CPU per request per pair and the median (min-max); B/A = 1.25 means B needs 25 % more
CPU per request, i.e. about 1/1.25 = 0.80 of A's throughput on a saturated core.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import (  # noqa: E402
    CLK_TCK,
    DEFAULT_APP_DIR,
    DEFAULT_CONFIG,
    HOST,
    REPO,
    _stat_fields,
    free_port,
    http_get,
    tree_pids,
)


def cpu_s(pid: int) -> tuple[float, float]:
    st = _stat_fields(pid)
    return (int(st[11]) / CLK_TCK, int(st[12]) / CLK_TCK) if st else (0.0, 0.0)


class Server:
    def __init__(self, name: str, template: str, suite: dict, a, tag: str) -> None:
        self.name = name
        self.port = free_port()
        self.control = f"/tmp/cpu-pair-{os.getpid()}-{tag}.sock"
        self.log = f"/tmp/cpu-pair-{os.getpid()}-{tag}.log"
        fmt = {
            "python": a.python,
            "bin": os.path.dirname(a.python),
            "port": self.port,
            "host": HOST,
            "app": suite["app"],
            "module": suite["app"].split(":")[0],
            "workers": 1,
            "app_dir": DEFAULT_APP_DIR,
            "repo": REPO,
            "control": self.control,
            "server_cpus": a.server_cpus,
            "client_cpus": a.client_cpus,
        }
        argv = ["taskset", "-c", a.server_cpus, *shlex.split(template.format(**fmt))]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=DEFAULT_APP_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http_get(self.port, suite["path"])[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{name} did not answer")

    def pinned(self, cpus: set[int]) -> list[int]:
        out = []
        for p in tree_pids(self.proc.pid):
            try:
                if os.sched_getaffinity(p) == cpus:
                    out.append(p)
            except OSError:
                pass
        return out

    def stop(self) -> dict | None:
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(60)
        with open(self.log, errors="replace") as f:
            lines = [line for line in f.read().splitlines() if line.startswith("BENCH-SIDECAR ")]
        for path in (self.log, self.control):
            if os.path.exists(path):
                os.unlink(path)
        return json.loads(lines[-1].split(" ", 1)[1]) if lines else None


def wrk(port: int, seconds: int, a) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            a.client_cpus,
            "wrk",
            "-t1",
            "-c64",
            f"-d{seconds}s",
            f"http://{HOST}:{port}/",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def one_pair(names: list[str], templates: dict, suite: dict, a) -> dict:
    servers = [Server(n, templates[n], suite, a, f"{i}") for i, n in enumerate(names)]
    try:
        time.sleep(a.settle)
        for w in [wrk(s.port, a.warmup, a) for s in servers]:
            w.communicate()
        cpus = {int(c) for c in a.server_cpus.split(",")}
        procs = [s.pinned(cpus) for s in servers]
        before = [[cpu_s(p) for p in ps] for ps in procs]
        loads = [wrk(s.port, a.duration, a) for s in servers]
        outs = [w.communicate()[0] for w in loads]
        after = [[cpu_s(p) for p in ps] for ps in procs]
    finally:
        sidecars = [s.stop() for s in servers]
    res = []
    for s, b0, b1, out, sc in zip(servers, before, after, outs, sidecars, strict=True):
        m = re.search(r"(\d+) requests in", out)
        reqs = int(m.group(1)) if m else 0
        user = sum(x[0] for x in b1) - sum(x[0] for x in b0)
        sys_ = sum(x[1] for x in b1) - sum(x[1] for x in b0)
        res.append(
            {
                "server": s.name,
                "requests": reqs,
                "user_s": user,
                "sys_s": sys_,
                "us_per_req": 1e6 * (user + sys_) / reqs if reqs else None,
                "sidecar_ok": None if sc is None else bool(sc.get("ok") and sc.get("messages")),
                "sidecar_messages": None if sc is None else sc.get("messages"),
            }
        )
    return {r["server"] + f"#{i}": r for i, r in enumerate(res)} | {"order": names}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("a", help="server name (baseline)")
    ap.add_argument("b", help="server name compared with it (may equal A: a check of the method)")
    ap.add_argument("--suite", default="metrics", help="suite whose server set and app to use")
    ap.add_argument("--config", default=DEFAULT_CONFIG)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--server-cpus", default="1")
    ap.add_argument("--client-cpus", default="0")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--server", action="append", default=[], help="NAME=TEMPLATE, added to the set")
    ap.add_argument("--out", help="write the pairs as JSON here")
    a = ap.parse_args(argv)
    with open(a.config) as f:
        cfg = json.load(f)
    suite = dict(cfg["suites"][a.suite])
    suite.setdefault("path", "/")
    # an entry may be {"cmd": TEMPLATE, ...} (bench.py's per-server options): the template only
    templates = {
        k: (v["cmd"] if isinstance(v, dict) else v)
        for k, v in cfg["server_sets"][suite["servers"]].items()
    }
    for spec in a.server:
        k, v = spec.split("=", 1)
        templates[k] = v
    ratios, pairs = [], []
    for i in range(a.pairs):
        order = [a.a, a.b] if i % 2 == 0 else [a.b, a.a]
        p = one_pair(order, templates, suite, a)
        pairs.append(p)
        ra = p[f"{a.a}#{order.index(a.a)}"] if a.a != a.b else p[f"{a.a}#0"]
        rb = p[f"{a.b}#{order.index(a.b)}"] if a.a != a.b else p[f"{a.b}#1"]
        bad = [r["server"] for r in (ra, rb) if r["sidecar_ok"] is False or not r["us_per_req"]]
        line = (
            f"pair {i + 1}: {a.a} {ra['us_per_req'] or 0:.2f} us/req ({ra['requests']} req), "
            f"{a.b} {rb['us_per_req'] or 0:.2f} us/req ({rb['requests']} req)"
        )
        if rb.get("sidecar_messages") is not None:
            line += f", sidecar messages {rb['sidecar_messages']}"
        if bad:
            print(line + f": dropped ({', '.join(bad)} failed)", flush=True)
            continue
        ratios.append(rb["us_per_req"] / ra["us_per_req"])
        print(line + f": B/A {ratios[-1]:.3f}", flush=True)
    if ratios:
        print(
            f"{a.b} / {a.a}, CPU per request: median {statistics.median(ratios):.3f} "
            f"({min(ratios):.3f}-{max(ratios):.3f}), {len(ratios)} pairs of {a.duration} s"
        )
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"argv": sys.argv, "ratios": ratios, "pairs": pairs}, f, indent=1)
    return 0 if ratios else 1


if __name__ == "__main__":
    sys.exit(main())

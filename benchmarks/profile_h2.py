#!/usr/bin/env python3
"""Where a devserve request's time goes, HTTP/2 (h2c) or HTTP/1.1, under h2load.

Runs devserve's `Server` in this process (one event loop, as a worker runs it: uvloop, metrics
on, access log off) under cProfile, pinned to one CPU, while h2load loads it from the other CPU.
Then it prints the profile's own time (tottime) summed by where the code lives, and the top
functions. Run it with the project's venv:

    .venv/bin/python benchmarks/profile_h2.py                       # h2c, -c10 -m10, 5 s, hello
    .venv/bin/python benchmarks/profile_h2.py --h1                  # the same over HTTP/1.1
    .venv/bin/python benchmarks/profile_h2.py --app asgi_json:app -c 1 -m 100 --out /tmp/h2.prof

cProfile adds a cost to every Python call, so the req/s it reports is far below a real run's
and code made of many small calls (h2, hpack, hyperframe) weighs more than it would; compare the
shares between --h1 and h2c, not the absolute figures. `--sampler pyinstrument` samples instead
(1 ms; much less distortion) when pyinstrument is importable, e.g. from a venv of its own:

    python3.11 -m venv /tmp/prof-venv && /tmp/prof-venv/bin/pip install pyinstrument
    PYTHONPATH=/tmp/prof-venv/lib/python3.11/site-packages .venv/bin/python \
        benchmarks/profile_h2.py --sampler pyinstrument
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import os
import pstats
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root: devserver/
sys.path.insert(0, os.path.join(HERE, "apps"))

from devserver.config import Config  # noqa: E402
from devserver.server import Server, run_loop  # noqa: E402
from devserver.sockets import bind_all  # noqa: E402

# (label, substring of the code's file path), first match wins
GROUPS = [
    ("hpack (HPACK encode/decode)", "/hpack/"),
    ("hyperframe (frame parse/serialise)", "/hyperframe/"),
    ("h2 state machine, flow-control accounting", "/h2/"),
    ("devserve protocols/http2*.py", "devserver/protocols/http2"),
    ("devserve protocols/stream.py (ASGI cycle over h2)", "devserver/protocols/stream.py"),
    ("devserve protocols/ other (state, scope, cycle, flow, http.py)", "devserver/protocols/"),
    ("devserve stats, tracing, other", "devserver/"),
    ("app", "benchmarks/apps/"),
    ("asyncio (Python part)", "/asyncio/"),
    ("uvloop / builtins (C)", "~"),
]


def group_of(filename: str) -> str:
    for label, needle in GROUPS:
        if needle in filename:
            return label
    return "other Python (stdlib, ...)"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--app", default="asgi_hello:app", help="module:attr in benchmarks/apps")
    ap.add_argument("-c", type=int, default=10, help="h2load -c (connections)")
    ap.add_argument("-m", type=int, default=10, help="h2load -m (streams per connection)")
    ap.add_argument("-D", type=int, default=5, help="h2load -D (seconds)")
    ap.add_argument("--h1", action="store_true", help="HTTP/1.1 (h2load --h1) instead of h2c")
    ap.add_argument("--server-cpu", default="1")
    ap.add_argument("--client-cpu", default="0")
    ap.add_argument("--no-profile", action="store_true", help="run without a profiler (req/s only)")
    ap.add_argument("--sampler", choices=["cprofile", "pyinstrument"], default="cprofile")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", help="write the pstats file here")
    args = ap.parse_args()

    os.sched_setaffinity(0, {int(args.server_cpu)})
    module, attr = args.app.split(":")
    app = getattr(importlib.import_module(module), attr)
    config = Config(port=0, access_log=False, log_level="warning")
    listeners = bind_all(config)
    port = listeners[0].sock.getsockname()[1]
    server = Server(config, app, listeners)
    result: dict = {}

    def load() -> None:
        while not server.started.is_set():
            time.sleep(0.01)
        argv = (
            [
                "taskset",
                "-c",
                args.client_cpu,
                "h2load",
                "-t1",
                f"-c{args.c}",
                f"-m{args.m}",
                f"-D{args.D}",
            ]
            + (["--h1"] if args.h1 else [])
            + [f"http://127.0.0.1:{port}/"]
        )
        p = subprocess.run(argv, capture_output=True, text=True)
        result["out"] = p.stdout + p.stderr
        server.request_stop(force=True)  # from this thread: the loop notices at its next pass

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        # request_stop sets asyncio Events: it must run on the loop, so the load thread asks it to
        server.request_stop = _threadsafe(loop, server.request_stop)  # type: ignore[method-assign]
        await server.serve()

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    prof = sampler = None
    if args.no_profile:
        pass
    elif args.sampler == "pyinstrument":
        from pyinstrument import Profiler

        sampler = Profiler(interval=0.001, async_mode="disabled")
        sampler.start()
    else:
        prof = cProfile.Profile()
        prof.enable()
    run_loop(serve(), config.loop)
    if prof:
        prof.disable()
    if sampler:
        sampler.stop()
    thread.join()
    out = result.get("out", "")
    lines = [x for x in out.splitlines() if x.startswith(("finished", "requests:", "Application"))]
    print("\n".join(lines))
    done = next((int(x.split()[1]) for x in lines if x.startswith("requests:")), 0)
    if sampler:
        by_group: dict[str, float] = {}
        by_func: dict[str, float] = {}
        stack = [sampler.last_session.root_frame()]
        while stack:
            frame = stack.pop()
            real = [c for c in frame.children if not c.is_synthetic]
            stack.extend(real)
            if frame.is_synthetic:
                continue
            own = frame.time - sum(c.time for c in real)  # its [self] child, or all of a leaf
            g = group_of(frame.file_path or "~")
            by_group[g] = by_group.get(g, 0.0) + own
            key = f"{frame.function} {frame.file_path_short}:{frame.line_no}"
            by_func[key] = by_func.get(key, 0.0) + own
        _table(by_group, done)
        print(f"\ntop {args.top} by own time (s):")
        for k, t in sorted(by_func.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"  {t:6.3f}  {k}")
        if args.out:
            with open(args.out, "w") as f:
                f.write(sampler.output_text(unicode=False, color=False))
        return 0
    if not prof:
        return 0
    if args.out:
        prof.dump_stats(args.out)
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # tottime
    by_group: dict[str, float] = {}
    for (filename, _line, _name), v in stats.stats.items():
        by_group[group_of(filename)] = by_group.get(group_of(filename), 0.0) + v[2]
    _table(by_group, done)
    print(f"(cProfile total {total:.2f} s)")
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


def _table(by_group: dict[str, float], done: int) -> None:
    total = sum(by_group.values())
    per = f": {1e6 * total / done:.0f} us a request" if done else ""
    print(f"\nprofiled {total:.2f} s for {done} requests{per}")
    print("| where (own time) | s | share | us/request |\n|---|---|---|---|")
    for label, t in sorted(by_group.items(), key=lambda kv: -kv[1]):
        per = f"{1e6 * t / done:.1f}" if done else ""
        print(f"| {label} | {t:.2f} | {100 * t / total:.1f} % | {per} |")
    print()


def _threadsafe(loop, fn):
    def call(*a, **kw):
        loop.call_soon_threadsafe(lambda: fn(*a, **kw))

    return call


if __name__ == "__main__":
    sys.exit(main())

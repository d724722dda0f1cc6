#!/usr/bin/env python3
"""Workers killed again and again under load: how many requests fail, and does devserve give up?

What the OOM killer does to a memory-hungry app: devserve `--prod --workers 2` serves the hello
app under wrk for --duration seconds while this script SIGKILLs one live worker every --every
seconds (found through the control socket). A server that stops respawning after a burst of
deaths answers 503 (or nothing) from then on; one that keeps respawning with a backoff loses only
the requests in flight at each kill and what arrives while no worker is up.

Prints wrk's totals, the non-2xx responses and socket errors, how many workers were killed, how
many were serving at the end, and whether devserve was in a crash loop then. Needs `wrk`.

    .venv/bin/python benchmarks/kill_loop.py --duration 30 --every 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PYTHON = os.path.join(REPO, ".venv", "bin", "python")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ctl(control: str, *args: str) -> dict:
    out = subprocess.run(
        [PYTHON, "-m", "devserver", "ctl", "--control", control, "--json", *args],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return json.loads(out.stdout) if out.stdout.strip() else {}


def wait_serving(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("devserve did not serve")


def killer(control: str, every: float, stop: threading.Event, killed: list[int]) -> None:
    while not stop.wait(every):
        workers = [w for w in ctl(control, "status").get("workers", []) if w["state"] == "ready"]
        if workers:
            pid = random.choice(workers)["pid"]
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--every", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    port = free_port()
    control = os.path.join(tempfile.mkdtemp(), "ctl.sock")
    server = subprocess.Popen(
        [PYTHON, "-m", "devserver", "--prod", "--workers", "2", "--no-access-log",
         "--port", str(port), "--control", control, "--app-dir", os.path.join(HERE, "apps"),
         "asgi_hello:app"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_serving(port)
        stop, killed = threading.Event(), []
        thread = threading.Thread(target=killer, args=(control, args.every, stop, killed))
        thread.start()
        wrk = subprocess.run(
            ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s",
             f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True,
        )  # fmt: skip
        stop.set()
        thread.join()
        status = ctl(control, "status")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=40)
    total = re.search(r"(\d+) requests in", wrk.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk.stdout)
    errors = re.search(r"Socket errors: (.*)", wrk.stdout)
    serving = [w for w in status.get("workers", []) if w["state"] == "ready"]
    print(f"requests: {total[1] if total else '?'} in {args.duration} s")
    print(f"non-2xx responses: {non2xx[1] if non2xx else 0}")
    print(f"socket errors: {errors[1] if errors else 'none'}")
    print(f"workers killed: {len(killed)} (one every {args.every:g} s)")
    print(f"at the end: {len(serving)} worker(s) serving, crash loop: "
          f"{status.get('server', {}).get('crash_loop')}")  # fmt: skip
    said = [line for line in output.splitlines() if "CRITICAL" in line or "crash" in line]
    print("devserve said:", *said,
          sep="\n  ")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

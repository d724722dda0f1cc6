#!/usr/bin/env python3
"""What the in-process control panel costs a busy server: devserve (hello world, 1 worker) in a
tmux terminal with its panel, then with --no-tui, loaded by wrk; CPU of the supervisor (where
the panel runs), of the worker and of tmux (standing in for the terminal), and req/s.

    /tmp/peers-venv/bin/python benchmarks/panel_cost.py --rounds 3

Server pinned to CPU 1 with its worker (so the panel's CPU is taken from the worker's core, the
worst case), wrk to CPU 0. Needs tmux, wrk and psutil (in devserve's .venv).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import urllib.request

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PORT = 8161
TMUX = ["tmux", "-L", "devserve-panel-cost"]


def cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def trial(panel: bool, seconds: float) -> str:
    subprocess.run([*TMUX, "kill-server"], capture_output=True)
    command = (
        f"env -u COLUMNS -u LINES taskset -c 1 {REPO}/.venv/bin/devserve asgi_hello:app "
        f"--port {PORT} --no-access-log --no-reload --control off" + ("" if panel else " --no-tui")
    )
    subprocess.run(
        [
            *TMUX,
            "new-session",
            "-d",
            "-s",
            "p",
            "-x",
            "140",
            "-y",
            "42",
            "-c",
            f"{HERE}/apps",
            command,
        ],
        check=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("devserve did not start") from None
            time.sleep(0.1)
    supervisor = next(
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"]
        and p.info["cmdline"][0].endswith("python")
        and f"--port {PORT}" in " ".join(p.info["cmdline"])
    )
    workers = supervisor.children(recursive=True)
    terminal = [p for p in psutil.process_iter(["name"]) if p.info["name"].startswith("tmux")]
    load = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            "wrk",
            "-t1",
            "-c32",
            f"-d{seconds + 2:.0f}s",
            f"http://127.0.0.1:{PORT}/",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    before = (cpu(supervisor), sum(map(cpu, workers)), sum(map(cpu, terminal)))
    time.sleep(seconds)
    after = (cpu(supervisor), sum(map(cpu, workers)), sum(map(cpu, terminal)))
    output = load.communicate()[0]
    rps = next(line.split()[-1] for line in output.splitlines() if "Requests/sec" in line)
    share = [100 * (b - a) / seconds for a, b in zip(before, after, strict=True)]
    supervisor.terminate()
    supervisor.wait(10)
    subprocess.run([*TMUX, "kill-server"], capture_output=True)
    name = "panel" if panel else "--no-tui"
    return (
        f"{name:8}  supervisor {share[0]:5.1f}%  worker {share[1]:5.1f}%"
        f"  tmux {share[2]:4.1f}%  req/s {rps}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for panel in (True, False):
            print(trial(panel, args.seconds), flush=True)


if __name__ == "__main__":
    main()

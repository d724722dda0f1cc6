#!/usr/bin/env python3
"""What the h2 library alone costs per HTTP/2 request, with no server, socket or profiler around it.

A server-side h2 connection, configured as devserve's (protocols/http2.py: no header validation
or normalisation in h2), is driven in memory by an h2 client connection in lockstep: the client
opens STREAMS streams with h2load's request headers (GET /, the same headers every time, so
HPACK indexes them after the first), the server reads them, answers each with devserve's
response headers and a 13-byte body, the client reads the answers and gives back its windows.
Only the server side's calls are timed, per request:

  receive   conn.receive_data(...)  frames parsed (hyperframe), HPACK decoded, stream state
  headers   conn.send_headers(...)  HPACK encoded, HEADERS frame, stream state
  data      conn.local_flow_control_window + conn.send_data(...)  flow control, DATA frame
  flush     conn.data_to_send()

and, inside those, hpack's Decoder.decode and Encoder.encode and hyperframe's parse and
serialise (each wrapped in a timer, ~0.2 us a call of its own). Run with the project's venv
(it has h2): `.venv/bin/python benchmarks/h2_lib_cost.py [--requests N] [--streams M]`.
Compare the total with what a whole request costs a saturated worker (1e6 / req/s, in us).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from time import perf_counter_ns

import h2.config
import h2.connection
import h2.events
import hpack
import hyperframe.frame

REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8000"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
]
BODY = b"Hello, world!"

SERVER_CONFIG = h2.config.H2Configuration(  # as devserver/protocols/http2.py's _CONFIG
    client_side=False,
    header_encoding=None,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)

INNER: dict[str, int] = {}
SERVING = [False]  # the inner timers count only the server connection's calls, not the client's


def _timed(owner, name: str, label: str) -> None:
    """Wrap owner.name to add its wall time to INNER[label] while the server side runs."""
    fn = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if not SERVING[0]:
            return fn(*args, **kwargs)
        t0 = perf_counter_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            INNER[label] = INNER.get(label, 0) + perf_counter_ns() - t0

    setattr(owner, name, wrapper)


def run(requests: int, streams: int, inner: bool) -> dict[str, float]:
    if inner:
        _timed(hpack.Decoder, "decode", "  hpack decode")
        _timed(hpack.Encoder, "encode", "  hpack encode")
        _timed(hyperframe.frame.Frame, "parse_frame_header", "  hyperframe parse header")
        for cls in (
            hyperframe.frame.HeadersFrame,
            hyperframe.frame.DataFrame,
            hyperframe.frame.WindowUpdateFrame,
        ):
            _timed(cls, "parse_body", "  hyperframe parse body")
            _timed(cls, "serialize", "  hyperframe serialize")
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    server = h2.connection.H2Connection(SERVER_CONFIG)
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()).encode()
    response = [
        (b":status", b"200"),
        (b"server", b"devserve"),
        (b"date", date),
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(BODY)).encode()),
    ]
    spent = {"receive": 0, "headers": 0, "data": 0, "flush": 0}
    INNER.clear()
    done = 0
    while done < requests:
        for _ in range(streams):
            client.send_headers(client.get_next_available_stream_id(), REQUEST, end_stream=True)
        wire = client.data_to_send()
        SERVING[0] = True
        t0 = perf_counter_ns()
        events = server.receive_data(wire)
        t1 = perf_counter_ns()
        spent["receive"] += t1 - t0
        for event in events:
            if not isinstance(event, h2.events.RequestReceived):
                continue
            sid = event.stream_id
            t0 = perf_counter_ns()
            server.send_headers(sid, response)
            t1 = perf_counter_ns()
            window = server.local_flow_control_window(sid)
            assert window >= len(BODY)
            server.send_data(sid, BODY, end_stream=True)
            t2 = perf_counter_ns()
            spent["headers"] += t1 - t0
            spent["data"] += t2 - t1
            done += 1
        t0 = perf_counter_ns()
        out = server.data_to_send()
        spent["flush"] += perf_counter_ns() - t0
        SERVING[0] = False
        for event in client.receive_data(out):
            if isinstance(event, h2.events.DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        # the client's WINDOW_UPDATEs reach the server with the next batch of requests
    us = {k: v / 1000 / done for k, v in spent.items()}
    us["total"] = sum(us.values())
    us.update({k: v / 1000 / done for k, v in sorted(INNER.items())})
    us["requests"] = done
    return us


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--streams", type=int, default=10, help="requests per read (h2load -m)")
    ap.add_argument("--cpu", type=int, default=1, help="pin to this CPU (-1: do not pin)")
    args = ap.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    plain = run(args.requests, args.streams, inner=False)
    wrapped = run(args.requests, args.streams, inner=True)
    print(
        f"h2 {h2.__version__}, hpack {hpack.__version__}, hyperframe {hyperframe.__version__}; "
        f"{plain['requests']} requests, {args.streams} streams a read; us per request"
    )
    print("| part | us/request | with the inner timers |\n|---|---|---|")
    for key in ("receive", "headers", "data", "flush", "total"):
        print(f"| {key} | {plain[key]:.1f} | {wrapped[key]:.1f} |")
    for key, v in wrapped.items():
        if key.startswith("  "):
            print(f"| {key.strip()} (inside the above) | | {v:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

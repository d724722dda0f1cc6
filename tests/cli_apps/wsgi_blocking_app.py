"""A WSGI app for the --wsgi-queue test: /block?PATH holds its thread until the file PATH exists
(printing one line when it starts to wait); every other path answers at once."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/block":
        release = environ["QUERY_STRING"]
        print("wsgi_blocking_app: blocking", flush=True)
        deadline = time.monotonic() + 20
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode()]

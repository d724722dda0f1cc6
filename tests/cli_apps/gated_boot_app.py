"""supervised_app, but its import waits until the file named by $GATED_BOOT_APP_GATE exists.

A test holds the workers in their boot (importing the app) for as long as it needs, then lets
them go by creating the file.
"""

from __future__ import annotations

import os
import time

_gate = os.environ.get("GATED_BOOT_APP_GATE")
while _gate and not os.path.exists(_gate):
    time.sleep(0.01)

from supervised_app import app  # noqa: E402  (after the gate, on purpose)

__all__ = ["app"]

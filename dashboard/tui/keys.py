"""The panel's keys, said once: the help screen and the command palette read them from here,
and every text that names how many requests `t` traces uses TRACE_NEXT."""

from __future__ import annotations

from typing import NamedTuple

TRACE_NEXT = 10  # `t` traces this many requests of each worker (the web dashboard's too)
TRACE_HINT = f"trace the next {TRACE_NEXT} requests of each worker"


class Key(NamedTuple):
    key: str  # as the help screen shows it
    title: str  # the command palette's entry; "" when the key has none there
    description: str
    action: str  # the Panel's action it runs


KEYS = (
    Key("+", "Scale up", "one worker more", "scale(1)"),
    Key("-", "Scale down", "one worker fewer (the newest drains)", "scale(-1)"),
    Key("r", "Restart", "rolling restart: new workers first, then the old ones drain", "restart"),
    Key("R", "Reload", "reload now (a restart for new code)", "reload"),
    Key(
        "k",
        "Kill worker",
        "kill the worker selected in the Workers pane (asks first); it is replaced at once",
        "kill",
    ),
    Key("t", "Trace", f"{TRACE_HINT}: the inspector then shows their ASGI messages", "trace"),
    Key(
        "/",
        "Filter requests",
        "filter the requests: 5xx, 404, GET, slow, >100ms or part of the path (escape clears)",
        "filter",
    ),
    Key("p", "Pause requests", "pause / resume the request stream", "pause"),
    Key("a", "Access log", "show / hide the access log's lines among the events", "access_log"),
    Key("enter", "", "inspect the selected request: scope, headers, ASGI messages, exception", ""),
    Key("tab", "", "move between the panes", ""),
    Key("?", "Keys", "this help: every key", "help"),
    Key("q", "Quit", "", "quit"),  # what it does depends on who started the server: below
)
QUIT_OWNED = "stop devserve gracefully: in-flight requests finish (q again: stop now)"
QUIT_ATTACHED = "leave; the server keeps running"

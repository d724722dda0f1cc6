"""Every devserve option, declared exactly once: default, env var, help, validation.

The CLI, the environment (`DEVSERVE_*`), `[tool.devserve]` in pyproject.toml and `devserve.toml`
are all derived from the `Config` fields below; nothing else spells an option out again.
Precedence: command line > environment > config file > default (`--prod` may change a default).
This module does no I/O beyond reading the config file and knows nothing about serving.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devserver.cpus import usable_cpus
from devserver.net import parse_networks

ENV_PREFIX = "DEVSERVE_"


class ConfigError(ValueError):
    """A value that cannot be used; the message names the option and the source."""


# --------------------------------------------------------------------------- parsers
# Each parser takes a string (CLI, env) or an already-typed value (TOML) and returns the value.
Parser = Callable[[Any], Any]
# How the value of an option read by a parser is written in help (`--timeout SECONDS`), unless
# the option declares its own metavar: see `metavar`
_KINDS: dict[Parser, str] = {}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def _integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    def parse(value: Any) -> int:
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{value!r} is not a whole number")
        if minimum is not None and number < minimum:
            raise ValueError(f"{number} is below the minimum of {minimum}")
        if maximum is not None and number > maximum:
            raise ValueError(f"{number} is above the maximum of {maximum}")
        return number

    _KINDS[parse] = "N"
    return parse


def _amount(unit: str, shown: str) -> Parser:
    """A parser for a number of `unit` (seconds, milliseconds) that is zero or more; `shown`
    is how help writes one."""

    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number of {unit}") from None
        if number < 0 or number != number:
            raise ValueError(f"{value!r} must be zero or more {unit}")
        return number

    _KINDS[parse] = shown
    return parse


_seconds = _amount("seconds", "SECONDS")
_milliseconds = _amount("milliseconds", "MS")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def _choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        text = str(value).lower()
        if text not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _header(value: Any) -> tuple[str, str]:
    name, sep, text = _text(value).partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in " \t\r\n") or "\r" in text or "\n" in text:
        raise ValueError(f"{value!r} is not NAME:VALUE")
    return (name, text.strip())


def _bind(value: Any) -> str:
    text = _text(value).strip()
    if not text:
        raise ValueError("an empty bind address")
    if text.startswith("unix:") or text.startswith("fd://"):
        if text.startswith("fd://") and not text[5:].isdigit():
            raise ValueError(f"{value!r}: fd://N needs a file descriptor number")
        return text
    _host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT, unix:PATH or fd://N")
    return text


class _AnyAtom(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "-"


def _log_format(value: Any) -> str:
    text = _text(value)
    try:
        text % _AnyAtom()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{text!r} is not a valid %-format: {exc}") from None
    return text


def _dashboard(value: Any) -> str:
    text = _text(value).strip()
    if text.lower() in ("auto", "on", "off"):
        return text.lower()
    host, sep, port = text.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 <= int(port) <= 65535:
        hint = " (give APP before a bare --dashboard)" if not port.isdigit() else ""
        raise ValueError(f"{value!r} is not HOST:PORT, auto, on or off{hint}")
    return text


def _ips(value: Any) -> str:
    text = _text(value)
    parse_networks(text)
    return text


# --------------------------------------------------------------------------- declaration
@dataclass(frozen=True)
class Option:
    """What one option declares beside its Config field: the CLI, env and file loaders and the
    flag reference are all derived from it (its name comes from the field: see `OPTIONS`)."""

    default: Any  # a tuple for a `multiple` option
    help: str
    group: str  # the purpose it serves ("HTTP", "Reload"...): the flag reference's section
    parse: Parser  # a string (CLI, env) or a TOML value → the value; ValueError when bad
    switch: bool  # a boolean: on the command line a flag that takes no value
    prod: Any = dataclasses.MISSING  # the default under --prod, when it differs
    flag: str | None = None  # the CLI spelling, when not --NAME
    negatable: bool = False  # a switch with a --no-NAME form
    multiple: bool = False  # repeatable; in env and files a list split at `separator`
    separator: str = ","
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    bare: str | None = None  # the value the flag takes when given without one


def option(
    default: Any,
    help: str,
    parse: Parser = _text,
    *,
    group: str,
    prod: Any = dataclasses.MISSING,
    flag: str | None = None,
    negatable: bool = False,
    multiple: bool = False,
    separator: str = ",",
    metavar: str | None = None,
    choices: Sequence[str] = (),
    bare: str | None = None,
) -> Any:
    """Declare a Config field and its Option (`group`, `bare`...: see Option)."""
    spec = Option(
        default=default,
        help=help,
        group=group,
        parse=parse,
        switch=parse is _boolean,
        prod=prod,
        flag=flag,
        negatable=negatable,
        multiple=multiple,
        separator=separator,
        metavar=metavar,
        choices=tuple(choices),
        bare=bare,
    )
    # the field's metadata is the Option, and its fields by name too: scripts/gen_flags.py and
    # tests/test_docs_reference.py read them as metadata["help"]; new code reads OPTIONS[name]
    meta = {"option": spec, **{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}}
    if multiple:
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


# The groups options declare, in the order `devserve --help` and the flag reference show them
GROUPS = (
    "App",
    "Binding",
    "HTTP",
    "HTTP/2",
    "TLS",
    "WebSocket",
    "Workers and restarts",
    "Reload",
    "Logging",
    "Metrics and tracing",
    "Control and dashboard",
    "Production",
)
_LOOPS = ("auto", "uvloop", "asyncio")
_LIFESPAN = ("auto", "on", "off")
_INTERFACES = ("auto", "asgi3", "asgi2", "wsgi")
_WS = ("auto", "websockets", "none")
_HTTP = ("auto", "1", "2")
_FORWARDED_HEADERS = ("x-forwarded", "forwarded")
_LOG_FORMATS = ("plain", "json")
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# Parts of header and query parameter names whose values --redact hides (case-insensitive)
REDACT_NAMES = (
    "auth",
    "cookie",
    "token",
    "secret",
    "key",
    "session",
    "pass",  # password, passwd, passphrase
    "pwd",
    "jwt",
    "csrf",
    "xsrf",
    "signature",  # X-Amz-Signature
    "credential",  # X-Amz-Credential
    "sec-websocket-protocol",  # where browsers' WebSockets carry bearer tokens
)
# What --reload watches unless told otherwise (gitignore-style patterns; see supervisor/reload.py)
RELOAD_INCLUDE = ("*.py", ".env")
RELOAD_EXCLUDE = (
    ".git/",
    "__pycache__/",
    ".venv/",
    "venv/",
    "node_modules/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    "*.pyc",
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "\\#*#",  # emacs auto-save; the backslash keeps gitignore from reading a comment
)


@dataclass(frozen=True)
class Config:
    """The resolved settings of one devserve run (immutable; build it with `load_config`)."""

    app: str | None = option(
        None, "The app as module:attr (default: the built-in demo app).", group="App"
    )
    factory: bool = option(
        False, "Treat APP as a factory: call it with no arguments.", _boolean, group="App"
    )
    app_dir: str = option(
        ".", "Directory put first on sys.path before importing APP.", group="App", metavar="DIR"
    )
    host: str = option(
        "127.0.0.1",
        "Interface to bind (use :: for all IPv6, 0.0.0.0 for IPv4).",
        group="Binding",
        metavar="HOST",
    )
    port: int = option(
        8000,
        "Port to bind (0 picks a free one).",
        _integer(0, 65535),
        group="Binding",
        metavar="PORT",
    )
    uds: str | None = option(
        None, "Bind a Unix domain socket at this path.", group="Binding", metavar="PATH"
    )
    fd: int | None = option(
        None,
        "Serve on an inherited file descriptor.",
        _integer(0),
        group="Binding",
        metavar="FD",
    )
    bind: tuple[str, ...] = option(
        (),
        "Listen address, repeatable: HOST:PORT, [::1]:PORT, unix:PATH or fd://N. "
        "Replaces --host/--port/--uds/--fd.",
        _bind,
        multiple=True,
        metavar="ADDRESS",
        group="Binding",
    )
    backlog: int = option(
        2048, "Maximum queued connections per listener.", _integer(1), group="Binding"
    )
    root_path: str = option(
        "",
        "ASGI root_path: the prefix the app is mounted under.",
        group="HTTP",
        metavar="PATH",
    )
    proxy_headers: bool = option(
        True,
        "Trust X-Forwarded-* and Forwarded from --forwarded-allow-ips.",
        _boolean,
        negatable=True,
        group="HTTP",
    )
    forwarded_allow_ips: str = option(
        "127.0.0.1",
        "Comma-separated IPs or CIDR networks trusted for proxy headers ('*' trusts all).",
        _ips,
        group="HTTP",
        metavar="IPS",
    )
    forwarded_headers: str = option(
        "x-forwarded",
        "Which proxy headers to read from --forwarded-allow-ips: x-forwarded (X-Forwarded-For, "
        "-Proto, -Host: nginx, HAProxy, most load balancers) or forwarded (RFC 7239); the other "
        "family is ignored, since a proxy passes a client's own copy of it through.",
        _choice(*_FORWARDED_HEADERS),
        choices=_FORWARDED_HEADERS,
        group="HTTP",
    )
    forwarded_host: bool = option(
        False,
        "Let a trusted proxy's X-Forwarded-Host or Forwarded host= replace the Host header.",
        _boolean,
        group="HTTP",
    )
    limit_concurrency: int | None = option(
        None,
        "Answer 503 when this many requests and WebSocket sessions are already in flight in one "
        "worker (idle keep-alive connections do not count: see --limit-connections).",
        _integer(1),
        group="HTTP",
    )
    limit_connections: int = option(
        2048,
        "Open client connections per worker (idle, half-open and busy alike); at the cap the "
        "worker stops accepting until one closes, idle keep-alive connections closing first.",
        _integer(1),
        group="HTTP",
    )
    limit_request_fields: int = option(
        100, "Most header fields in one request (more: 431).", _integer(1), group="HTTP"
    )
    limit_request_field_size: int = option(
        8190,
        "Largest single request header field, name and value, in bytes (larger: 431).",
        _integer(64),
        group="HTTP",
        metavar="BYTES",
    )
    limit_request_line: int = option(
        8190,
        "Longest request line in bytes (longer: 414).",
        _integer(64),
        group="HTTP",
        metavar="BYTES",
    )
    max_header_size: int = option(
        65536,
        "Largest request header block in bytes (larger: 431).",
        _integer(256),
        group="HTTP",
        metavar="BYTES",
    )
    timeout_keep_alive: float = option(
        5.0, "Close idle keep-alive connections after this many seconds.", _seconds, group="HTTP"
    )
    timeout_request_header: float = option(
        10.0,
        "Disconnect a client whose request head takes longer than this.",
        _seconds,
        group="HTTP",
    )
    timeout_request_body: float = option(
        30.0,
        "Answer 408 and close when a request body stalls: no body bytes for this many seconds "
        "while the app waits for them (0: never).",
        _seconds,
        group="HTTP",
    )
    timeout_send: float = option(
        30.0,
        "Close a connection whose client takes none of a waiting response for this many seconds "
        "(it stopped reading; 0: never).",
        _seconds,
        group="HTTP",
    )
    timeout_graceful_shutdown: float = option(
        3.0,
        "Seconds in-flight requests get to finish on stop (30 with --prod).",
        _seconds,
        prod=30.0,
        group="Workers and restarts",
    )
    ssl_keyfile: str | None = option(
        None, "TLS private key file (PEM).", group="TLS", metavar="FILE"
    )
    ssl_certfile: str | None = option(
        None, "TLS certificate chain file (PEM).", group="TLS", metavar="FILE"
    )
    ssl_keyfile_password: str | None = option(
        None, "Password of the TLS private key.", group="TLS", metavar="PASSWORD"
    )
    ssl_ca_certs: str | None = option(
        None,
        "CA bundle to verify client certificates against.",
        group="TLS",
        metavar="FILE",
    )
    log_level: str = option(
        "info",
        "Log level.",
        _choice(*_LOG_LEVELS),
        choices=_LOG_LEVELS,
        group="Logging",
        metavar="LEVEL",
    )
    log_config: str | None = option(
        None,
        "Logging config file: dictConfig JSON or YAML, or fileConfig INI.",
        group="Logging",
        metavar="FILE",
    )
    access_log: bool = option(
        True, "Log one line per request.", _boolean, negatable=True, group="Logging"
    )
    access_log_format: str | None = option(
        None,
        "Access log format with gunicorn's atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(D)s'.",
        _log_format,
        group="Logging",
        metavar="FORMAT",
    )
    server_header: bool = option(
        True, "Send 'server: devserve'.", _boolean, negatable=True, group="HTTP"
    )
    date_header: bool = option(True, "Send a Date header.", _boolean, negatable=True, group="HTTP")
    header: tuple[tuple[str, str], ...] = option(
        (),
        "Extra response header NAME:VALUE, repeatable (env: separate with ';').",
        _header,
        multiple=True,
        separator=";",
        metavar="NAME:VALUE",
        group="HTTP",
    )
    env_file: str | None = option(
        None,
        "Load environment variables from this .env file.",
        group="App",
        metavar="FILE",
    )
    lifespan: str = option(
        "auto",
        "Lifespan protocol: on (fail start if it fails), off, auto (tolerate apps without it).",
        _choice(*_LIFESPAN),
        choices=_LIFESPAN,
        group="App",
    )
    interface: str = option(
        "auto", "App interface.", _choice(*_INTERFACES), choices=_INTERFACES, group="App"
    )
    loop: str = option(
        "auto", "Event loop implementation.", _choice(*_LOOPS), choices=_LOOPS, group="App"
    )
    threads: int = option(
        10, "Threads per worker that run a WSGI app's requests.", _integer(1), group="App"
    )
    wsgi_queue: int = option(
        1000,
        "WSGI requests per worker waiting for a free thread (more: 503).",
        _integer(1),
        group="App",
    )
    http: str = option(
        "auto",
        "HTTP versions served: auto (HTTP/1.1, and HTTP/2 by TLS ALPN or prior knowledge), "
        "1 (HTTP/1.1 only) or 2 (HTTP/2 only).",
        _choice(*_HTTP),
        choices=_HTTP,
        group="HTTP/2",
    )
    h2_max_concurrent_streams: int = option(
        100,
        "HTTP/2 streams a client may have open on one connection.",
        _integer(1),
        group="HTTP/2",
    )
    h2_max_frame_size: int = option(
        16384,
        "Largest HTTP/2 frame payload a client may send (SETTINGS_MAX_FRAME_SIZE).",
        _integer(16384, 16777215),
        group="HTTP/2",
        metavar="BYTES",
    )
    h2_stream_window: int = option(
        65535,
        "HTTP/2 flow-control window of each stream: request body bytes buffered for the app.",
        _integer(1, 2**31 - 1),
        group="HTTP/2",
        metavar="BYTES",
    )
    h2_connection_window: int = option(
        262144,
        "HTTP/2 flow-control window of a connection: request body bytes buffered for all its "
        "streams.",
        _integer(65535, 2**31 - 1),
        group="HTTP/2",
        metavar="BYTES",
    )
    h2_ping_interval: float = option(
        20.0,
        "PING an HTTP/2 client with open streams that sent nothing for this many seconds "
        "(0: never).",
        _seconds,
        group="HTTP/2",
    )
    h2_ping_timeout: float = option(
        20.0,
        "Close an HTTP/2 connection whose PING is this many seconds late (0: never).",
        _seconds,
        group="HTTP/2",
    )
    ws: str = option(
        "auto",
        "WebSocket support: auto and websockets serve it; none leaves Upgrade requests to the app "
        "as plain HTTP.",
        _choice(*_WS),
        choices=_WS,
        group="WebSocket",
    )
    ws_max_size: int = option(
        16 * 1024 * 1024,
        "Largest incoming WebSocket message in bytes (larger: close 1009).",
        _integer(1),
        group="WebSocket",
        metavar="BYTES",
    )
    ws_max_queue: int = option(
        32,
        "Incoming WebSocket messages buffered for the app before reading pauses.",
        _integer(1),
        group="WebSocket",
    )
    ws_ping_interval: float = option(
        20.0, "Seconds between WebSocket pings (0: no pings).", _seconds, group="WebSocket"
    )
    ws_ping_timeout: float = option(
        20.0,
        "Close a WebSocket whose pong is this many seconds late (0: never).",
        _seconds,
        group="WebSocket",
    )
    ws_per_message_deflate: bool = option(
        True,
        "Offer WebSocket permessage-deflate compression.",
        _boolean,
        negatable=True,
        group="WebSocket",
    )
    prod: bool = option(
        False, "Production mode: headless, prod defaults.", _boolean, group="Production"
    )
    tui: bool = option(
        True,
        "Open the control panel in a terminal (dev mode).",
        _boolean,
        negatable=True,
        group="Control and dashboard",
    )
    workers: int | None = option(
        None,
        "Worker processes (default: $WEB_CONCURRENCY, else 1; with --prod one per CPU devserve"
        " may use: its CPU affinity, capped by its container's CPU limit).",
        _integer(1),
        group="Workers and restarts",
    )
    timeout: float = option(
        30.0,
        "Kill and replace a worker whose heartbeat is silent this long (0: never).",
        _seconds,
        group="Workers and restarts",
    )
    timeout_boot: float = option(
        60.0,
        "Seconds a worker may take to import the app and start (0: no limit).",
        _seconds,
        group="Workers and restarts",
    )
    max_requests: int = option(
        0,
        "Recycle a worker after this many requests (0: never).",
        _integer(0),
        group="Workers and restarts",
    )
    max_requests_jitter: int = option(
        0,
        "Add up to this many requests to --max-requests, per worker.",
        _integer(0),
        group="Workers and restarts",
    )
    max_worker_lifetime: float = option(
        0.0,
        "Recycle a worker after this many seconds (0: never; up to 10% jitter).",
        _seconds,
        group="Workers and restarts",
    )
    max_worker_memory: int = option(
        0,
        "Recycle a worker whose RSS exceeds this many MiB (0: never).",
        _integer(0),
        group="Workers and restarts",
        metavar="MIB",
    )
    control: str = option(
        "auto",
        "Control socket path for `devserve ctl` and `devserve top` "
        "('auto': under $XDG_RUNTIME_DIR or the working directory; 'off': none).",
        group="Control and dashboard",
        metavar="PATH",
    )
    admin: str | None = option(
        None,
        "Serve /livez, /readyz and Prometheus /metrics on this HOST:PORT (off unless given).",
        _bind,
        group="Production",
        metavar="HOST:PORT",
    )
    dashboard: str = option(
        "auto",
        "Serve the web dashboard on HOST:PORT ('auto': on 127.0.0.1 at the app's port + 1 in dev "
        "mode, off with --prod; 'on', or the flag alone: there in --prod too; 'off': none).",
        _dashboard,
        metavar="[HOST:PORT]",
        bare="on",
        group="Control and dashboard",
    )
    dashboard_token: str | None = option(
        None,
        "The web dashboard's access token (default: a random one, kept for the next run on the "
        "same address; '' for none, allowed on a loopback address only).",
        group="Control and dashboard",
        metavar="TOKEN",
    )
    dashboard_token_file: str | None = option(
        None,
        "Read the web dashboard's token from this file (keeps it off the command line, where "
        "other local users see it in ps).",
        group="Control and dashboard",
        metavar="FILE",
    )
    dashboard_read_only: bool = option(
        False,
        "The web dashboard shows everything and refuses every action.",
        _boolean,
        group="Control and dashboard",
    )
    metrics: bool = option(
        True,
        "Measure every request: latency histogram, status classes, bytes, sampled records.",
        _boolean,
        negatable=True,
        group="Metrics and tracing",
    )
    slow_request: float = option(
        500.0,
        "Requests slower than this many milliseconds are always kept in the request stream.",
        _milliseconds,
        group="Metrics and tracing",
    )
    redact: bool = option(
        True,
        "Hide secret header and query values in request records, traces and logs (see "
        "--redact-names).",
        _boolean,
        negatable=True,
        group="Metrics and tracing",
    )
    redact_names: tuple[str, ...] = option(
        REDACT_NAMES,
        "Header and query parameter names that contain one of these words are redacted, "
        "repeatable; replaces the default list: " + ", ".join(REDACT_NAMES) + ".",
        multiple=True,
        metavar="WORD",
        group="Metrics and tracing",
    )
    trace: bool = option(
        False,
        "Log every ASGI message of every request and of lifespan (the teaching view).",
        _boolean,
        group="Metrics and tracing",
    )
    pidfile: str | None = option(
        None,
        "Write the supervisor's pid to this file.",
        group="Production",
        metavar="FILE",
    )
    log_format: str = option(
        "plain", "Log line format.", _choice(*_LOG_FORMATS), choices=_LOG_FORMATS, group="Logging"
    )
    reload: bool | None = option(
        None,
        "Roll in new workers when a watched file changes (default: on in a terminal, off with "
        "--prod).",
        _boolean,
        prod=False,
        negatable=True,
        group="Reload",
    )
    reload_dir: tuple[str, ...] = option(
        (),
        "Directory to watch for --reload, repeatable (default: --app-dir).",
        multiple=True,
        metavar="DIR",
        group="Reload",
    )
    reload_include: tuple[str, ...] = option(
        (),
        "Also reload on files matching this gitignore-style glob, repeatable (always watched: "
        + ", ".join(RELOAD_INCLUDE)
        + ", the config file and --env-file).",
        multiple=True,
        metavar="GLOB",
        group="Reload",
    )
    reload_exclude: tuple[str, ...] = option(
        (),
        "Never reload on paths matching this gitignore-style glob, repeatable (always "
        "excluded: " + ", ".join(RELOAD_EXCLUDE) + ").",
        multiple=True,
        metavar="GLOB",
        group="Reload",
    )
    reload_delay: float = option(
        0.05, "Seconds to gather the changes of one save into one reload.", _seconds, group="Reload"
    )

    @property
    def log_level_number(self) -> int:
        return 5 if self.log_level == "trace" else int(getattr(logging, self.log_level.upper()))


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Config)}
OPTIONS: dict[str, Option] = {name: f.metadata["option"] for name, f in FIELDS.items()}


def metavar(name: str) -> str:
    """How the option's value is written in help: its declared metavar, else its choices
    (`auto|on|off`), else what its parser reads (`N`, `SECONDS`), else its name."""
    spec = OPTIONS[name]
    if spec.metavar:
        return spec.metavar
    if spec.choices:
        return "|".join(spec.choices)
    return _KINDS.get(spec.parse, name.upper())


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def cli_flag(name: str) -> str:
    return OPTIONS[name].flag or "--" + name.replace("_", "-")


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class Resolved:
    """A Config plus, for each option, where its value came from."""

    config: Config
    sources: Mapping[str, str]


def _parse(name: str, raw: Any, source: str) -> Any:
    spec = OPTIONS[name]
    try:
        if spec.multiple:
            items = raw if isinstance(raw, list | tuple) else _split(raw, spec.separator)
            return tuple(spec.parse(item) for item in items)
        return spec.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{cli_flag(name)} (from {source}): {exc}") from None


def _split(raw: Any, separator: str) -> list[str]:
    return [part.strip() for part in str(raw).split(separator) if part.strip()]


def find_config_file(directory: Path) -> tuple[Path, Mapping[str, Any]] | None:
    """The devserve.toml, else pyproject.toml's [tool.devserve], in `directory`."""
    for path, section in (
        (directory / "devserve.toml", ()),
        (directory / "pyproject.toml", ("tool", "devserve")),
    ):
        if not path.is_file():
            continue
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read it: {exc}") from None
        for key in section:
            data = data.get(key, {}) if isinstance(data, dict) else {}
        if data or not section:
            return path, data
    return None


def _from_file(directory: Path) -> dict[str, tuple[Any, str]]:
    found = find_config_file(directory)
    if found is None:
        return {}
    path, table = found
    values = {}
    for key, raw in table.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise ConfigError(f"{path}: unknown option {key!r}")
        values[name] = (raw, str(path))
    return values


def _from_env(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    return {
        name: (environ[env_var(name)], env_var(name)) for name in FIELDS if env_var(name) in environ
    }


def load_config(
    cli: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> Resolved:
    """Resolve every option from the CLI values given, the environment and the config file.

    `cli` holds only the options the user actually typed (unset ones are absent or None).
    Raises ConfigError with a one-line message naming the option and where the bad value came from.
    """
    environ = os.environ if environ is None else environ
    layers = [_from_file(directory or Path.cwd()), _from_env(environ)]
    if "WEB_CONCURRENCY" in environ and "workers" not in layers[1]:
        layers[1]["workers"] = (environ["WEB_CONCURRENCY"], "WEB_CONCURRENCY")
    layers.append({k: (v, "command line") for k, v in cli.items() if v not in (None, ())})
    values: dict[str, Any] = {}
    sources: dict[str, str] = {name: "default" for name in FIELDS}
    for layer in layers:
        for name, (raw, source) in layer.items():
            values[name] = _parse(name, raw, source)
            sources[name] = source
    if values.get("prod"):
        for name, spec in OPTIONS.items():
            if sources[name] == "default" and spec.prod is not dataclasses.MISSING:
                values[name] = spec.prod
                sources[name] = "default (--prod)"
    config = Config(**values)
    _check(config, sources)
    return Resolved(config, sources)


def _check(config: Config, sources: Mapping[str, str]) -> None:
    """Cross-option rules that a single parser cannot see."""
    if (config.ssl_keyfile is None) != (config.ssl_certfile is None):
        raise ConfigError("--ssl-keyfile and --ssl-certfile must be given together")
    if config.dashboard_token is not None and config.dashboard_token_file is not None:
        raise ConfigError("--dashboard-token and --dashboard-token-file exclude each other")
    for name in (
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_ca_certs",
        "log_config",
        "env_file",
        "dashboard_token_file",
    ):
        path = getattr(config, name)
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"{cli_flag(name)} (from {sources[name]}): no such file: {path}")
    if not os.path.isdir(config.app_dir):
        raise ConfigError(
            f"--app-dir (from {sources['app_dir']}): no such directory: {config.app_dir}"
        )
    for directory in config.reload_dir:
        if not os.path.isdir(directory):
            raise ConfigError(
                f"--reload-dir (from {sources['reload_dir']}): no such directory: {directory}"
            )


def reload_enabled(config: Config, terminal: bool) -> bool:
    """--reload / --no-reload, else on when devserve runs in a terminal (never with --prod)."""
    if config.reload is not None:
        return config.reload
    return terminal and not config.prod


def worker_count(config: Config) -> int:
    """--workers, else 1 in dev mode and, with --prod, the CPUs devserve may use (its affinity
    and its container's CPU limit: devserver/cpus.py)."""
    if config.workers is not None:
        return config.workers
    return usable_cpus() if config.prod else 1

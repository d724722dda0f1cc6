"""Logging setup and the access log: levels, colours, gunicorn-style formats, --log-config.

Everything goes through the stdlib `logging` module (loggers `devserve.server`,
`devserve.access`), so a user's dictConfig/fileConfig can route or silence any of it.
The access-log line is only built when the access logger is enabled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from devserver.redaction import Redactor, printable
from devserver.stats import Exchange, shorten

if TYPE_CHECKING:
    from devserver.config import Config

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_STATUS_COLOURS = {1: "\033[37m", 2: "\033[32m", 3: "\033[36m", 4: "\033[33m", 5: "\033[31m"}
_LEVEL_COLOURS = {
    "DEBUG": "\033[34m",
    "INFO": "\033[32m",
    "WARNING": "\033[33m",
    "ERROR": "\033[31m",
    "CRITICAL": "\033[1;31m",
    "TRACE": "\033[2m",
}
_RESET = "\033[0m"


def use_colour(stream: Any) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


class LevelFormatter(logging.Formatter):
    """`INFO:     message`, the level coloured when writing to a terminal."""

    def __init__(self, colour: bool) -> None:
        super().__init__("%(levelprefix)s %(message)s")
        self.colour = colour

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (stdlib name)
        prefix = f"{record.levelname}:".ljust(9)
        if self.colour:
            prefix = _LEVEL_COLOURS.get(record.levelname, "") + prefix + _RESET
        record.levelprefix = prefix
        return super().formatMessage(record)


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (--log-format json)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(config: Config) -> None:
    """Set up logging for this process from --log-level, --log-format, --log-config, the tty.

    devserve's own setup comes first, so a --log-config file changes only the loggers it names
    (unless a dictConfig asks to disable the others).
    """
    level = config.log_level_number
    handlers = {
        "devserve.server": sys.stderr,
        "devserve.access": sys.stdout,
        "devserve.supervisor": sys.stderr,
        "devserve.trace": sys.stderr,  # --trace and the control API's `trace`
    }
    if config.prod or config.log_format == "json":
        # production: one stream (stdout, what containers and journald collect), so the lines
        # of every process stay in order
        handlers = dict.fromkeys(handlers, sys.stdout)
    for name, stream in handlers.items():
        log = logging.getLogger(name)
        log.handlers.clear()
        handler = logging.StreamHandler(stream)
        formatter: logging.Formatter = (
            JSONFormatter() if config.log_format == "json" else LevelFormatter(use_colour(stream))
        )
        handler.setFormatter(formatter)
        log.addHandler(handler)
        log.setLevel(level)
        log.propagate = False
    server = logging.getLogger("devserve.server")
    if not any(isinstance(f, RateLimit) for f in server.filters):
        # what clients can make it say (431, 408, 503...) must not flood the log: a client
        # sending bad requests as fast as it can would otherwise fill disks and hide the rest
        server.addFilter(RateLimit())
    for name in ("devserve.server", "devserve.trace"):  # they quote paths, close reasons...
        log = logging.getLogger(name)
        if not any(isinstance(f, Printable) for f in log.filters):
            log.addFilter(Printable())
    if not config.access_log:
        logging.getLogger("devserve.access").setLevel(logging.CRITICAL + 1)
    frames = logging.getLogger("devserve.websocket")  # websockets' own: every open and close
    if frames.level == logging.NOTSET:  # at INFO, too chatty for the server log
        frames.setLevel(logging.WARNING)
    if config.log_config:
        load_log_config(config.log_config)


def redact_records(redact: Callable[[str], str]) -> None:
    """Pass the text of every log record this process makes through `redact` (the dashboard's
    token becomes `abcd…`), whoever logs it. The format and each text argument are redacted
    apart, so filters that read the arguments (Printable) still see them."""
    make_record = logging.getLogRecordFactory()

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif record.args:  # a mapping: redacted whole, as the message it makes
            with contextlib.suppress(Exception):  # a bad format is reported by the handler
                record.msg, record.args = redact(record.getMessage()), None
        return record

    logging.setLogRecordFactory(redacting)


class Printable(logging.Filter):
    """Escapes control characters in a record's text arguments: a path decodes `%0a` and `%1b`,
    and a client must not forge a log line or send escape sequences to the operator's terminal.
    The format string is the code's own and keeps its newlines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(printable(a) if isinstance(a, str) else a for a in args)
        return True


class RateLimit(logging.Filter):
    """At most `burst` warnings of one kind (the same message template) per `period` seconds;
    the rest are counted, and the next one let through says how many there were. Errors and
    worse always pass."""

    def __init__(self, burst: int = 10, period: float = 1.0) -> None:
        super().__init__()
        self.burst, self.period = burst, period
        # template → [window start, let through in the window, held back]; templates are the
        # code's own format strings, so the map stays as small as the number of call sites
        self._kinds: dict[str, list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        key = str(record.msg)
        now = time.monotonic()
        kind = self._kinds.get(key)
        if kind is None or now - kind[0] >= self.period:
            held = int(kind[2]) if kind is not None else 0
            self._kinds[key] = [now, 1, 0]
            if held:
                record.msg = f"{record.msg} ({held} more like this not logged)"
            return True
        if kind[1] < self.burst:
            kind[1] += 1
            return True
        kind[2] += 1
        return False


class EventHandler(logging.Handler):
    """Log records as control-API `log` events (the in-process panel shows them)."""

    def __init__(self, publish: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.publish = publish
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.publish(
            {
                "kind": "log",
                "source": "devserve",
                "logger": record.name,
                "level": record.levelname.lower(),
                "line": line,
            }
        )


def logs_to_events(publish: Callable[[dict[str, Any]], None], also_terminal: bool = False) -> None:
    """Send devserve's own log lines to `publish` instead of the terminal (the panel owns it),
    or besides it with `also_terminal` (the web dashboard shows them too)."""
    names = ("devserve.server", "devserve.access", "devserve.supervisor", "devserve.trace", "")
    for name in names:
        log = logging.getLogger(name)
        if not also_terminal:
            log.handlers = [h for h in log.handlers if not _writes_to_terminal(h)]
        log.addHandler(EventHandler(publish))


def _writes_to_terminal(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return not isinstance(handler, logging.FileHandler) and stream in (sys.stdout, sys.stderr)


def reopen_files() -> None:
    """Reopen every log file (SIGUSR1, after logrotate moved them); streams are left alone."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for log in loggers:
        for handler in getattr(log, "handlers", ()):
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()
                    handler.stream = handler._open()
                finally:
                    handler.release()


class LogConfigError(Exception):
    """A --log-config file that cannot be used; the message is the whole story, one line."""


def load_log_config(path: str) -> None:
    """dictConfig from .json/.yaml/.yml, fileConfig from anything else (INI)."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as file:
            logging.config.dictConfig(json.load(file))
    elif path.endswith((".yaml", ".yml")):
        try:  # imported here: an optional extra, needed only for YAML files
            import yaml
        except ImportError:
            raise LogConfigError(
                f"--log-config {path} needs PyYAML: pip install 'devserve[yaml]'"
            ) from None
        with open(path, encoding="utf-8") as file:
            logging.config.dictConfig(yaml.safe_load(file))
    else:
        logging.config.fileConfig(path, disable_existing_loggers=False)


# --------------------------------------------------------------------------- access log
AccessLogger = Callable[[Any, Exchange], None]
_NO_REDACTION = Redactor(())


class Atoms(Mapping[str, str]):
    """gunicorn's access-log atoms for one request, computed only when the format asks."""

    def __init__(
        self, conn: Any, cycle: Exchange, duration: float, redactor: Redactor | None = None
    ) -> None:
        self.conn, self.cycle, self.duration = conn, cycle, duration
        self.redactor = redactor or _NO_REDACTION

    def __getitem__(self, key: str) -> str:
        scope = self.cycle.scope
        if key.startswith("{"):
            name, kind = key[1:-2].lower(), key[-1]
            if kind == "i":
                value = _header(scope["headers"], name.encode("latin-1"))
                return shorten(self.redactor.header(name, value))
            if kind == "e":
                return os.environ.get(key[1:-2], "-")
            return "-"  # response headers are not kept after they are written
        # cut: over HTTP/2 a long path or header is re-sent as one byte of HPACK
        return printable(shorten(self._value(key)))

    def _value(self, key: str) -> str:
        scope, cycle = self.cycle.scope, self.cycle
        if key == "r":
            return _request_line(cycle, self.redactor)
        if key == "q":
            return self.redactor.query(scope["query_string"].decode("latin-1"))
        if key == "f":  # the Referer: a URL whose query may hold a secret
            return self.redactor.header("referer", _header(scope["headers"], b"referer"))
        value = _ATOM_FUNCS.get(key)
        return value(self.conn, cycle, self.duration) if value else "-"

    def __iter__(self) -> Any:
        return iter(_ATOM_FUNCS)

    def __len__(self) -> int:
        return len(_ATOM_FUNCS)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return "-"


def _client(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


def _request_line(cycle: Exchange, redactor: Redactor) -> str:
    """The request line, its target cut to RECORD_TEXT characters: over HTTP/2 a 4 KB path can
    be sent again as one byte of HPACK, and each such request must not log 4 KB."""
    scope = cycle.scope
    query = scope["query_string"]
    target = scope["raw_path"].decode("latin-1")
    if query:
        target += "?" + redactor.query(query.decode("latin-1"))
    return f"{cycle.method} {shorten(target)} HTTP/{scope['http_version']}"


_ATOM_FUNCS: dict[str, Callable[[Any, Exchange, float], str]] = {
    "h": lambda conn, c, d: _client(c.scope),
    "l": lambda conn, c, d: "-",
    "u": lambda conn, c, d: "-",
    "t": lambda conn, c, d: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "r": lambda conn, c, d: "-",  # r and q: Atoms redacts them
    "m": lambda conn, c, d: c.method,
    "U": lambda conn, c, d: shorten(c.scope["path"]),
    "q": lambda conn, c, d: "-",
    "H": lambda conn, c, d: f"HTTP/{c.scope['http_version']}",
    "s": lambda conn, c, d: str(c.status),
    "B": lambda conn, c, d: str(c.bytes_sent),
    "b": lambda conn, c, d: str(c.bytes_sent) if c.bytes_sent else "-",
    "f": lambda conn, c, d: _header(c.scope["headers"], b"referer"),
    "a": lambda conn, c, d: _header(c.scope["headers"], b"user-agent"),
    "T": lambda conn, c, d: str(int(d)),
    "D": lambda conn, c, d: str(int(d * 1_000_000)),
    "M": lambda conn, c, d: str(int(d * 1000)),
    "L": lambda conn, c, d: f"{d:.6f}",
    "p": lambda conn, c, d: f"<{os.getpid()}>",
}


def make_access_logger(
    fmt: str | None, colour: bool | None = None, redact: bool | Redactor = True
) -> AccessLogger:
    """The function the HTTP protocol calls once per finished request; secret query values and
    headers (`%({authorization}i)s`) are logged as [redacted] unless `redact` is off."""
    redactor = Redactor.of(redact)
    log = logging.getLogger("devserve.access")
    if colour is None:
        colour = use_colour(sys.stdout) and not any(
            isinstance(h, logging.FileHandler) for h in log.handlers
        )
    if fmt is not None:  # validated by config: any %(atom)s mapping formats it

        def custom(conn: Any, cycle: Exchange) -> None:
            duration = time.perf_counter() - cycle.started_at
            log.info(fmt % Atoms(conn, cycle, duration, redactor))

        return custom

    def default(conn: Any, cycle: Exchange) -> None:
        ms = (time.perf_counter() - cycle.started_at) * 1000
        status = str(cycle.status)
        if colour:
            status = _STATUS_COLOURS.get(cycle.status // 100, "") + status + _RESET
        client = cycle.scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "unix"
        log.info(
            '%s - "%s" %s %dB %.1fms',
            peer,
            _request_line(cycle, redactor),
            status,
            cycle.bytes_sent,
            ms,
        )

    return default

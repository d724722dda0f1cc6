"""Who may use the web dashboard: its token, the cookie and page key it is exchanged for, the
Origin and Host checks.

The token travels once, in the URL devserve prints (`/?token=…`); the page trades it for two
halves of a session, neither of which is the token:

- an HttpOnly, SameSite=Strict cookie holding a random session id, so scripts on other sites
  can neither read it nor send it;
- a page key, HMAC(token, session id), handed over in the redirect's URL fragment and kept by
  the page in its origin's storage, which it sends as the `X-Devserve-Key` header (and, on the
  WebSocket, which a browser opens without custom headers, as a subprotocol).

Browsers send a cookie to every port of its host, so a page served by any other web server on
this host could make the browser send the cookie there (its Path, /_devserve, does not stop
that). The cookie alone therefore opens nothing: storage is per origin, port included, so no
other server can get the key. Every API call and the WebSocket need both halves, or
`Authorization: Bearer TOKEN` for scripts; a WebSocket or command whose Origin is another site
is refused. A dashboard on a loopback address also refuses a Host header that is not a loopback
name: a page that rebinds its DNS name to 127.0.0.1 sends its own name there.

A session lasts SESSION_LIFETIME from the moment the token was traded, however busy it is, and
ends earlier when the page signs out (`end`). Its id carries the time it began, under the page
key's HMAC, so sessions need no table and outlive a restart of devserve with the same token
(open pages reconnect by themselves); only the ended ones are remembered, until they would have
expired anyway. A restart forgets those, and a new token ends every session.

A generated token is kept (in dev mode) in a file only its owner can read, per dashboard
address, so the open page reconnects after devserve restarts instead of asking for a new URL;
a devserve that starts removes the files of those that have stopped (`_kept_token`).
The token is never logged: `redact` leaves its first characters, enough to tell two apart.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from devserver.net import parse_ip

Headers = list[tuple[bytes, bytes]]
PREFIX = "/_devserve"  # every path that needs the token, and the cookie's Path
KEY_HEADER = b"x-devserve-key"
KEY_PROTOCOL = "devserve-key."  # the page key as a WebSocket subprotocol: devserve-key.<key>
PROTOCOL = "devserve"  # the subprotocol the server answers with
MIN_TOKEN = 16  # characters, for a dashboard other machines can reach
SESSION_LIFETIME = 12 * 3600  # seconds from trading the token, active or not: a working day
CLOCK_SKEW = 60  # seconds a session may seem to begin in the future (the clock was set back)
SHOWN = 4  # characters of a token that logs may show


class AccessError(ValueError):
    """The dashboard cannot be served as asked; the message says why."""


@dataclass(frozen=True)
class Access:
    token: str  # '' means no token: allowed on a loopback address only
    read_only: bool = False
    secure: bool = False  # served over TLS: the cookie is sent over TLS only
    loopback: bool = True  # bound to a loopback address: only loopback Host names are served
    # sessions the page ended, until they would have expired: the only state sessions have
    ended: set[str] = field(default_factory=set, compare=False, hash=False, repr=False)

    def cookie_for(self, port: int) -> str:
        # cookies ignore ports: two dashboards on one host each need their own name
        return f"devserve-dashboard-{port}"

    def allows(self, headers: Headers, port: int, subprotocols: list[str] | None = None) -> bool:
        """True for the token as a bearer token, or for a session's cookie with its page key
        (a header, or for a WebSocket one of its `subprotocols`)."""
        if not self.token or self.bearer(headers):
            return True
        return self.checked_session(headers, port, subprotocols) is not None

    def checked_session(
        self, headers: Headers, port: int, subprotocols: list[str] | None = None
    ) -> str | None:
        """The request's session id when its cookie comes with the page key that matches it and
        the session is live; None otherwise (no token to check, or no such session)."""
        if not self.token:
            return None
        key = None
        for name, value in headers:
            if name == KEY_HEADER:
                key = value.decode("latin-1").strip()
        for protocol in subprotocols or ():
            if protocol.startswith(KEY_PROTOCOL):
                key = key or protocol[len(KEY_PROTOCOL) :]
        session = self._cookie_session(headers, port)
        if not session or not key:
            return None
        genuine = hmac.compare_digest(key.encode(), self.page_key(session).encode())
        return session if genuine and self.live(session) else None

    def bearer(self, headers: Headers) -> bool:
        """True when the request carries the token itself (a script's `Authorization`)."""
        for name, value in headers:
            if name == b"authorization":
                scheme, _, given = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and self.matches(given.strip()):
                    return True
        return False

    def _cookie_session(self, headers: Headers, port: int) -> str | None:
        """The session id in the request's cookie, unchecked: see `checked_session`."""
        session = None
        for name, value in headers:
            if name == b"cookie":
                session = session or _cookie(value.decode("latin-1"), self.cookie_for(port))
        return session

    def new_session(self) -> tuple[str, str]:
        """A session id for the cookie, and the page key that goes with it. The id begins
        with the time it was made, which the key vouches for: `live` needs nothing else."""
        session = f"{int(time.time())}.{secrets.token_urlsafe(24)}"
        return session, self.page_key(session)

    def live(self, session: str) -> bool:
        """False once a session (whose key was checked) has expired or was ended."""
        return session not in self.ended and _fresh(session, time.time())

    def end(self, session: str) -> None:
        """Sign a session out (the page's "sign out"): refused from now on, until a restart."""
        now = time.time()
        # an ended session that has expired since is refused anyway: forgotten, so a page
        # signing out over and over cannot grow the set past a day's worth
        self.ended.difference_update([s for s in self.ended if not _fresh(s, now)])
        self.ended.add(session)

    def clear_cookie(self, port: int) -> bytes:
        secure = "; Secure" if self.secure else ""
        name = self.cookie_for(port)
        return f"{name}=; Path={PREFIX}; Max-Age=0; HttpOnly; SameSite=Strict{secure}".encode()

    def redact(self, text: str) -> str:
        """`text` with the token cut to its first characters (`abcd…`), for anything that others
        may read: logs, the dashboard's own pages. Only tokens long enough not to be a common
        word are cut wherever they occur; a short one only after `token=`."""
        if not self.token:
            return text
        shown = redacted(self.token)
        quoted = quote(self.token, safe="")
        text = text.replace(f"token={quoted}", f"token={shown}")
        if len(self.token) >= 8:
            text = text.replace(self.token, shown).replace(quoted, shown)
        return text

    def page_key(self, session: str) -> str:
        digest = hmac.new(self.token.encode(), f"page:{session}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    def matches(self, given: str | None) -> bool:
        if not given:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def set_cookie(self, port: int, session: str) -> bytes:
        secure = "; Secure" if self.secure else ""
        name = self.cookie_for(port)
        return f"{name}={session}; Path={PREFIX}; HttpOnly; SameSite=Strict{secure}".encode()

    def host_allowed(self, headers: Headers) -> bool:
        """False for a loopback dashboard asked for by another name (DNS rebinding)."""
        if not self.loopback:
            return True  # reachable by any name: the token guards it
        host = next((v.decode("latin-1") for n, v in headers if n == b"host"), "")
        return is_loopback(_without_port(host))


def _fresh(session: str, now: float) -> bool:
    """True while a session id is younger than SESSION_LIFETIME (by the time it carries)."""
    began = session.partition(".")[0]
    return began.isdigit() and -CLOCK_SKEW <= now - int(began) < SESSION_LIFETIME


def redacted(token: str) -> str:
    """What logs may show of a token: its first characters when it is long enough to keep the
    rest secret, else nothing."""
    return (token[:SHOWN] if len(token) >= MIN_TOKEN else "") + "…"


def _without_port(host: str) -> str:
    """'127.0.0.1:8001' → '127.0.0.1', '[::1]:8001' → '[::1]', 'localhost' → 'localhost'."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0]


def _cookie(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header. Split by hand: http.cookies gives up on
    the whole header at the first cookie it dislikes (a JSON value, a space), and cookies from
    every app on this host share the header."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def same_origin(headers: Headers) -> bool:
    """False when an Origin header names another host than the one the request went to.

    No Origin (a script, curl) is allowed: it carries the token itself, which a browser page on
    another site cannot get.
    """
    origin = host = None
    for name, value in headers:
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    if origin is None:
        return True
    if origin == "null" or host is None:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    address = parse_ip(host)  # ::ffff:127.0.0.1 is loopback too
    return address is not None and address.is_loopback  # a name may resolve anywhere


def resolve_token(given: str | None, host: str, port: int, keep: bool = True) -> str:
    """The token to require: the one given, else a kept (with `keep`) or new random one.

    Raises AccessError for no token (''), or a short one, on an address other machines can
    reach.
    """
    if given is not None and len(given) < MIN_TOKEN and not is_loopback(host):
        raise AccessError(
            f"--dashboard {host}:{port} is reachable from other machines: it needs a token of "
            f"{MIN_TOKEN} characters or more (leave --dashboard-token out for a random one, "
            "or bind 127.0.0.1)"
        )
    if given is not None:
        return given
    if port == 0 or not keep:
        return secrets.token_urlsafe(24)  # the address changes each run: nothing to keep
    return _kept_token(_token_file(host, port))


def _token_file(host: str, port: int) -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        base = Path(runtime) / "devserve"
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        base = Path(cache) / "devserve"
    safe_host = "".join(c if c.isalnum() or c in ".-" else "_" for c in host)
    return base / f"dashboard-{safe_host}-{port}.token"


def _kept_token(path: Path) -> str:
    """The token kept at `path` when only we can read it; else a new one, written there.

    While this devserve runs it holds a shared lock on the file, which tells every other
    devserve that the file is in use. When one starts or stops it removes the files no running
    devserve holds but its own (_forget_stopped): there is one file per running devserve,
    plus the last one stopped's, not one per address ever used, and a devserve reopened on its
    address still finds its token.
    """
    token = _read_kept(path) or _keep_new(path)
    _forget_stopped(path)
    atexit.register(_forget_stopped, path)  # and when it stops: only the last one's stays
    return token


# descriptors of the token files this process uses, each under a shared lock until it exits
_HELD: list[int] = []


def _read_kept(path: Path) -> str | None:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            info = os.fstat(descriptor)
            private = info.st_uid == os.getuid() and not info.st_mode & (
                stat.S_IRWXG | stat.S_IRWXO
            )
            kept = os.read(descriptor, 4096).decode("ascii").strip() if private else ""
            if len(kept) >= MIN_TOKEN:
                _hold(descriptor)
                return kept
        finally:
            if descriptor not in _HELD:
                os.close(descriptor)
    return None


def _keep_new(path: Path) -> str:
    token = secrets.token_urlsafe(24)
    with contextlib.suppress(OSError):  # nowhere to keep it: this run's token still works
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # one others could read is replaced, not rewritten
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        _hold(descriptor)  # before writing: a devserve starting now must not take it for stale
        os.write(descriptor, (token + "\n").encode("ascii"))
    return token


def _hold(descriptor: int) -> None:
    fcntl.flock(descriptor, fcntl.LOCK_SH)  # shared: a restart on the address takes it too
    _HELD.append(descriptor)


def _forget_stopped(mine: Path) -> None:
    """Remove the token files no running devserve holds, but `mine`: their servers have
    stopped (one reopened later on its address makes a new token, and its open pages ask for
    the new link). A devserve that opened its file but has not locked it yet may lose it here:
    its token still works for this run, it is just not kept."""
    for path in mine.parent.glob("dashboard-*.token"):
        if path == mine:
            continue
        with contextlib.suppress(OSError):
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: held
                path.unlink()
            finally:
                os.close(descriptor)

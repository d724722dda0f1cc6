"""The error page the supervisor serves while no worker can.

With --reload a failed first boot does not end devserve: the supervisor itself answers every
request with 500 and the app's traceback, until a save brings up a generation that works. In a
crash loop, once no worker is left serving, it answers 503 (with Retry-After) rather than let
connections wait in the listen backlog for workers that are not coming. It serves on duplicates
of the listening sockets, so stopping it leaves the originals to the workers. The page polls and
reloads itself once the app serves (or fails differently). With --prod the reason stays in the
log (an exception's text may hold a secret): the page says only what happened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import logging
from typing import Any

from devserver.channel import Failed
from devserver.config import Config
from devserver.server import Server
from devserver.sockets import Listener, tls_context

logger = logging.getLogger("devserve.supervisor")


@dataclasses.dataclass(frozen=True)
class Notice:
    """What the page says besides the failure: its status, title and what to do."""

    status: int
    title: str
    hint: str


DID_NOT_START = Notice(
    500, "the app did not start", "Fix it and save: devserve reloads when the file changes."
)
NOBODY_SERVES = Notice(
    503,
    "no worker is serving",
    "The workers kept dying, so devserve stopped respawning them. Fix the app, then: "
    "devserve ctl restart",
)


class Fallback:
    """Shows the latest failure on every listener while no generation serves."""

    def __init__(self, config: Config, listeners: list[Listener]) -> None:
        self.config = config
        self.listeners = listeners
        self.failure: Failed | None = None
        self.notice = DID_NOT_START
        self._server: Server | None = None

    @property
    def showing(self) -> bool:
        return self._server is not None

    def show(self, failure: Failed, notice: Notice = DID_NOT_START) -> None:
        self.failure, self.notice = failure, notice
        if self._server is not None:
            return
        settings = dataclasses.replace(self.config, lifespan="off", limit_concurrency=None)
        copies = [Listener(listener.sock.dup(), listener.address) for listener in self.listeners]
        self._server = Server(settings, self._app, copies, tls_context(self.config))
        task = asyncio.get_running_loop().create_task(self._server.serve())
        task.add_done_callback(_log_failure)
        tls = self.config.ssl_certfile is not None
        for listener in self.listeners:
            logger.info("error page on %s", listener.url(tls))

    def hide(self) -> None:
        """Stop accepting (the workers take over); requests already here are answered."""
        if self._server is not None:
            self._server.request_stop()
            self._server = None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        notice = self.notice
        failure = self.failure or Failed(notice.title)
        accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
        if "text/html" in accept:
            body, kind = render_html(failure, self.config.prod, notice), "text/html; charset=utf-8"
        else:
            body, kind = render_text(failure, self.config.prod, notice), "text/plain; charset=utf-8"
        data = body.encode()
        headers = [
            (b"content-type", kind.encode()),
            (b"content-length", str(len(data)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if notice.status == 503:
            headers.append((b"retry-after", b"5"))
        await send({"type": "http.response.start", "status": notice.status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def render_text(failure: Failed, prod: bool, notice: Notice = DID_NOT_START) -> str:
    lines = [f"devserve: {notice.title}", ""]
    if prod:
        lines.append("The server's log says why.")
    else:
        lines.append(failure.message)
        if failure.file:
            lines.append(f"at {failure.file}, line {failure.line}")
        if failure.details:
            lines += ["", failure.details.rstrip()]
        lines += ["", notice.hint]
    return "\n".join(lines) + "\n"


def render_html(failure: Failed, prod: bool, notice: Notice = DID_NOT_START) -> str:
    where = ""
    if failure.file and not prod:
        where = f"<p class=where>{html.escape(failure.file)}, line {failure.line}</p>"
    details = "" if prod or not failure.details else f"<pre>{html.escape(failure.details)}</pre>"
    message = "The server's log says why." if prod else failure.message
    # The page asks for the text version once a second: a different answer (the app serves, or
    # fails another way) reloads it. JSON in a script: escape '<' so '</script>' cannot end it.
    shown = json.dumps(render_text(failure, prod, notice)).replace("<", "\\u003c")
    return _PAGE.format(
        title=html.escape(notice.title),
        heading=html.escape(notice.title.capitalize()),
        hint=html.escape(notice.hint if not prod else ""),
        status=notice.status,
        message=html.escape(message),
        where=where,
        details=details,
        shown=shown,
    )


_PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>devserve: {title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; margin: 2rem; color: #1a1a1a; }}
h1 {{ font-size: 1.3rem; color: #b00020; }}
.message {{ font-weight: 600; }}
.where {{ font-family: ui-monospace, monospace; }}
pre {{ background: #f5f5f5; padding: 1rem; overflow-x: auto; font-size: 13px; }}
.hint {{ color: #555; }}
</style></head>
<body>
<h1>{heading}</h1>
<p class=message>{message}</p>
{where}
{details}
<p class=hint>{hint} This page reloads by itself.</p>
<script>
const shown = {shown};
async function poll() {{
  try {{
    const options = {{headers: {{accept: "text/plain"}}, cache: "no-store"}};
    const answer = await fetch(location.href, options);
    const changed = answer.status !== {status} || (await answer.text()) !== shown;
    if (changed) {{ location.reload(); return; }}
  }} catch (error) {{}}
  setTimeout(poll, 1000);
}}
setTimeout(poll, 1000);
</script>
</body></html>
"""


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the error page server failed: %s", task.exception())

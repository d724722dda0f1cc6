"""Where an exception came from, told the way a developer looks for it: the file and line in
their own code (not in importlib, the standard library, site-packages or devserve)."""

from __future__ import annotations

import os
import sysconfig
import traceback

_NOT_YOURS = tuple(
    os.path.join(os.path.realpath(path), "")
    for path in {
        *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
        os.path.dirname(os.path.abspath(__file__)),  # devserve itself
    }
)


def format(exc: BaseException) -> str:
    """The traceback from the first frame of the app's code on: importlib's and devserve's own
    frames before it tell the reader nothing (a SyntaxError keeps just its source line)."""
    summary = traceback.TracebackException.from_exception(exc)
    for part in _chain(summary):
        frames = list(part.stack)
        first = next((i for i, f in enumerate(frames) if _is_yours(f.filename)), len(frames))
        part.stack = traceback.StackSummary.from_list(frames[first:])
    return "".join(summary.format())


def _chain(summary: traceback.TracebackException) -> list[traceback.TracebackException]:
    parts, seen = [], set()
    pending: list[traceback.TracebackException | None] = [summary]
    while pending:
        part = pending.pop()
        if part is None or id(part) in seen:
            continue
        seen.add(id(part))
        parts.append(part)
        pending += [part.__cause__, part.__context__]
    return parts


def location(exc: BaseException) -> tuple[str | None, int | None]:
    """The file and line to look at: a SyntaxError's own, else the innermost frame of the app's
    code (the innermost frame of all when none is the app's)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return None, None
    yours = [f for f in frames if _is_yours(f.filename)]
    frame = (yours or frames)[-1]
    return frame.filename, frame.lineno


def _is_yours(filename: str) -> bool:
    return not filename.startswith("<") and not os.path.realpath(filename).startswith(_NOT_YOURS)

"""Turn "pkg.module:attr.path" (or a factory) into a callable ASGI 3 app.

Runs only where the app is served (the worker), never in a supervisor. Every failure becomes an
`AppLoadError` with one readable line, plus the app's own traceback when its import raised.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

from devserver import tracebacks, wsgi
from devserver.asgi import ASGIApp
from devserver.wsgi import WSGIAdapter

DEMO_APP = "devserver.demo:app"


class AppLoadError(Exception):
    """The app could not be loaded; `str()` is one line, `details` the traceback if any."""

    def __init__(self, message: str, details: str = "", cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.details = details
        self.file, self.line = tracebacks.location(cause) if cause else (None, None)


def split_target(target: str) -> tuple[str, str]:
    """`pkg.module:attr.path` as its module and its attribute path; AppLoadError (saying what
    to write instead) for any other form. The CLI checks APP with it before anything starts."""
    module_name, sep, attrs = target.partition(":")
    file = module_name.endswith(".py")  # `main.py:app`: a file name (a module named py is rare)
    if sep and _dotted(module_name) and _dotted(attrs) and not file:
        return module_name, attrs
    if file:
        module = module_name[:-3].strip("./").replace("/", ".")
        hint = f"the module, not its file: {module}:{attrs or 'app'}"
    elif not sep and _dotted(module_name):
        hint = f"e.g. {module_name}:app"
    else:
        hint = "e.g. main:app"
    raise AppLoadError(f"{target!r} is not module:attribute ({hint})")


def _dotted(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def import_from_string(target: str) -> Any:
    module_name, attrs = split_target(target)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name) and _is_prefix(exc.name, module_name):
            raise AppLoadError(
                f"could not import module {module_name!r}: no module named {exc.name!r}"
                " (check the name, or --app-dir)"
            ) from None
        raise _import_raised(module_name, exc) from None
    except BaseException as exc:
        raise _import_raised(module_name, exc) from None
    value: Any = module
    for attr in attrs.split("."):
        try:
            value = getattr(value, attr)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attrs!r}") from None
    return value


def _is_prefix(name: str, module_name: str) -> bool:
    return module_name == name or module_name.startswith(name + ".")


def _import_raised(module_name: str, exc: BaseException) -> AppLoadError:
    message = f"importing {module_name!r} raised {type(exc).__name__}: {exc}"
    return AppLoadError(message, tracebacks.format(exc), exc)


def load_app(
    target: str | None,
    *,
    factory: bool,
    interface: str,
    app_dir: str,
    threads: int,
    wsgi_queue: int = wsgi.QUEUE,
) -> ASGIApp:
    """Import the app and return it as an ASGI 3 callable. Call once per serving process.

    A WSGI app is wrapped in a `WSGIAdapter` running its requests on `threads` threads, with at
    most `wsgi_queue` waiting for one.
    """
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    app = import_from_string(target or DEMO_APP)
    if factory:
        try:
            app = app()
        except BaseException as exc:
            raise AppLoadError(
                f"the app factory {target!r} raised {type(exc).__name__}: {exc}",
                tracebacks.format(exc),
                exc,
            ) from None
    if not callable(app):
        raise AppLoadError(
            f"{target!r} is not callable (got {type(app).__name__})"
            + ("; is it a factory? use --factory" if not factory else "")
        )
    if interface == "auto":
        interface = detect_interface(app)
    else:
        _check_interface(app, target or DEMO_APP, interface)
    return _as_asgi3(app, interface, threads, wsgi_queue)


# how many positional arguments each interface calls the app with, and what it is called
_CALLS = {"asgi3": 3, "asgi2": 1, "wsgi": 2}
_NAMES = {"asgi3": "an ASGI 3", "asgi2": "an ASGI 2", "wsgi": "a WSGI"}


def _check_interface(app: Any, target: str, interface: str) -> None:
    """A forced --interface the app cannot be called with (a Flask app as asgi3, say) is refused
    here, once, with what to use instead, rather than at each request with a bare TypeError."""
    detected = detect_interface(app)
    if detected == interface or _accepts(app, _CALLS[interface]):
        return
    raise AppLoadError(
        f"--interface {interface}: {target!r} looks like {_NAMES[detected]} app "
        f"({_shape(app)}): use --interface {detected} (or auto)"
    )


def _accepts(app: Any, count: int) -> bool:
    """Whether `app` can be called with `count` positional arguments (True when Python cannot
    tell: a builtin, say)."""
    try:
        inspect.signature(app).bind(*[None] * count)
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def _shape(app: Any) -> str:
    """How the app is called, as its signature says: `it takes (environ, start_response)`."""
    try:
        names = inspect.signature(app).parameters
    except (TypeError, ValueError):
        return "its signature is unknown"
    return f"it takes ({', '.join(names)})"


def detect_interface(app: Any) -> str:
    """asgi3 for `async (scope, receive, send)`, asgi2 for `(scope) -> async (receive, send)`,
    wsgi for a plain `(environ, start_response)` callable (a function, or an instance such as
    Flask's or Django's WSGIHandler)."""
    call = app if inspect.isroutine(app) or inspect.isclass(app) else type(app).__call__
    if asyncio.iscoroutinefunction(app) or asyncio.iscoroutinefunction(call):
        return "asgi3"
    try:
        params = inspect.signature(app).parameters
    except (TypeError, ValueError):
        return "asgi3"
    if len(params) == 2:
        return "wsgi"
    if len(params) == 1:
        return "asgi2"
    return "asgi3"


def _as_asgi3(app: Callable[..., Any], interface: str, threads: int, wsgi_queue: int) -> ASGIApp:
    if interface == "asgi3":
        return app
    if interface == "asgi2":

        async def asgi2_adapter(scope: Any, receive: Any, send: Any) -> None:
            await app(scope)(receive, send)

        return asgi2_adapter
    return WSGIAdapter(app, threads, wsgi_queue)

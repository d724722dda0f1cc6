"""A small Flask app (WSGI): JSON, a form POST, a streamed response and a file download.

Run it from the repository root; devserve sees that it is a WSGI app:

    devserve flask_app:app --app-dir docs/examples

Downloads come from docs/examples/downloads/, or the folder in $FLASK_DOWNLOADS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask, Response, request, send_from_directory, stream_with_context

app = Flask(__name__)
app.config["DOWNLOADS"] = str(Path(__file__).parent / "downloads")
app.config.from_prefixed_env()  # FLASK_DOWNLOADS=/some/folder overrides the line above


@app.get("/")
def index() -> dict[str, Any]:
    return {"app": "flask", "endpoints": sorted(str(rule) for rule in app.url_map.iter_rules())}


@app.post("/greet")
def greet() -> dict[str, Any]:
    name = request.form["name"]  # a form without "name" gets 400 Bad Request
    return {"message": f"Hello, {name}!", "language": request.form.get("language", "en")}


@app.get("/numbers")
def numbers() -> Response:
    """Streams one line per number; the body is sent while the generator runs."""

    def generate() -> Iterator[str]:
        for n in range(1, request.args.get("count", 10, type=int) + 1):
            yield f"{n}\n"

    # stream_with_context keeps `request` usable while the generator runs, after the view returned
    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/download/<path:name>")
def download(name: str) -> Response:
    """send_from_directory refuses names that would leave the folder (404)."""
    return send_from_directory(app.config["DOWNLOADS"], name, as_attachment=True)

"""MkDocs hook: the repository's screenshots/ pictures, published at screenshots/ in the site,
so that the docs show the same files the README does (drawn by screenshots/make.py and
screenshots/web.py) without a second copy to keep in step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PICTURES = Path(__file__).resolve().parents[2] / "screenshots"


def on_files(files: Files, config: Any) -> Files:
    for path in sorted(PICTURES.iterdir()):
        if path.suffix in (".png", ".svg"):
            uri = f"screenshots/{path.name}"
            files.append(File.generated(config, uri, content=path.read_bytes()))
    return files

"""MkDocs hook: the site carries its own copy of Mermaid, so its diagrams draw offline.

Material draws ```mermaid blocks with a `mermaid` already on the page, else loads it from unpkg
when a page with a diagram opens. `python docs/hooks/mermaid_local.py` (scripts/check runs it)
takes the pinned release's mermaid.min.js out of its npm package into .cache/, which is not
committed (3.5 MB of minified JavaScript); this hook then publishes it with the site and puts it
on every page. Without that file the site builds as before and the diagrams come from unpkg.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

VERSION = "11.17.2"  # Material's own loader asks unpkg for mermaid@11
ROOT = Path(__file__).resolve().parents[2]
CACHED = ROOT / ".cache" / "docs" / f"mermaid-{VERSION}.min.js"
URI = "javascripts/mermaid.min.js"


def on_config(config: Any) -> Any:
    if CACHED.is_file():
        config.extra_javascript.append(URI)
    return config


def on_files(files: Files, config: Any) -> Files:
    if CACHED.is_file():
        files.append(File.generated(config, URI, content=CACHED.read_bytes()))
    return files


def fetch() -> None:
    """Take dist/mermaid.min.js out of the npm registry's package (npm checks its integrity)."""
    if CACHED.is_file():
        return
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            ["npm", "pack", f"mermaid@{VERSION}", "--silent", "--pack-destination", scratch],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=300,
        )
        (package,) = Path(scratch).glob("mermaid-*.tgz")
        with tarfile.open(package) as archive:
            member = archive.extractfile("package/dist/mermaid.min.js")
            assert member is not None
            CACHED.parent.mkdir(parents=True, exist_ok=True)
            partial = CACHED.with_suffix(".part")
            partial.write_bytes(member.read())
            partial.replace(CACHED)  # whole or not at all


if __name__ == "__main__":
    try:
        fetch()
    except (OSError, subprocess.SubprocessError, KeyError) as exc:
        sys.exit(f"warning: Mermaid not fetched ({exc}): the docs' diagrams load it from unpkg")

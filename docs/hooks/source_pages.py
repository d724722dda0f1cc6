"""MkDocs hook: a page per Python file of devserver/ and dashboard/, under source/, so that the
docs link to the code they walk through and `mkdocs build --strict` fails on a stale link.

Each page shows the whole file in order, cut into sections: the module's top (docstring,
imports, constants), then every function, class and method, each under a heading whose anchor is
its qualified name, with the file's own line numbers:

    [data_received](../source/devserver/protocols/http.md#HTTPProtocol.data_received)
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("devserver", "dashboard")


def on_files(files: Files, config: Any) -> Files:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            page = f"source/{relative[:-3]}.md"
            files.append(File.generated(config, page, content=render(relative, path)))
    return files


def render(relative: str, path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    sections = [(1, "")] + [(start, name) for start, name in definitions(ast.parse(text))]
    parts = [f"# `{relative}`\n"]
    for (start, name), (end, _) in zip(
        sections, [*sections[1:], (len(lines) + 1, "")], strict=True
    ):
        code = "\n".join(lines[start - 1 : end - 1]).rstrip()
        if not code:
            continue
        if name:
            parts.append(heading(name))
        parts.append(f'```python linenums="{start}"\n{code}\n```\n')
    return "\n".join(parts)


def heading(name: str) -> str:
    """A level-2 heading whose anchor is `name`. Markdown reads the underscores of a dunder
    (`{#Name.__init__}`) as emphasis, so the anchor would be lost: a dunder's heading is HTML."""
    if "__" not in name:
        return f"## `{name}` {{#{name}}}\n"
    return f'<h2 id="{name}"><code>{name}</code></h2>\n'


def definitions(tree: ast.Module) -> list[tuple[int, str]]:
    """(first line, qualified name) of each top-level function and class and of each method,
    in file order; a decorator's line counts as the start."""
    found: list[tuple[int, str]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.append((_start(node), node.name))
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.append((_start(item), f"{node.name}.{item.name}"))
    return sorted(found)


def _start(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])  # type: ignore[attr-defined]

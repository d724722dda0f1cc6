"""Units of --reload: what WatchSet watches and counts, the Reloader on a real watcher, where a
traceback points, the error page's escaping, the reload options and `devserve --print-watch`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devserver import tracebacks
from devserver.app_loader import AppLoadError, import_from_string
from devserver.channel import Failed
from devserver.config import (
    RELOAD_EXCLUDE,
    RELOAD_INCLUDE,
    Config,
    ConfigError,
    load_config,
    reload_enabled,
)
from devserver.supervisor.fallback import render_html, render_text
from devserver.supervisor.reload import Reloader, WatchSet
from tests.utils import clean_env, devserve_command, until_async


def touch(path: Path, text: str = "x = 1\n") -> Path:
    """Write `text` to `path`, creating its parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def watch_set(
    root: Path,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    config_file: Path | None = None,
    env_file: Path | None = None,
) -> WatchSet:
    """The WatchSet devserve builds for --app-dir ROOT and the given reload options."""
    config = Config(
        app_dir=str(root),
        reload_include=include,
        reload_exclude=exclude,
        env_file=str(env_file) if env_file else None,
    )
    return WatchSet.from_config(config, str(config_file) if config_file else None)


# --------------------------------------------------------------------------- WatchSet.counts
def test_counts_python_files_at_any_depth_and_dotenv(tmp_path: Path) -> None:
    """*.py counts in the root and at any depth below it, and so does .env, here and nested."""
    watched = watch_set(tmp_path)
    for relative in ("app.py", "pkg/mod.py", "a/b/c/d/e/deep.py", ".env", "sub/.env"):
        assert watched.counts(str(touch(tmp_path / relative))), relative
    assert not watched.counts(str(touch(tmp_path / "README.md"))), "not an include pattern"
    assert not watched.counts(str(touch(tmp_path / "data.json")))


@pytest.mark.parametrize(
    "relative",
    [
        "a.pyc",
        "pkg/b.pyc",
        "__pycache__/mod.py",
        "pkg/__pycache__/mod.cpython-311.pyc",
        ".venv/lib/python3.11/site-packages/x.py",
        "venv/bin/activate.py",
        "node_modules/pkg/index.py",
        "web/node_modules/pkg/setup.py",
        ".git/hooks/pre-commit.py",
        ".mypy_cache/mod.py",
        "foo.py~",
        ".#foo.py",
        "pkg/.#foo.py",
        "#foo.py#",
        "foo.py.swp",
    ],
)
def test_counts_ignores_bytecode_caches_environments_vcs_and_editor_files(
    tmp_path: Path, relative: str
) -> None:
    """Bytecode, files under cache, venv, node_modules and .git dirs, editor files: none count."""
    watched = watch_set(tmp_path)
    assert not watched.counts(str(touch(tmp_path / relative)))


def test_reload_include_adds_patterns(tmp_path: Path) -> None:
    """--reload-include '*.html' makes templates count, and *.py and .env still count."""
    watched = watch_set(tmp_path, include=("*.html",))
    assert watched.include_patterns == (*RELOAD_INCLUDE, "*.html")
    assert watched.counts(str(touch(tmp_path / "templates/index.html")))
    assert watched.counts(str(touch(tmp_path / "app.py")))
    assert watched.counts(str(touch(tmp_path / ".env")))
    assert not watched.counts(str(touch(tmp_path / "style.css")))
    assert not watched.counts(str(touch(tmp_path / "node_modules/x/index.html"))), "still excluded"
    assert not watch_set(tmp_path).counts(str(tmp_path / "templates/index.html")), "not by default"


def test_reload_exclude_adds_patterns(tmp_path: Path) -> None:
    """--reload-exclude 'migrations/' excludes .py files below any migrations directory."""
    watched = watch_set(tmp_path, exclude=("migrations/",))
    assert watched.exclude_patterns == (*RELOAD_EXCLUDE, "migrations/")
    assert not watched.counts(str(touch(tmp_path / "migrations/0001_initial.py")))
    assert not watched.counts(str(touch(tmp_path / "shop/migrations/0002_more.py")))
    assert watched.counts(str(touch(tmp_path / "shop/models.py")))
    assert watch_set(tmp_path).counts(str(tmp_path / "migrations/0001_initial.py")), "by default"


def test_named_files_count_outside_the_roots(tmp_path: Path) -> None:
    """The config file and --env-file count wherever they are; their neighbours outside don't."""
    root, elsewhere = tmp_path / "app", tmp_path / "elsewhere"
    config_file = touch(elsewhere / "devserve.toml", "")
    env_file = touch(elsewhere / "settings.env", "A=1\n")
    watched = watch_set(root, config_file=config_file, env_file=env_file)
    assert watched.files == {str(config_file), str(env_file)}
    assert watched.counts(str(config_file))
    assert watched.counts(str(env_file))
    assert not watched.counts(str(touch(elsewhere / "other.py"))), "outside every root"
    assert not watched.counts(str(touch(elsewhere / ".env"))), "outside every root"
    assert not watched.counts(str(touch(tmp_path / "app2" / "main.py"))), "a sibling, not a child"


def test_a_path_outside_every_root_does_not_count(tmp_path: Path) -> None:
    """With several --reload-dir roots a .py counts under each of them and nowhere else."""
    one, two, three = (tmp_path / name for name in ("one", "two", "three"))
    for directory in (one, two, three):
        directory.mkdir()
    config = Config(app_dir=str(three), reload_dir=(str(one), str(two)))
    watched = WatchSet.from_config(config)
    assert watched.roots == (str(one), str(two)), "--reload-dir replaces --app-dir"
    assert watched.counts(str(touch(one / "a.py")))
    assert watched.counts(str(touch(two / "b.py")))
    assert not watched.counts(str(touch(three / "c.py")))
    assert not watched.counts(str(touch(tmp_path / "d.py")))


# --------------------------------------------------------------------------- directories
def test_directories_prune_excluded_directories_at_any_depth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Excluded directories are neither listed nor even scanned, however deep or however big."""
    for relative in ("pkg/sub", "web/assets", "a/b/c"):
        (tmp_path / relative).mkdir(parents=True)
    for i in range(50):
        (tmp_path / f".venv/lib/python3.11/site-packages/pkg{i}/sub").mkdir(parents=True)
    for relative in (
        "web/node_modules/left-pad/lib",
        "a/b/c/__pycache__",
        ".git/objects/aa",
        "pkg/venv/bin",
        "pkg/.tox/py311",
    ):
        (tmp_path / relative).mkdir(parents=True)
    scanned: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str) -> Iterator[os.DirEntry[str]]:
        scanned.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)  # what reload.py walks with
    directories = watch_set(tmp_path).directories()
    monkeypatch.undo()
    expected = {tmp_path, *(tmp_path / r for r in ("pkg", "pkg/sub", "web", "web/assets"))}
    expected |= {tmp_path / "a", tmp_path / "a/b", tmp_path / "a/b/c"}
    assert sorted(directories) == sorted(str(p) for p in expected)
    assert len(directories) == len(set(directories)), "each directory once"
    assert sorted(set(scanned)) == sorted(str(p) for p in expected), "pruned ones not scanned"


def test_directories_include_the_roots_and_the_named_files_directories(tmp_path: Path) -> None:
    """The roots come first; a named file outside them adds its directory but not its subtree."""
    root, elsewhere = tmp_path / "app", tmp_path / "etc"
    (root / "pkg").mkdir(parents=True)
    (elsewhere / "unrelated/deeper").mkdir(parents=True)
    env_file = touch(elsewhere / "app.env", "A=1\n")
    directories = watch_set(root, env_file=env_file).directories()
    assert directories[0] == str(root)
    assert sorted(directories) == sorted([str(root), str(root / "pkg"), str(elsewhere)])


def test_directories_do_not_follow_symlinks(tmp_path: Path) -> None:
    """A symlink to a parent (a loop) or to a tree outside is not walked: no loop, no extra dirs."""
    root, outside = tmp_path / "app", tmp_path / "outside"
    (root / "a/b").mkdir(parents=True)
    touch(outside / "sub" / "stray.py")
    (root / "a/b/loop").symlink_to(root, target_is_directory=True)
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    watched = watch_set(root)
    directories = watched.directories()
    assert sorted(directories) == sorted([str(root), str(root / "a"), str(root / "a/b")])
    assert watched.matching_files() == [], "nothing reached through a link"


def test_a_missing_root_has_no_directories(tmp_path: Path) -> None:
    """A root that does not exist (deleted after startup) is skipped rather than raising."""
    assert watch_set(tmp_path / "gone").directories() == []


# --------------------------------------------------------------------------- matching_files
def make_tree(root: Path) -> dict[str, Path]:
    """A small project: the files that count, and as many that don't."""
    counted = {
        name: touch(root / name)
        for name in ("app.py", ".env", "pkg/__init__.py", "pkg/views.py", "pkg/sub/deep.py")
    }
    for name in (
        "README.md",
        "app.pyc",
        "pkg/__pycache__/views.cpython-311.pyc",
        "pkg/__pycache__/stray.py",
        ".venv/lib/site.py",
        "node_modules/x/y.py",
        ".git/config.py",
        "pkg/views.py~",
        "pkg/.#views.py",
        "pkg/views.py.swp",
    ):
        touch(root / name)
    return counted


def test_matching_files_lists_exactly_the_files_that_count(tmp_path: Path) -> None:
    """matching_files() is exactly the counting files, sorted, plus named files outside the root."""
    root = tmp_path / "app"
    counted = make_tree(root)
    env_file = touch(tmp_path / "etc" / "app.env", "A=1\n")
    touch(tmp_path / "etc" / "neighbour.py")
    found = watch_set(root, env_file=env_file).matching_files()
    assert found == sorted([*(str(p) for p in counted.values()), str(env_file)])


def test_matching_files_under_a_subdirectory(tmp_path: Path) -> None:
    """matching_files(under=DIR) lists only the counting files below DIR, pruning as usual."""
    counted = make_tree(tmp_path)
    found = watch_set(tmp_path).matching_files(under=str(tmp_path / "pkg"))
    assert found == sorted(
        str(counted[n]) for n in ("pkg/__init__.py", "pkg/views.py", "pkg/sub/deep.py")
    )
    assert watch_set(tmp_path).matching_files(under=str(tmp_path / "pkg/sub")) == [
        str(counted["pkg/sub/deep.py"])
    ]


# --------------------------------------------------------------------------- Reloader
class Calls:
    """Records each on_change call; tests wait on it with a deadline."""

    def __init__(self) -> None:
        self.paths: list[list[str]] = []
        self.first_seen: list[float] = []
        self._changed = asyncio.Event()

    def __call__(self, paths: list[str], first_seen: float) -> None:
        self.paths.append(sorted(paths))
        self.first_seen.append(first_seen)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        """Until there have been `count` calls; fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.paths) < count:
            self._changed.clear()
            left = deadline - time.monotonic()
            try:
                await asyncio.wait_for(self._changed.wait(), max(left, 0))
            except TimeoutError:
                raise AssertionError(f"{count} call(s) expected, got {self.paths}") from None


@contextlib.asynccontextmanager
async def reloading(watched: WatchSet, delay: float = 0.05) -> AsyncIterator[Calls]:
    """A Reloader running as a task, ready (its watcher installed); closed and cancelled after."""
    calls = Calls()
    reloader = Reloader(watched, delay=delay, on_change=calls)
    task = asyncio.create_task(reloader.run())
    try:
        ready = asyncio.create_task(reloader.ready.wait())
        await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            task.result()  # raises what run() raised
        assert reloader.ready.is_set(), "the watcher did not start within 5 s"
        yield calls
    finally:
        reloader.close()
        await asyncio.wait({task}, timeout=5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_reloader_groups_a_burst_of_writes_into_one_call(tmp_path: Path) -> None:
    """Five files written one right after another give exactly one call listing all five, and
    no second."""
    (tmp_path / "pkg").mkdir()
    touch(tmp_path / "pkg/existing.py")
    names = ("a.py", "b.py", "pkg/c.py", "pkg/existing.py", ".env")
    sentinel = tmp_path / "sentinel.py"

    async def scenario() -> tuple[Calls, float, float]:
        async with reloading(watch_set(tmp_path)) as calls:
            before = time.monotonic()
            for name in names:
                touch(tmp_path / name, "y = 2\n")
            await calls.wait(1)
            after = time.monotonic()
            # the watcher reports in order: any later call for the burst comes before this one
            touch(sentinel)
            await calls.wait(2)
        return calls, before, after

    calls, before, after = asyncio.run(scenario())
    assert calls.paths == [sorted(str(tmp_path / name) for name in names), [str(sentinel)]]
    assert before <= calls.first_seen[0] <= after, "first_seen is the monotonic time of the first"


def test_reloader_ignores_excluded_paths(tmp_path: Path) -> None:
    """Writes under .venv, node_modules, __pycache__ (old or new), bytecode, editor files: none."""
    for relative in (".venv/lib", "node_modules/pkg", "__pycache__", "pkg"):
        (tmp_path / relative).mkdir(parents=True)
    sentinel, last = tmp_path / "sentinel.py", tmp_path / "last.py"

    async def scenario() -> Calls:
        async with reloading(watch_set(tmp_path)) as calls:
            for relative in (
                ".venv/lib/site.py",
                "node_modules/pkg/index.py",
                "__pycache__/mod.cpython-311.pyc",
                "__pycache__/mod.py",
                "pkg/node_modules/new/x.py",  # new, but pruned: no re-walk
                "pkg/__pycache__/y.py",
                "app.pyc",
                "app.py~",
                ".#app.py",
                "app.py.swp",
            ):
                touch(tmp_path / relative)
            touch(sentinel)
            await calls.wait(1)
            # the watcher reports in order: anything else would come before the second sentinel
            touch(last)
            await calls.wait(2)
        return calls

    assert asyncio.run(scenario()).paths == [[str(sentinel)], [str(last)]]


def test_reloader_watches_directories_created_after_start(tmp_path: Path) -> None:
    """A new directory's .py files (at any depth) reload, and so do later edits inside it."""
    module, deep = tmp_path / "newpkg/mod.py", tmp_path / "newpkg/sub/deep.py"

    async def scenario() -> Calls:
        async with reloading(watch_set(tmp_path)) as calls:
            touch(module)  # creates newpkg/ too: the watcher only sees the directory appear
            touch(deep)
            await calls.wait(1)
            assert calls.paths == [sorted([str(module), str(deep)])]

            # The watcher restarts on its own; edit until it reports.
            def edited_and_reported() -> bool:
                touch(deep, f"z = {time.monotonic()}\n")
                return len(calls.paths) >= 2

            await until_async(
                asyncio.sleep, edited_and_reported, "an edit in the new directory reported", 5
            )
        return calls

    calls = asyncio.run(scenario())
    assert all(paths == [str(deep)] for paths in calls.paths[1:]), calls.paths


def test_reloader_sees_a_directory_moved_into_the_root(tmp_path: Path) -> None:
    """A directory renamed into the root from outside (a checkout, an unpack) reloads its files."""
    root, staging = tmp_path / "app", tmp_path / "staging"
    root.mkdir()
    module = touch(staging / "pkg/mod.py")

    async def scenario() -> Calls:
        async with reloading(watch_set(root)) as calls:
            os.rename(staging / "pkg", root / "pkg")
            await calls.wait(1)
        return calls

    assert asyncio.run(scenario()).paths == [[str(root / "pkg/mod.py")]]
    assert not module.exists()


def slow_walk(root: Path, during_second_walk: Path) -> tuple[WatchSet, list[int]]:
    """A WatchSet whose second walk (the re-walk after a new directory) writes a file, as a save
    landing while a large tree is re-walked would; returns it and the list of walk sizes."""
    walks: list[int] = []

    class SlowWalk(WatchSet):
        def directories(self) -> list[str]:
            found = super().directories()
            walks.append(len(found))
            if len(walks) == 2:
                touch(during_second_walk, "edited = True\n")
            return found

    watched = SlowWalk(
        roots=(str(root),),
        include_patterns=RELOAD_INCLUDE,
        exclude_patterns=RELOAD_EXCLUDE,
        files=frozenset(),
    )
    return watched, walks


def calls_after_new_directory(root: Path, watched: WatchSet) -> Calls:
    """Create an empty directory under a running Reloader; collect the calls for 1.5 s."""

    async def scenario() -> Calls:
        async with reloading(watched) as calls:
            (root / "newdir").mkdir()  # empty: nothing to reload, but the watcher re-walks
            with contextlib.suppress(AssertionError):
                await calls.wait(1, timeout=1.5)
        return calls

    return asyncio.run(scenario())


def test_a_save_while_the_watcher_rewalks_still_reloads(tmp_path: Path) -> None:
    """An existing file saved while the tree is re-walked after a new directory still reloads."""
    main = touch(tmp_path / "main.py")
    watched, walks = slow_walk(tmp_path, during_second_walk=main)
    calls = calls_after_new_directory(tmp_path, watched)
    assert len(walks) >= 2, "the new directory caused a re-walk"
    assert [str(main)] in calls.paths


def test_a_file_written_into_a_new_directory_during_the_rewalk_reloads(tmp_path: Path) -> None:
    """A file that lands in a brand-new directory while the tree is re-walked still reloads."""
    late = tmp_path / "newdir" / "late.py"
    watched, walks = slow_walk(tmp_path, during_second_walk=late)
    calls = calls_after_new_directory(tmp_path, watched)
    assert len(walks) >= 2, "the new directory caused a re-walk"
    assert [str(late)] in calls.paths


def test_emacs_autosave_files_are_excluded_whatever_the_includes(tmp_path: Path) -> None:
    """#file# (Emacs auto-save) never counts, even under an included directory."""
    watched = watch_set(tmp_path, include=("templates/",))
    assert watched.counts(str(touch(tmp_path / "templates/index.html"))), "the include works"
    assert not watched.counts(str(touch(tmp_path / "templates/.#index.html"))), "lock: excluded"
    assert not watched.counts(str(touch(tmp_path / "templates/#index.html#")))


# --------------------------------------------------------------------------- tracebacks
def test_location_of_a_syntax_error_is_its_file_and_line(tmp_path: Path) -> None:
    """A SyntaxError from compile() points at the compiled file and the offending line."""
    path = touch(tmp_path / "broken.py", "x = 1\ny = 2\ndef f(:\n    pass\n")
    with pytest.raises(SyntaxError) as info:
        compile(path.read_text(), str(path), "exec")
    assert tracebacks.location(info.value) == (str(path), 3)


@contextlib.contextmanager
def temp_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str
) -> Iterator[Path]:
    """A module `name` written to tmp_path and importable; forgotten by sys.modules afterwards."""
    path = touch(tmp_path / f"{name}.py", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield path
    finally:
        sys.modules.pop(name, None)


RAISING_MODULE = """\
def helper():
    raise ValueError("boom from the app")


helper()
"""


def test_location_of_an_error_is_the_line_in_the_apps_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception raised in a function of an imported module points at that function's line."""
    with temp_module(tmp_path, monkeypatch, "reload_units_raises", RAISING_MODULE) as path:
        with pytest.raises(ValueError) as info:
            importlib.import_module("reload_units_raises")
        assert tracebacks.location(info.value) == (str(path), 2)


def test_location_without_a_traceback_is_unknown() -> None:
    """An exception that was never raised has no location."""
    assert tracebacks.location(ValueError("never raised")) == (None, None)


def test_format_drops_the_leading_frames_that_are_not_the_apps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Imported by devserve through importlib, the traceback starts at the app's first frame."""
    with (
        temp_module(tmp_path, monkeypatch, "reload_units_format", RAISING_MODULE) as path,
        pytest.raises(AppLoadError) as info,
    ):
        import_from_string("reload_units_format:app")
    original = info.value.__context__  # what the worker caught: raised `from None`
    assert isinstance(original, ValueError)
    full = "".join(traceback.format_exception(original))
    assert "importlib" in full and "app_loader.py" in full, "the frames to drop are there"
    shown = tracebacks.format(original)
    assert "importlib" not in shown
    assert "app_loader.py" not in shown
    assert shown.startswith("Traceback (most recent call last):\n")
    assert f'File "{path}", line 5, in <module>' in shown
    assert f'File "{path}", line 2, in helper' in shown
    assert shown.rstrip().endswith("ValueError: boom from the app")
    assert info.value.details == shown, "the worker reports the same text"
    assert (info.value.file, info.value.line) == (str(path), 2)


# --------------------------------------------------------------------------- fallback page
HOSTILE = Failed(
    message="importing 'main' raised ValueError: <script>alert(1)</script>",
    details=(
        "Traceback (most recent call last):\n"
        '  File "/app/main.py", line 3, in <module>\n'
        "ValueError: </script><script>alert(2)</script> & <b>bold</b>\n"
    ),
    file="/app/<i>main</i>.py",
    line=3,
)


def shown_in_script(page: str) -> str:
    """The JSON string the page's script compares the text version with."""
    match = re.search(r"const shown = (.*);\n", page)
    assert match is not None, page
    value = json.loads(match.group(1))
    assert isinstance(value, str)
    return value


def test_render_html_escapes_the_message_the_file_and_the_traceback() -> None:
    """Nothing the app's error contains can add markup or a script to the page."""
    page = render_html(HOSTILE, prod=False)
    for raw in ("<script>alert(1)", "alert(1)</script>", "<script>alert(2)", "<b>bold", "<i>main"):
        assert raw not in page, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt; &amp; &lt;b&gt;bold" in page
    assert "/app/&lt;i&gt;main&lt;/i&gt;.py, line 3" in page


def test_render_html_details_cannot_close_the_pages_script() -> None:
    """'</script>' in the traceback cannot end the page's own script, and its data survives."""
    page = render_html(HOSTILE, prod=False)
    assert page.count("<script") == 1
    assert page.count("</script") == 1
    script = page[page.index("<script>") : page.index("</script>")]
    assert "const shown" in script and "setTimeout(poll, 1000);" in script, "the whole script"
    assert shown_in_script(page) == render_text(HOSTILE, prod=False), "what the poll compares"


def test_prod_hides_the_traceback_and_the_file() -> None:
    """With --prod neither the text nor the HTML page shows the traceback or the app's file."""
    dev_text, dev_html = render_text(HOSTILE, prod=False), render_html(HOSTILE, prod=False)
    assert "alert(2)" in dev_text and "/app/<i>main</i>.py, line 3" in dev_text
    assert "<pre>" in dev_html and "line 3" in dev_html
    prod_text, prod_html = render_text(HOSTILE, prod=True), render_html(HOSTILE, prod=True)
    for page in (prod_text, prod_html):
        assert "alert(2)" not in page and "Traceback" not in page
        assert "main</i>.py" not in page and "main&lt;/i&gt;.py" not in page
        assert "line 3" not in page
    assert "<pre>" not in prod_html and "class=where" not in prod_html
    assert shown_in_script(prod_html) == prod_text
    assert prod_text.startswith("devserve: the app did not start\n")


def test_prod_page_says_only_that_the_app_did_not_start() -> None:
    """With --prod the page does not repeat the exception's message."""
    secret = Failed(message="importing 'main' raised OperationalError: postgres://u:hunter2@db/x")
    assert "hunter2" not in render_text(secret, prod=True)
    assert "hunter2" not in render_html(secret, prod=True)


# --------------------------------------------------------------------------- config
def test_reload_enabled_truth_table(tmp_path: Path) -> None:
    """Default: on in a terminal only; --prod turns the default off; an explicit flag wins."""

    def config(**cli: object) -> Config:
        return load_config(cli, environ={}, directory=tmp_path).config

    default, prod = config(), config(prod=True)
    assert default.reload is None
    assert reload_enabled(default, terminal=True) is True
    assert reload_enabled(default, terminal=False) is False
    assert reload_enabled(prod, terminal=True) is False
    assert reload_enabled(prod, terminal=False) is False
    assert load_config({"prod": True}, environ={}, directory=tmp_path).sources["reload"] == (
        "default (--prod)"
    )
    assert reload_enabled(config(prod=True, reload=True), terminal=True) is True
    assert reload_enabled(config(prod=True, reload=True), terminal=False) is True
    assert reload_enabled(config(reload=True), terminal=False) is True
    assert reload_enabled(config(reload=False), terminal=True) is False
    assert reload_enabled(Config(prod=True), terminal=True) is False, "even without load_config"


def test_load_config_rejects_a_missing_reload_dir(tmp_path: Path) -> None:
    """--reload-dir must name existing directories; the error names the option and the path."""
    (tmp_path / "src").mkdir()
    ok = load_config({"reload_dir": (str(tmp_path / "src"),)}, environ={}, directory=tmp_path)
    assert ok.config.reload_dir == (str(tmp_path / "src"),)
    missing = str(tmp_path / "nope")
    with pytest.raises(ConfigError) as info:
        load_config(
            {"reload_dir": (str(tmp_path / "src"), missing)}, environ={}, directory=tmp_path
        )
    assert "--reload-dir" in str(info.value)
    assert missing in str(info.value)
    assert "command line" in str(info.value)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match="--reload-dir"):
        load_config({"reload_dir": (str(tmp_path / "a-file"),)}, environ={}, directory=tmp_path)


# --------------------------------------------------------------------------- --print-watch
def test_print_watch_lists_roots_patterns_and_counts(tmp_path: Path) -> None:
    """`devserve --print-watch` shows the root, config file, patterns, delay and exact counts."""
    root = tmp_path / "project"
    for name in ("app.py", ".env", "pkg/__init__.py", "pkg/views.py", "pkg/templates/index.html"):
        touch(root / name)
    for name in (
        "migrations/0001_initial.py",
        "pkg/migrations/0002.py",
        ".venv/lib/site.py",
        "node_modules/x/y.py",
        "pkg/__pycache__/views.cpython-311.pyc",
        "README.md",
    ):
        touch(root / name)
    touch(root / "devserve.toml", "reload_delay = 0.2\n")
    result = subprocess.run(
        devserve_command(
            "--print-watch",
            "--app-dir",
            str(root),
            "--reload-include",
            "*.html",
            "--reload-exclude",
            "migrations/",
        ),
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"root       {root}" in lines
    assert f"file       {root / 'devserve.toml'}" in lines
    assert f"include    {' '.join((*RELOAD_INCLUDE, '*.html'))}" in lines
    assert f"exclude    {' '.join((*RELOAD_EXCLUDE, 'migrations/'))}" in lines
    assert "delay      0.2s" in lines
    assert "reload     off (--reload / --no-reload)" in lines, "stdout is not a terminal"
    # project, pkg, pkg/templates; app.py .env __init__ views index.html devserve.toml
    assert "watching   3 directories, 6 matching files" in lines, result.stdout

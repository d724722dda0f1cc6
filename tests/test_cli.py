"""The `devserve` command line as a user meets it: `python -m devserver` in a subprocess."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.utils import clean_env, devserve_command, run_devserve

APPS = str(Path(__file__).parent / "cli_apps")
EXAMPLES = str(Path(__file__).parents[1] / "docs" / "examples")


def devserve(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """Run devserve to completion (for commands that fail or exit at once)."""
    return subprocess.run(
        devserve_command("--no-tui", *args),
        capture_output=True,
        text=True,
        timeout=20,
        cwd=cwd,
        env=clean_env(),
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("devserve: error:")]


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("devserve: error:")
    assert "Traceback" not in result.stderr
    assert "Usage:" not in result.stderr
    return lines[0]


# --------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--port", "abc"), "--port"),
        (("--lifespan", "maybe"), "--lifespan"),
        (("--header", "broken"), "--header"),
        (("--timeout-keep-alive", "-3"), "--timeout-keep-alive"),
    ],
)
def test_bad_flag_value_exits_2_with_one_line(args: tuple[str, ...], needle: str) -> None:
    """A flag with an unusable value exits 2 with one 'devserve: error:' line naming the flag."""
    line = assert_one_line_error(devserve(*args), 2)
    assert needle in line


def test_unknown_flag_exits_2_with_one_line() -> None:
    """An unknown flag exits 2 with one error line that names it, without click's usage block."""
    line = assert_one_line_error(devserve("--no-such-flag"), 2)
    assert "--no-such-flag" in line


def test_missing_flag_argument_exits_2_with_one_line() -> None:
    """A flag missing its value exits 2 with one error line."""
    assert_one_line_error(devserve("--port"), 2)


def test_bad_env_value_exits_2_naming_the_variable() -> None:
    """A bad DEVSERVE_* value exits 2 with one line naming the variable."""
    result = subprocess.run(
        devserve_command("--no-tui"),
        capture_output=True,
        text=True,
        timeout=20,
        env=clean_env(DEVSERVE_BACKLOG="lots"),
    )
    line = assert_one_line_error(result, 2)
    assert "DEVSERVE_BACKLOG" in line


# --------------------------------------------------------------------------- app loading errors
def test_missing_app_module_exits_3_with_one_line() -> None:
    """An app module that does not exist exits 3 with one line naming the module."""
    line = assert_one_line_error(devserve("--port", "0", "no_such_module_xyz:app"), 3)
    assert "no_such_module_xyz" in line


def test_app_module_whose_import_raises_shows_its_traceback_then_one_line() -> None:
    """An import that raises exits 3, printing the app's traceback and then one error line."""
    result = devserve("--port", "0", "--app-dir", APPS, "broken_app:app")
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Traceback (most recent call last)")
    assert any("broken_app.py" in line for line in lines)
    assert "RuntimeError: broken_app refuses to import" in result.stderr
    assert lines[-1].startswith("devserve: error:")
    assert "broken_app" in lines[-1] and "RuntimeError" in lines[-1]
    assert len(error_lines(result.stderr)) == 1


def test_missing_attribute_exits_3() -> None:
    """`module:missing` exits 3 with one line naming the attribute."""
    line = assert_one_line_error(devserve("--port", "0", "--app-dir", APPS, "scope_app:nope"), 3)
    assert "nope" in line


def test_non_callable_app_exits_3() -> None:
    """An attribute that is not callable exits 3 with one line saying so."""
    result = devserve("--port", "0", "--app-dir", APPS, "scope_app:not_callable")
    line = assert_one_line_error(result, 3)
    assert "not callable" in line


@pytest.mark.parametrize(
    ("app", "hint"),
    [
        ("scope_app", "e.g. scope_app:app"),
        ("a:b:c", "e.g. main:app"),
        (":app", "e.g. main:app"),
        ("scope_app:", "e.g. main:app"),
        ("main.py:app", "the module, not its file: main:app"),
        ("src/main.py", "the module, not its file: src.main:app"),
    ],
)
def test_a_malformed_app_is_a_bad_command_line(app: str, hint: str) -> None:
    """An APP that is not module:attribute exits 2 (a bad command line, as an unknown flag is)
    with one line that says what to write instead, before anything starts."""
    line = assert_one_line_error(devserve("--port", "0", "--app-dir", APPS, app), 2)
    assert (
        line
        == f"devserve: error: APP (from command line): {app!r} is not module:attribute ({hint})"
    )


def test_a_command_after_an_option_says_commands_come_first() -> None:
    line = assert_one_line_error(devserve("--control", "x.sock", "top"), 2)
    assert line == "devserve: error: 'top' is a command: it comes first (devserve top [OPTIONS])"


def test_a_ctl_command_without_ctl_is_pointed_there() -> None:
    line = assert_one_line_error(devserve("stop"), 2)
    assert line == "devserve: error: 'stop' is not an app (module:attribute): devserve ctl stop?"


def test_a_malformed_app_from_the_environment_names_it() -> None:
    result = subprocess.run(
        devserve_command("--no-tui", "--port", "0"),
        capture_output=True, text=True, timeout=20, env=clean_env(DEVSERVE_APP="scope_app"),
    )  # fmt: skip
    line = assert_one_line_error(result, 2)
    assert line.startswith("devserve: error: APP (from DEVSERVE_APP): 'scope_app' is not")


def test_factory_that_raises_exits_3_with_its_traceback() -> None:
    """A --factory that raises exits 3: its traceback, then one error line."""
    result = devserve("--port", "0", "--app-dir", APPS, "--factory", "scope_app:failing_factory")
    assert result.returncode == 3, result.stderr
    assert "RuntimeError: factory broke" in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("devserve: error:") and "factory broke" in lines[-1]
    assert len(error_lines(result.stderr)) == 1


def test_wsgi_app_is_detected_and_served() -> None:
    """A WSGI callable is recognised by --interface auto and served (devserver/wsgi.py)."""
    with run_devserve("--app-dir", APPS, "wsgi_app:app") as proc:
        response = httpx.get(proc.url)
    assert (response.status_code, response.text) == (200, "wsgi")


def test_lifespan_startup_failure_with_lifespan_on_exits_3() -> None:
    """`--lifespan on` with an app whose startup fails exits 3 with the app's message."""
    result = devserve("--port", "0", "--lifespan", "on", "--app-dir", APPS, "lifespan_fail_app:app")
    assert result.returncode == 3, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1
    assert "database unreachable" in lines[0]
    assert result.stderr.strip().splitlines()[-1] == lines[0]
    assert "serving on" not in result.stderr


def test_port_already_in_use_exits_3_naming_the_address() -> None:
    """Binding a port another socket listens on exits 3 with one line naming the flags that
    gave the address, the address and why."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = devserve("--port", str(port), "--app-dir", APPS, "scope_app:app")
    line = assert_one_line_error(result, 3)
    assert line == f"devserve: error: --host/--port 127.0.0.1:{port}: address already in use"


@pytest.mark.parametrize("flag", ["--admin", "--dashboard", "--bind"])
def test_a_taken_address_names_its_listener(flag: str) -> None:
    """--admin's, --dashboard's or --bind's address in use: the one line names that flag."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        args = [flag, address] if flag == "--bind" else ["--port", "0", flag, address]
        result = devserve(*args, "--control", "off", "--app-dir", APPS, "scope_app:app")
    line = assert_one_line_error(result, 3)
    assert line == f"devserve: error: {flag} {address}: address already in use"


@pytest.mark.parametrize(
    ("interface", "app", "shape", "instead"),
    [
        ("asgi3", "flask_app:app", "a WSGI app (it takes (environ, start_response))", "wsgi"),
        ("asgi2", "flask_app:app", "a WSGI app (it takes (environ, start_response))", "wsgi"),
        ("wsgi", "scope_app:app", "an ASGI 3 app (it takes (scope, receive, send))", "asgi3"),
    ],
)
def test_a_forced_interface_the_app_cannot_take_is_refused_at_startup(
    interface: str, app: str, shape: str, instead: str
) -> None:
    """`--interface asgi3` given a Flask app (or `wsgi` an ASGI one) fails at startup with one
    line saying which interface to use, instead of a TypeError at every request."""
    app_dir = EXAMPLES if app.startswith("flask") else APPS
    result = devserve("--port", "0", "--interface", interface, "--app-dir", app_dir, app)
    line = assert_one_line_error(result, 3)
    assert line == (
        f"devserve: error: --interface {interface}: {app!r} looks like {shape}: "
        f"use --interface {instead} (or auto)"
    )


def test_a_forced_interface_that_fits_serves() -> None:
    """`--interface wsgi` with the Flask example serves it (the check refuses only a misfit)."""
    with run_devserve("--interface", "wsgi", "--app-dir", EXAMPLES, "flask_app:app") as proc:
        response = httpx.get(proc.url + "/")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "text", ["{not json", '{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}']
)
def test_bad_log_config_file_exits_2_with_one_line(tmp_path: Path, text: str) -> None:
    """A --log-config file that cannot be applied exits 2 with one error line naming the flag."""
    config_file = tmp_path / "logging.json"
    config_file.write_text(text)
    line = assert_one_line_error(
        devserve("--port", "0", "--log-config", str(config_file), "--app-dir", APPS,
                 "scope_app:app"),
        2,
    )  # fmt: skip
    assert "--log-config" in line


# --------------------------------------------------------------------------- informational
def test_version() -> None:
    """`--version` prints the version and exits 0."""
    from devserver import __version__

    result = devserve("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"devserve, version {__version__}"


def test_help_works() -> None:
    """`python -m devserver --help` exits 0 and lists options with their env variables."""
    result = subprocess.run(
        devserve_command("--help"), capture_output=True, text=True, timeout=20, env=clean_env()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: devserve")
    for text in ("--port", "--forwarded-allow-ips", "DEVSERVE_PORT", "--print-config"):
        assert text in result.stdout


# --------------------------------------------------------------------------- serving
def test_app_dir_and_module_attribute() -> None:
    """`--app-dir DIR module:app` imports the module from DIR and serves it."""
    with run_devserve("--app-dir", APPS, "scope_app:app") as proc:
        response = httpx.get(proc.url + "/hello")
    assert response.status_code == 200
    assert response.json()["path"] == "/hello"


def test_factory() -> None:
    """`--factory module:create_app` calls the factory and serves what it returns."""
    with run_devserve("--app-dir", APPS, "--factory", "scope_app:create_app") as proc:
        response = httpx.get(proc.url + "/made")
    assert response.json()["path"] == "/made"


def test_dotted_attribute() -> None:
    """`module:obj.app` follows the attribute path."""
    with run_devserve("--app-dir", APPS, "scope_app:holder.app") as proc:
        response = httpx.get(proc.url + "/dotted")
    assert response.json()["path"] == "/dotted"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_cleanly(signum: signal.Signals) -> None:
    """SIGTERM or SIGINT makes a serving devserve run lifespan shutdown, log 'stopped', exit 0."""
    with run_devserve("--app-dir", APPS, "scope_app:app") as proc:
        output = proc.out
        assert httpx.get(proc.url + "/").status_code == 200
        text = output.stop(signum)
    assert re.search(r"INFO: +stopped$", text, re.MULTILINE)
    assert signum.name in text
    assert "scope_app: shutdown after startup" in text


def test_env_file_is_visible_to_the_app(tmp_path: Path) -> None:
    """`--env-file` loads variables before the app runs, so the app sees them."""
    env_file = tmp_path / ".env"
    env_file.write_text("DEVSERVE_TEST_VALUE=from-the-env-file\n")
    with run_devserve("--env-file", str(env_file), "--app-dir", APPS, "scope_app:app") as proc:
        response = httpx.get(proc.url + "/")
    assert response.json()["env"] == "from-the-env-file"


def test_extra_headers_appear_in_responses() -> None:
    """Each `--header NAME:VALUE` is sent with every response."""
    with run_devserve(
        "--header", "X-A:1", "--header", "X-B: two", "--app-dir", APPS, "scope_app:app"
    ) as proc:
        response = httpx.get(proc.url + "/")
    assert response.headers["x-a"] == "1"
    assert response.headers["x-b"] == "two"


def test_root_path() -> None:
    """`--root-path /api` sets scope root_path and prefixes scope path with it."""
    with run_devserve("--root-path", "/api", "--app-dir", APPS, "scope_app:app") as proc:
        data = httpx.get(proc.url + "/items").json()
    assert data["root_path"] == "/api"
    assert data["path"] == "/api/items"


def test_config_file_in_the_working_directory_is_used(tmp_path: Path) -> None:
    """A devserve.toml in the current directory configures the server started there."""
    (tmp_path / "devserve.toml").write_text('header = ["X-From-File:yes"]\n')
    with run_devserve("--app-dir", APPS, "scope_app:app", cwd=str(tmp_path)) as proc:
        response = httpx.get(proc.url + "/")
    assert response.headers["x-from-file"] == "yes"


def test_a_pidfile_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    """--pidfile in a directory that does not exist: one line naming the flag and why, exit 2
    (a file a flag names that cannot be used), not a traceback."""
    pidfile = tmp_path / "no-such-dir" / "devserve.pid"
    result = devserve("--port", "0", "--pidfile", str(pidfile), "--app-dir", APPS, "scope_app:app")
    line = assert_one_line_error(result, 2)
    assert (
        line == f"devserve: error: --pidfile {pidfile}: cannot write it: No such file or directory"
    )

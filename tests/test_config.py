"""Config resolution: one declaration per option, precedence of the layers, validation."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click
import pytest

from devserver import cli
from devserver.config import (
    FIELDS,
    OPTIONS,
    Config,
    ConfigError,
    Option,
    cli_flag,
    env_var,
    load_config,
    worker_count,
)
from tests.utils import clean_env, devserve_command


# --------------------------------------------------------------------------- declaration
def test_every_option_is_declared_once_and_exposed_once() -> None:
    """Each Config field has help text, exactly one CLI parameter, a unique flag and env var."""
    params = [p for p in cli.main.params if p.name in FIELDS]
    names = [p.name for p in params]
    assert sorted(names) == sorted(FIELDS), "every field is a CLI parameter, exactly once"
    flags = [cli_flag(name) for name in FIELDS]
    envs = [env_var(name) for name in FIELDS]
    assert len(set(flags)) == len(flags)
    assert len(set(envs)) == len(envs)
    for name, spec in OPTIONS.items():
        assert spec.help, f"{name} has no help text"
        if name == "app":
            continue
        (param,) = [p for p in params if p.name == name]
        assert isinstance(param, click.Option)
        assert cli_flag(name) in param.opts


def test_each_field_carries_its_option() -> None:
    """Every Config field's metadata holds its Option, whose default is the field's, and a
    switch (a flag without a value) is exactly an option whose field holds a bool."""
    for name, fld in FIELDS.items():
        spec = OPTIONS[name]
        assert isinstance(spec, Option) and fld.metadata["option"] is spec
        assert getattr(Config(), name) == spec.default
        assert spec.switch == (fld.type in ("bool", "bool | None")), name
        param = next(p for p in cli.main.params if p.name == name)
        assert isinstance(param, click.Argument) or param.is_flag == spec.switch, name


def test_defaults_without_any_layer(tmp_path: Path) -> None:
    """With no CLI values, no env vars and no config file every option has its declared default."""
    resolved = load_config({}, environ={}, directory=tmp_path)
    assert resolved.config == Config()
    assert set(resolved.sources.values()) == {"default"}
    assert resolved.config.port == 8000
    assert resolved.config.timeout_graceful_shutdown == 3.0


# --------------------------------------------------------------------------- precedence
def test_precedence_cli_over_env_over_devserve_toml_over_pyproject(tmp_path: Path) -> None:
    """CLI beats env, env beats devserve.toml, devserve.toml beats pyproject, unset is default."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.devserve]\nport = 1004\nhost = "10.0.0.4"\nbacklog = 4\nroot_path = "/py"\n'
    )
    (tmp_path / "devserve.toml").write_text(
        'port = 1003\nhost = "10.0.0.3"\nbacklog = 3\nroot-path = "/file"\n'
    )
    environ = {"DEVSERVE_PORT": "1002", "DEVSERVE_HOST": "10.0.0.2"}
    resolved = load_config({"port": "1001"}, environ=environ, directory=tmp_path)
    config, sources = resolved.config, resolved.sources
    assert (config.port, sources["port"]) == (1001, "command line")
    assert (config.host, sources["host"]) == ("10.0.0.2", "DEVSERVE_HOST")
    assert (config.backlog, sources["backlog"]) == (3, str(tmp_path / "devserve.toml"))
    assert (config.root_path, sources["root_path"]) == ("/file", str(tmp_path / "devserve.toml"))
    assert (config.log_level, sources["log_level"]) == ("info", "default")


def test_pyproject_tool_devserve_is_used_without_devserve_toml(tmp_path: Path) -> None:
    """Without devserve.toml, [tool.devserve] in pyproject.toml supplies values."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.devserve]\nport = 1004\naccess-log = false\n'
    )
    resolved = load_config({}, environ={}, directory=tmp_path)
    assert resolved.config.port == 1004
    assert resolved.config.access_log is False
    assert resolved.sources["port"] == str(tmp_path / "pyproject.toml")


def test_pyproject_without_tool_section_is_ignored(tmp_path: Path) -> None:
    """A pyproject.toml without [tool.devserve] leaves every option at its default."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    resolved = load_config({}, environ={}, directory=tmp_path)
    assert set(resolved.sources.values()) == {"default"}


def test_env_values_are_parsed_by_type(tmp_path: Path) -> None:
    """Env strings become booleans, numbers and tuples (headers split on ';', binds on ',')."""
    environ = {
        "DEVSERVE_ACCESS_LOG": "false",
        "DEVSERVE_PROXY_HEADERS": "no",
        "DEVSERVE_TIMEOUT_KEEP_ALIVE": "1.5",
        "DEVSERVE_HEADER": "X-A: 1; X-B:two",
        "DEVSERVE_BIND": "127.0.0.1:1,[::1]:2",
        "DEVSERVE_LOG_LEVEL": "DEBUG",
    }
    config = load_config({}, environ=environ, directory=tmp_path).config
    assert config.access_log is False
    assert config.proxy_headers is False
    assert config.timeout_keep_alive == 1.5
    assert config.header == (("X-A", "1"), ("X-B", "two"))
    assert config.bind == ("127.0.0.1:1", "[::1]:2")
    assert config.log_level == "debug"


def test_cli_values_override_file_values_of_multiple_options(tmp_path: Path) -> None:
    """A repeatable option given on the CLI replaces, not extends, the file's list."""
    (tmp_path / "devserve.toml").write_text('header = ["X-File:1"]\n')
    config = load_config({"header": ("X-Cli:2",)}, environ={}, directory=tmp_path).config
    assert config.header == (("X-Cli", "2"),)


# --------------------------------------------------------------------------- --prod
def test_prod_changes_the_graceful_shutdown_default(tmp_path: Path) -> None:
    """--prod raises timeout_graceful_shutdown's default to 30 and says so in the source."""
    resolved = load_config({"prod": True}, environ={}, directory=tmp_path)
    assert resolved.config.timeout_graceful_shutdown == 30.0
    assert resolved.sources["timeout_graceful_shutdown"] == "default (--prod)"


def test_prod_from_env_also_changes_the_default(tmp_path: Path) -> None:
    """DEVSERVE_PROD=1 is the same as --prod for prod defaults."""
    resolved = load_config({}, environ={"DEVSERVE_PROD": "1"}, directory=tmp_path)
    assert resolved.config.timeout_graceful_shutdown == 30.0


def test_prod_does_not_override_an_explicit_value(tmp_path: Path) -> None:
    """A graceful-shutdown timeout set anywhere wins over the --prod default."""
    (tmp_path / "devserve.toml").write_text("timeout_graceful_shutdown = 7\n")
    resolved = load_config({"prod": True}, environ={}, directory=tmp_path)
    assert resolved.config.timeout_graceful_shutdown == 7.0
    assert resolved.sources["timeout_graceful_shutdown"] == str(tmp_path / "devserve.toml")


# --------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    ("cli_values", "flag"),
    [
        ({"port": "abc"}, "--port"),
        ({"port": "70000"}, "--port"),
        ({"backlog": "0"}, "--backlog"),
        ({"timeout_keep_alive": "-1"}, "--timeout-keep-alive"),
        ({"timeout_keep_alive": "nan"}, "--timeout-keep-alive"),
        ({"lifespan": "sometimes"}, "--lifespan"),
        ({"header": ("no-colon",)}, "--header"),
        ({"forwarded_allow_ips": "not-an-ip"}, "--forwarded-allow-ips"),
        ({"bind": ("localhost",)}, "--bind"),
        ({"access_log": "perhaps"}, "--access-log"),
    ],
)
def test_bad_cli_value_names_the_flag_and_the_command_line(
    tmp_path: Path, cli_values: dict[str, object], flag: str
) -> None:
    """A value that cannot be parsed raises ConfigError naming the flag and 'command line'."""
    with pytest.raises(ConfigError) as info:
        load_config(cli_values, environ={}, directory=tmp_path)
    message = str(info.value)
    assert message.startswith(flag + " ")
    assert "command line" in message
    assert "\n" not in message


def test_bad_env_value_names_the_flag_and_the_variable(tmp_path: Path) -> None:
    """A bad DEVSERVE_PORT raises ConfigError naming --port and DEVSERVE_PORT."""
    with pytest.raises(ConfigError, match=r"--port \(from DEVSERVE_PORT\)"):
        load_config({}, environ={"DEVSERVE_PORT": "eighty"}, directory=tmp_path)


@pytest.mark.parametrize("value", ["true", "1.5", '"x"'])
def test_bad_file_value_names_the_flag_and_the_file(tmp_path: Path, value: str) -> None:
    """A mistyped value in devserve.toml raises ConfigError naming --port and the file's path."""
    path = tmp_path / "devserve.toml"
    path.write_text(f"port = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config({}, environ={}, directory=tmp_path)
    assert "--port" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("devserve.toml", "prot = 80\n"),
        ("pyproject.toml", "[tool.devserve]\nprot = 80\n"),
    ],
)
def test_unknown_key_in_a_config_file_is_an_error(tmp_path: Path, filename: str, text: str) -> None:
    """An unknown key (a typo) in devserve.toml or [tool.devserve] raises naming key and file."""
    (tmp_path / filename).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config({}, environ={}, directory=tmp_path)
    assert "'prot'" in str(info.value)
    assert filename in str(info.value)


def test_unreadable_toml_is_an_error(tmp_path: Path) -> None:
    """A devserve.toml that is not valid TOML raises ConfigError naming the file."""
    (tmp_path / "devserve.toml").write_text("port = = 1\n")
    with pytest.raises(ConfigError, match=r"devserve\.toml"):
        load_config({}, environ={}, directory=tmp_path)


def test_cross_option_rules(tmp_path: Path) -> None:
    """A key without a certificate, or a missing --app-dir, is a ConfigError naming the flag."""
    key = tmp_path / "key.pem"
    key.write_text("x")
    with pytest.raises(ConfigError, match="--ssl-certfile"):
        load_config({"ssl_keyfile": str(key)}, environ={}, directory=tmp_path)
    with pytest.raises(ConfigError, match="--app-dir"):
        load_config({"app_dir": str(tmp_path / "nope")}, environ={}, directory=tmp_path)


def test_missing_file_error_names_its_source(tmp_path: Path) -> None:
    """A missing --log-config file given via DEVSERVE_LOG_CONFIG is reported with that source."""
    environ = {"DEVSERVE_LOG_CONFIG": str(tmp_path / "missing.json")}
    with pytest.raises(ConfigError) as info:
        load_config({}, environ=environ, directory=tmp_path)
    assert "--log-config" in str(info.value)
    assert "DEVSERVE_LOG_CONFIG" in str(info.value)


# --------------------------------------------------------------------------- --print-config
def test_print_config_shows_values_and_sources(tmp_path: Path) -> None:
    """`devserve --print-config` prints every option with its value and where it came from."""
    (tmp_path / "devserve.toml").write_text('root_path = "/from-file"\n')
    result = subprocess.run(
        [*devserve_command("--print-config", "--port", "1234", "--prod")],
        cwd=tmp_path,
        env=clean_env(DEVSERVE_HOST="127.0.0.2", DEVSERVE_SSL_KEYFILE_PASSWORD="hunter2"),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert set(lines) == set(FIELDS)
    assert "1234" in lines["port"] and lines["port"].endswith("command line")
    assert "'127.0.0.2'" in lines["host"] and lines["host"].endswith("DEVSERVE_HOST")
    assert "'/from-file'" in lines["root_path"]
    assert lines["root_path"].endswith(str(tmp_path / "devserve.toml"))
    assert "30.0" in lines["timeout_graceful_shutdown"]
    assert lines["timeout_graceful_shutdown"].endswith("default (--prod)")
    assert lines["backlog"].endswith("default")
    assert "hunter2" not in result.stdout, "the key password is masked"


def test_worker_count_defaults_by_mode(tmp_path: Path) -> None:
    """One worker in dev mode, the CPU count with --prod, --workers always wins."""
    dev = load_config({}, environ={}, directory=tmp_path).config
    prod = load_config({"prod": "1"}, environ={}, directory=tmp_path).config
    explicit = load_config({"prod": "1", "workers": "3"}, environ={}, directory=tmp_path).config
    assert worker_count(dev) == 1
    assert worker_count(prod) == (os.cpu_count() or 1)
    assert worker_count(explicit) == 3


def test_web_concurrency_sets_workers_below_devserve_workers(tmp_path: Path) -> None:
    """$WEB_CONCURRENCY (Heroku, Render...) sets --workers unless DEVSERVE_WORKERS or the CLI do."""
    resolved = load_config({}, environ={"WEB_CONCURRENCY": "4"}, directory=tmp_path)
    assert (resolved.config.workers, resolved.sources["workers"]) == (4, "WEB_CONCURRENCY")
    both = {"WEB_CONCURRENCY": "4", "DEVSERVE_WORKERS": "2"}
    assert load_config({}, environ=both, directory=tmp_path).config.workers == 2
    assert load_config({"workers": "5"}, environ=both, directory=tmp_path).config.workers == 5
    with pytest.raises(ConfigError, match=r"--workers \(from WEB_CONCURRENCY\)"):
        load_config({}, environ={"WEB_CONCURRENCY": "many"}, directory=tmp_path)

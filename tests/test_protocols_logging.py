"""Logging is set up in one place: importing the protocols changes no logger, configure() quiets
websockets' own chatter, and a YAML --log-config without PyYAML fails with one line saying
what to install. Each runs in a fresh interpreter: logging is process-wide state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.utils import clean_env

APPS = str(Path(__file__).parent / "cli_apps")


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )


def test_importing_the_protocols_changes_no_logger() -> None:
    """Importing the server and its protocols leaves every logger's level as it was."""
    result = python(
        "import logging\n"
        "import devserver.server, devserver.protocols.http, devserver.protocols.websocket\n"
        "levels = {name: log.level for name, log in logging.Logger.manager.loggerDict.items()\n"
        "          if isinstance(log, logging.Logger) and name.startswith('devserve')}\n"
        "print({name: level for name, level in levels.items() if level})\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{}"


def test_configure_keeps_websockets_chatter_out_unless_a_log_config_asks(tmp_path: Path) -> None:
    """configure() sets devserve.websocket (websockets logs every open and close at INFO) to
    WARNING; a --log-config that names that logger decides instead."""
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "incremental": True,
                "loggers": {"devserve.websocket": {"level": "INFO"}},
            }
        )
    )
    code = (
        "import logging, sys\n"
        "from devserver.config import Config\n"
        "from devserver import logging as devserve_logging\n"
        "devserve_logging.configure(Config(log_config=sys.argv[1] or None))\n"
        "print(logging.getLevelName(logging.getLogger('devserve.websocket').level))\n"
    )
    plain = python(code, "")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "WARNING"
    configured = python(code, str(log_config))
    assert configured.returncode == 0, configured.stderr
    assert configured.stdout.strip() == "INFO"


def test_a_yaml_log_config_without_pyyaml_fails_with_one_line_naming_the_extra(
    tmp_path: Path,
) -> None:
    """devserve --log-config x.yaml, with PyYAML not importable, exits 2 with one error line
    that says to install devserve[yaml]."""
    log_config = tmp_path / "logging.yaml"
    log_config.write_text("version: 1\n")
    result = python(
        "import sys\n"
        "sys.modules['yaml'] = None  # as if PyYAML were not installed\n"
        "from devserver.cli import entry\n"
        "entry(sys.argv[1:])\n",
        "--no-tui",
        "--port",
        "0",
        "--log-config",
        str(log_config),
        "--app-dir",
        APPS,
        "scope_app:app",
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"devserve: error: --log-config {log_config} needs PyYAML: pip install 'devserve[yaml]'"
    ], result.stderr

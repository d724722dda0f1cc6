"""Check that devserve's declared lower bounds are true: install the lowest version of every
runtime dependency pyproject.toml allows into a throwaway venv and run the tests that exercise them.

Run it after raising or lowering a bound: `python3.11 scripts/lower_bounds.py` (on the lowest
Python devserve supports). The test tools come pinned from constraints/test.txt; the runtime
dependencies, and what they pull in, do not, so pip resolves them around the lows.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# what the low-bound tests need besides devserve: no linters, frameworks or docs tools
TEST_TOOLS = ["pytest", "pytest-timeout", "httpx", "trustme", "flask"]

# the unit tests and the real-server files that reach every runtime dependency
TESTS = [
    "tests/test_protocol_unit.py",
    "tests/test_reload_units.py",
    "tests/test_supervisor_unit.py",
    "tests/test_request_corpus.py",
    "tests/test_config.py",
    "tests/test_stats.py",
    "tests/test_cli.py",
    "tests/test_cli_help.py",
    "tests/test_ctl.py",
    "tests/test_smoke.py",
    "tests/test_http_wire.py",
    "tests/test_websocket.py",
    "tests/test_http2_malformed.py",
    "tests/test_http2_server.py",
    "tests/test_http2_streams.py",
    "tests/test_panel.py",
    "tests/test_prometheus.py",
    "tests/test_reload.py",
]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lowest_pins() -> list[str]:
    """`name==low` for each runtime dependency (and the yaml extra) with a `>=` bound."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["yaml"]
    pins = []
    for requirement in declared:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)\s*(;.*)?$", requirement)
        if match is None:
            sys.exit(f"cannot read a lower bound from {requirement!r}")
        name, low, marker = match.groups()
        pins.append(f"{name}=={low}{marker or ''}")
    return pins


def test_tool_constraints(pins: list[str], folder: Path) -> Path:
    """constraints/test.txt less the runtime dependencies, whose versions the lows decide."""
    runtime = {normalized(re.split(r"[=;]", pin)[0]) for pin in pins}
    kept = [
        line
        for line in (ROOT / "constraints/test.txt").read_text().splitlines()
        if line.startswith("#") or normalized(line.split("==")[0]) not in runtime
    ]
    path = folder / "constraints.txt"
    path.write_text("\n".join(kept) + "\n")
    return path


def run(*command: str | Path) -> None:
    print("+", " ".join(map(str, command)), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def main() -> int:
    pins = lowest_pins()
    with tempfile.TemporaryDirectory(prefix="devserve-lows-") as folder:
        venv = Path(folder) / "venv"
        python = venv / "bin" / "python"
        run(sys.executable, "-m", "venv", venv)
        constraints = test_tool_constraints(pins, Path(folder))
        run(python, "-m", "pip", "install", "-q", "-c", constraints, "-e", ".", *pins, *TEST_TOOLS)
        run(python, "-m", "pip", "list", "--format=freeze")
        tests = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS])
        return tests.returncode


if __name__ == "__main__":
    sys.exit(main())

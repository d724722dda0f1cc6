"""The reference pages stay true to the code: the generated flag reference, the Grafana dashboard's
metric names, the process model's table of signals.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devserver.config import FIELDS
from tests.utils import clean_env, devserve_command, spawned, until

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GRAFANA = DOCS / "deploy" / "grafana-dashboard.json"
APPS = str(Path(__file__).parent / "cli_apps")
HEALTH = re.compile(r"health endpoints on (http://\S+)/livez")
SERVING = re.compile(r"serving on (http://\S+)")
METRIC = re.compile(r"\b(devserve_[a-z_]+)\b(\{[^}]*\})?")
SELECTOR_LABEL = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")
BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every series it scrapes


# --------------------------------------------------------------------------- the flag reference
def test_flag_reference_is_not_stale() -> None:
    """docs/reference/flags.md is what scripts/gen_flags.py renders from config.py now."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_flags.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=clean_env(),
    )
    assert result.returncode == 0, (
        "docs/reference/flags.md is stale: run `python scripts/gen_flags.py` and commit it\n"
        + result.stderr
    )


def test_every_option_has_a_group_the_reference_lists() -> None:
    """Each option declares the purpose it is listed under, one of the reference's groups."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_flags
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    for name, fld in FIELDS.items():
        group = fld.metadata.get("group")
        assert isinstance(group, str) and group, f"{name} has no group"
        assert group in gen_flags.GROUPS, f"{name}: group {group!r} is not in config.GROUPS"


# --------------------------------------------------------------------------- Grafana
def _exposed() -> tuple[set[str], dict[str, set[str]]]:
    """The sample names a real devserve's /metrics exposes (whether or not a family has samples
    yet) and the labels seen on each, once both workers have served and ticked."""
    command = devserve_command(
        "--prod",
        "--workers",
        "2",
        "--port",
        "0",
        "--admin",
        "127.0.0.1:0",
        "--control",
        "off",
        "--app-dir",
        APPS,
        "supervised_app:app",
    )
    with spawned(command, env=clean_env()) as process:
        admin = HEALTH.search(process.out.wait_for(HEALTH.pattern, timeout=20))
        serving = SERVING.search(process.out.wait_for(SERVING.pattern, timeout=20))
        assert admin is not None and serving is not None
        for _ in range(4):
            httpx.get(f"{serving.group(1)}/pid", timeout=5)
        url = f"{admin.group(1)}/metrics"
        text = until(
            lambda: httpx.get(url, timeout=5).text,
            "the requests in /metrics (the workers' ticks come every 250 ms)",
            timeout=15,
            accept=lambda text: 'devserve_requests_total{status="2xx"' in text,
        )
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, [""]))
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
    return names, labels


def _expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


def test_grafana_dashboard_queries_only_metrics_devserve_exposes() -> None:
    """Every metric and label the dashboard's PromQL names is one /metrics really serves."""
    dashboard = json.loads(GRAFANA.read_text(encoding="utf-8"))
    expressions = list(_expressions(dashboard))
    assert len(expressions) >= 7, "a query per panel"
    names, labels = _exposed()
    all_labels = set().union(*labels.values(), {"le"}, TARGET_LABELS)
    used = set()
    for expr in expressions:
        for name, selector in METRIC.findall(expr):
            assert name in names, f"{name} (in {expr!r}) is not exposed; /metrics has {names}"
            used.add(name)
            for label in SELECTOR_LABEL.findall(selector or ""):
                known = labels.get(name, set()) | TARGET_LABELS
                assert label in known, f"{name} has no label {label!r}"
        for clause in BY.findall(expr):
            for label in filter(None, (part.strip() for part in clause.split(","))):
                assert label in all_labels, f"no metric has the label {label!r} ({expr!r})"
    assert "devserve_request_duration_seconds_bucket" in used


# --------------------------------------------------------------------------- the process model
def test_signal_table_matches_the_handlers() -> None:
    """The process model's table of signals names exactly those signals.py handles."""
    handled = set(
        re.findall(r"signal\.(SIG\w+): ", (ROOT / "devserver/supervisor/signals.py").read_text())
    )
    page = (DOCS / "process-model.md").read_text(encoding="utf-8")
    section = page.split("## Signals", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ((?:`SIG\w+`(?:, )?)+) \|", section, flags=re.MULTILINE)
    documented = {name for row in rows for name in re.findall(r"SIG\w+", row)}
    assert handled, "signals.install maps no signal?"
    assert documented == handled

"""The Grafana dashboard and the Prometheus alerts speak of metrics the server really exposes, and the rules
pass promtool (Debian package ``prometheus``, installed by .ci/run)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_METRIC = re.compile(r"\bworkcast_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool not found: apt-get install prometheus (see .ci/run)"
    return found


def test_the_alert_rules_pass_promtool_and_fire_as_intended():
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(
            [promtool(), *command], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr


def exposed_names(exposition: str) -> set[str]:
    """Every series name the server can expose, from the TYPE lines (families with no sample yet included)."""
    names = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        # A counter's TYPE line names it with or without _total, depending on whether it has samples yet.
        base = family.removesuffix("_total") if kind == "counter" else family
        names.update(f"{base}{suffix}" for suffix in SUFFIXES.get(kind, ("",)))
    return names


def test_dashboard_and_alerts_use_only_exposed_metrics(server):
    import httpx

    exposition = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    exposed = exposed_names(exposition)
    dashboard = json.loads((DEPLOY / "grafana" / "workcast.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(expressions) >= 10
    used_by_dashboard = {name for e in expressions for name in _METRIC.findall(e)}
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    # The expressions only: annotations may name metrics in prose.
    expression_lines = [
        line for line in rules.splitlines() if not line.strip().startswith(("summary:", "description:"))
    ]
    used_by_alerts = {name for line in expression_lines for name in _METRIC.findall(line)}
    assert used_by_dashboard and used_by_alerts
    assert used_by_dashboard - exposed == set()
    assert used_by_alerts - exposed == set()
    # And every family the server exposes has a panel.
    strip = re.compile(r"_(total|bucket|count|sum)$")
    families = {strip.sub("", name) for name, _ in re.findall(r"^# TYPE (workcast_\S+) (\S+)$", exposition, re.M)}
    shown = {strip.sub("", name) for name in used_by_dashboard}
    assert families - shown == set()

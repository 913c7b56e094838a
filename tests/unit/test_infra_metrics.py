"""Every metric a Grafana panel or an alert rule queries is one that tradeloop exports."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
METRICS_MODULES = (
    "streams.metrics",
    "tradeloop.ops.health_metrics",
    "streams.simulator.metrics",
    "agents.metrics",
    "streams.serving.metrics",
    "trainers.metrics",
)
# What each metric family exposes on /metrics, by type (prometheus_client strips _total from counters).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}
NAME = re.compile(r"\btradeloop_[a-z0-9_]+\b")


def exported() -> tuple[set[str], list[str]]:
    """Series names of every tradeloop metrics module that exists, and the modules missing."""
    missing = []
    for module in METRICS_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise  # the module exists but one of its imports is broken: that is a bug
            missing.append(module)
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names, missing


def panel_exprs(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for panel in panels:
        yield from panel_exprs(panel.get("panels", []))
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def queried() -> dict[str, set[str]]:
    """Metric name -> where it is queried (dashboard panel or alert)."""
    uses: dict[str, set[str]] = {}
    for path in sorted((ROOT / "infra" / "grafana" / "dashboards").glob("*.json")):
        for title, expr in panel_exprs(json.loads(path.read_text())["panels"]):
            for name in NAME.findall(expr):
                uses.setdefault(name, set()).add(f"{path.name}: {title}")
    rules = yaml.safe_load((ROOT / "infra" / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in NAME.findall(rule["expr"]):
                uses.setdefault(name, set()).add(f"alerts.yml: {rule.get('alert') or rule.get('record')}")
    return uses


def test_the_name_collection_sees_the_health_metrics() -> None:
    names, _missing = exported()
    assert {"tradeloop_health_checks_total", "tradeloop_health_check_duration_seconds_bucket",
            "tradeloop_process_info", "tradeloop_health_healthy"} <= names  # fmt: skip
    assert "tradeloop_health_checks" not in names


def test_every_queried_metric_is_exported() -> None:
    names, missing_modules = exported()
    uses = queried()
    assert len(uses) > 40
    unknown = {name: sorted(where) for name, where in sorted(uses.items()) if name not in names}
    detail = "\n".join(f"  {name}: {', '.join(where)}" for name, where in unknown.items())
    assert not unknown, f"queried but not exported (modules not found: {missing_modules}):\n{detail}"

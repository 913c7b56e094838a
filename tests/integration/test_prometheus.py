"""A real Prometheus (Debian's `prometheus` binary) scrapes running tradeloop processes.

Two real components run as child processes against the session broker: the simulated engine
(tradeloop_simulator_*) and the health monitor (tradeloop_health_*), which watches the topics the
simulator fills. Prometheus scrapes both every second and evaluates infra/prometheus/alerts.yml; the
test asserts through its HTTP API that the key series exist and move and that every rule evaluates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.kafka.broker import free_port
from streams.settings import Settings
from tradeloop.ops.status_model import CHECKS
from tradeloop.ops.supervisor import settings_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR = """
from streams.settings import Settings
from streams.simulator.runner import run_simulation
run_simulation(Settings(), speed="x50", duration=90, progress=False)
"""
HEALTH = """
import signal, threading
from streams.config.health import HealthSettings
from tradeloop.ops.health import run_health_monitor
from streams.metrics import serve_metrics
from streams.settings import Settings
settings = Settings()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
serve_metrics(settings, "health", "health-prometheus-test")
run_health_monitor(settings, {}, stop, limits=HealthSettings(check_interval_seconds=1.0))
"""


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        message = "prometheus not found: `apt-get install -y prometheus` provides it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def start_component(
    settings: Settings, name: str, code: str, port: int, logs: Path
) -> subprocess.Popen[bytes]:
    child = settings.model_copy(update={"metrics_enabled": True, "metrics_port": port})
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
    env.update(settings_env(child))
    with (logs / f"{name}.log").open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


class PrometheusAPI:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[str, float]:
        """Instant query: one value per series, keyed by its labels as JSON."""
        result = self.get("/api/v1/query", query=expr)["result"]
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}

    def wait(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}")


def start_prometheus(
    tmp_path: Path, targets: dict[str, int]
) -> tuple[subprocess.Popen[bytes], PrometheusAPI]:
    """Prometheus scraping ``targets`` (job -> port) every second and evaluating the alert rules."""
    binary = prometheus_binary()
    web = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "infra" / "prometheus" / "alerts.yml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in targets.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    with (tmp_path / "prometheus.log").open("wb") as out:
        server = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path}/tsdb",
             f"--web.listen-address=127.0.0.1:{web}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return server, PrometheusAPI(f"http://127.0.0.1:{web}")


def stop_all(children: list[subprocess.Popen[bytes]], logs: Path) -> None:
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    for log in sorted(logs.glob("*.log")):
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture()
def stack(topics: Settings, tmp_path: Path) -> Iterator[PrometheusAPI]:
    """The simulator and the health monitor as child processes, and Prometheus scraping both."""
    prometheus_binary()  # skips before any child starts: a skipped test must not leave them running
    ports = {"simulator": free_port(), "health": free_port()}
    children = [
        start_component(topics, "simulator", SIMULATOR, ports["simulator"], tmp_path),
        start_component(topics, "health", HEALTH, ports["health"], tmp_path),
    ]
    server, api = start_prometheus(tmp_path, ports)
    try:
        yield api
    finally:
        stop_all([*children, server], tmp_path)


def test_prometheus_scrapes_live_series_that_move(stack: PrometheusAPI) -> None:
    deadline = time.monotonic() + 45
    stack.wait("both targets up", lambda: len(stack.query("up == 1")) == 2, deadline)

    sim = 'tradeloop_simulator_events_total{topic="trades"}'
    seen = 'tradeloop_health_topic_records_total{topic="trades"}'
    stack.wait("first samples", lambda: bool(stack.query(sim)) and bool(stack.query(seen)), deadline)
    first = {expr: max(stack.query(expr).values()) for expr in (sim, seen)}
    stack.wait(
        "both counters to move",
        lambda: all(max(stack.query(expr).values()) > first[expr] for expr in (sim, seen)),
        deadline,
    )
    stack.wait(
        "a positive rate", lambda: any(v > 0 for v in stack.query(f"rate({seen}[5s])").values()), deadline
    )

    checks = {json.loads(k)["check"] for k in stack.query("tradeloop_health_check_ok")}
    assert checks == set(CHECKS)
    info = stack.query("tradeloop_process_info")
    assert {json.loads(k)["component"] for k in info} == {"simulator", "health"}
    lag = stack.query('tradeloop_health_consumer_lag_records{topic="trades"}')
    assert lag and all(v >= 0 for v in lag.values())

    def rules_evaluated() -> bool:
        rules = [r for g in stack.get("/api/v1/rules")["groups"] for r in g["rules"]]
        return len(rules) >= 14 and all(r["health"] == "ok" for r in rules)

    stack.wait("every alert rule evaluated without error", rules_evaluated, deadline)


def test_every_dashboard_query_parses_in_prometheus(tmp_path: Path) -> None:
    """Grafana sends these to Prometheus; a typo would show as an empty, erroring panel."""
    exprs = [
        target["expr"].replace("$__rate_interval", "1m")
        for path in sorted((ROOT / "infra" / "grafana" / "dashboards").glob("*.json"))
        for panel in json.loads(path.read_text())["panels"]
        for target in panel.get("targets", [])
    ]
    assert len(exprs) > 50
    server, api = start_prometheus(tmp_path, {})
    try:
        api.wait("prometheus ready", lambda: api.query("vector(1)") is not None, time.monotonic() + 30)
        failures = {}
        for expr in [*exprs, "sum(rate(tradeloop_x[1m])"]:  # the last one proves errors are seen
            try:
                api.get("/api/v1/query", query=expr)
            except urllib.error.HTTPError as exc:
                failures[expr] = exc.read().decode(errors="replace")
    finally:
        stop_all([server], tmp_path)
    assert list(failures) == ["sum(rate(tradeloop_x[1m])"], failures

"""infra/ and the compose stack: promtool, docker-compose, and how the files fit each other."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.metrics import DEFAULT_PORTS
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "infra" / "prometheus"
GRAFANA = ROOT / "infra" / "grafana"
COMPOSE = ROOT / "docker-compose.yml"
COMPONENT_SERVICES = {"worker": "worker", "trainer": "trainer", "inference": "infer", "simulator": "simulate"}
HEALTH_PORT = 9305


def tool(name: str) -> str:
    """The path of a system tool; fails in CI (which installs it), skips elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: `apt-get install -y prometheus docker-compose` provides it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_promtool_checks_the_prometheus_config() -> None:
    result = run(tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_checks_the_alert_rules() -> None:
    result = run(tool("promtool"), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alert_rules_pass() -> None:
    result = run(tool("promtool"), "test", "rules", str(PROMETHEUS / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_test_case() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    cases = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    firing = {t["alertname"] for case in cases for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert alerts - firing == set()
    required = {"TradeloopPipelineStalled", "TradeloopConsumerLagGrowing", "TradeloopDeadLettersRising",
                "TradeloopModelStale", "TradeloopFallbackRateHigh", "TradeloopTrainingFailing"}  # fmt: skip
    assert required <= alerts


def test_docker_compose_config_is_valid() -> None:
    result = run(tool("docker-compose"), "-f", str(COMPOSE), "config", "-q")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as compose resolves it (anchors merged); plain YAML without the tool."""
    if shutil.which("docker-compose"):
        result = run("docker-compose", "-f", str(COMPOSE), "config")
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)  # type: ignore[no-any-return]
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def test_compose_runs_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "kafka",
        "schema-registry",
        "prometheus",
        "grafana",
        "topics-init",
        "health",
        *COMPONENT_SERVICES,
    }
    assert expected <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in str(services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"])
    assert services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")
    assert services["topics-init"]["command"] == ["topics", "create"]
    for service, command in COMPONENT_SERVICES.items():
        spec = services[service]
        assert spec["command"][0] == command
        assert spec["environment"]["TRADELOOP_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert spec["environment"]["TRADELOOP_SCHEMA_REGISTRY_URL"] == "http://schema-registry:8081"
        assert spec["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"
        assert "build" in spec
    assert services["simulator"]["command"][:3] == ["simulate", "--speed", "realtime"]


def test_compose_environment_names_real_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in a TRADELOOP_* variable would stop the service at start; catch it here instead."""
    for name, spec in compose["services"].items():
        env = {k: str(v) for k, v in (spec.get("environment") or {}).items() if k.startswith("TRADELOOP_")}
        if not env:
            continue
        for key in [k for k in os.environ if k.startswith("TRADELOOP_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.kafka_bootstrap == "kafka:9092", name


def test_prometheus_scrapes_every_component_on_its_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    scraped = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                scraped[name] = sd["port"]
    ports = {**{s: DEFAULT_PORTS[s] for s in COMPONENT_SERVICES}, "health": HEALTH_PORT}
    assert scraped == ports
    for service, port in ports.items():
        assert str(port) in [str(p) for p in compose["services"][service].get("expose", [])], service
    assert config["rule_files"] == ["alerts.yml"]


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def test_dashboards_are_provisioned_with_the_datasource_they_use(compose: dict[str, Any]) -> None:
    boards = dashboards()
    assert set(boards) == {"pipeline.json", "learning.json", "serving.json"}
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "tradeloop.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounts = [str(v) for v in compose["services"]["grafana"]["volumes"]]
    assert any(path in m and "infra/grafana/dashboards" in m for m in mounts), mounts
    assert any("/etc/grafana/provisioning" in m for m in mounts), mounts
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for name, board in boards.items():
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert len(panels) >= 8, name
        for panel in panels:
            assert panel["datasource"]["uid"] == uid, (name, panel["title"])
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), (name, panel["title"])


def test_compose_commands_are_tradeloop_commands(compose: dict[str, Any]) -> None:
    """Each service's command exists in the CLI (every module in tradeloop/commands registered)."""
    import importlib
    import itertools
    import pkgutil

    import typer
    from typer.testing import CliRunner

    import tradeloop.commands

    app = typer.Typer()
    for module in pkgutil.iter_modules(tradeloop.commands.__path__):
        importlib.import_module(f"tradeloop.commands.{module.name}").register(app)
    for name, spec in compose["services"].items():
        if "build" not in spec:
            continue
        # Options are parsed before the eager --help: a misspelt option fails here too.
        result = CliRunner().invoke(app, [*spec["command"], "--help"])
        assert result.exit_code == 0, f"{name}: tradeloop {' '.join(spec['command'])}: {result.output}"
        words = list(itertools.takewhile(lambda w: not w.startswith("-"), spec["command"]))
        assert f"tradeloop {' '.join(words)}" in result.output or words[-1] in result.output, name

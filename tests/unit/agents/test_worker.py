"""``tradeloop worker`` is registered and builds the Faust app from the settings (no broker needed)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from agents.app import create_app
from agents.worker import StreamWorker
from streams.config.agents import AgentSettings
from streams.settings import Settings
from tradeloop.commands import worker


def test_register_adds_the_worker_command() -> None:
    app = typer.Typer()
    worker.register(app)

    @app.callback()
    def _root() -> None: ...

    result = CliRunner().invoke(app, ["worker", "--help"])
    assert result.exit_code == 0 and "stream worker" in result.stdout


def test_app_settings_follow_the_settings_object(tmp_path) -> None:
    settings = Settings(
        kafka_bootstrap="h1:9092", data_dir=tmp_path, session_timeout_ms=7000, heartbeat_interval_ms=700,
        agents=AgentSettings(store="rocksdb", web_enabled=True, web_port=6100, app_id="custom"),
    )  # fmt: skip
    app = create_app(settings)
    assert app.conf.id == "custom" and str(app.conf.store) == "rocksdb:"
    assert app.conf.web_enabled and app.conf.web_port == 6100
    assert app.conf.broker_session_timeout == 7.0 and app.conf.broker_heartbeat_interval == 0.7
    assert str(app.conf.datadir).startswith(str(tmp_path))
    default = create_app(Settings(kafka_bootstrap="h1:9092"))
    assert str(default.conf.store) == "memory:" and not default.conf.web_enabled


def test_worker_wires_four_agents_and_three_tables() -> None:
    built = StreamWorker(Settings(kafka_bootstrap="h1:9092", topic_prefix="p."))
    assert sorted(a.name for a in built.app.agents.values()) == ["features", "forwarded", "join", "periods"]
    assert sorted(built.app.tables) == ["join", "market", "periods"]
    assert built.logical["p.signals"] == "signals" and built.logical["p.outcomes"] == "outcomes"

"""The trainer's CLI commands on a prepared data directory (no broker, no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from tests.kit.trainers.records import make_record
from tests.kit.trainers.registry import add_version
from tradeloop.cli import _global
from tradeloop.commands import data, models, train
from trainers.registry import ModelRegistry
from trainers.store.replay import ReplayStore
from trainers.store.trainlog import TrainLog


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(_global)
    for module in (train, models, data):
        module.register(app)
    return app


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    with ReplayStore.open(tmp_path) as store:
        store.write([make_record(i) for i in range(5)] + [make_record(9, status="CENSORED")])
    log = TrainLog.open(tmp_path)
    log.start_run("r1", "full", "test", 5)
    log.log_iteration("r1", 1, {"policy_loss": 0.1, "grad_norm": 0.5}, [])
    log.finish_run("r1", "finished", "v0001", True, False)
    return tmp_path


def _run(app: typer.Typer, data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), *args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def test_data_stats_and_export(app: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    stats = json.loads(_run(app, data_dir, "data", "stats", "--json"))
    assert stats["rows"] == 6 and stats["trainable"] == 5 and stats["censored"] == 1
    assert "censored" in _run(app, data_dir, "data", "stats")
    out = tmp_path / "x.parquet"
    assert "6 rows" in _run(app, data_dir, "data", "export", "--format", "parquet", "--out", str(out))
    assert pq.read_table(out).num_rows == 6


def test_models_list_show_export(app: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    from streams.settings import Settings

    registry = ModelRegistry(data_dir)
    version = add_version(registry, key=Settings().signing_key())
    assert version in _run(app, data_dir, "models", "list")
    shown = _run(app, data_dir, "models", "show", version)
    assert '"feature_spec_version"' in shown and "gate" in shown
    _run(app, data_dir, "models", "export", version, "--out", str(tmp_path / "exported"))
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == [
        "drift.npz", "manifest.json", "model.onnx", "module.npz", "report.json", "signature",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "models", "show", "serving"])
    assert result.exit_code == 1 and "nothing serves" in result.output


def test_train_log_and_csv_export(app: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    shown = _run(app, data_dir, "train", "log")
    assert "r1" in shown and "v0001" in shown
    out = tmp_path / "log.csv"
    assert "1 iterations" in _run(app, data_dir, "train", "log", "--export", "csv", "--out", str(out))
    assert out.read_text().startswith("run_id,iteration")
    assert "--once" in _run(app, data_dir, "train")


def test_models_list_json_and_whole_versions_in_80_columns(app: typer.Typer, data_dir: Path) -> None:
    from streams.settings import Settings

    registry = ModelRegistry(data_dir)
    first = add_version(registry, key=Settings().signing_key())
    registry.mark_serving(first, "test")
    second = add_version(registry, key=Settings().signing_key())
    document = json.loads(_run(app, data_dir, "models", "list", "--json"))
    assert document["model"] == "sizer"
    assert [v["version"] for v in document["versions"]] == [second, first]
    assert document["versions"][1]["status"] == "serving" and document["versions"][0]["parent"] == first
    assert document["versions"][0]["holdout_sharpe"] == 0.1
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "models", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for version in (first, second):  # never wrapped, never cut with an ellipsis
        assert any(version in line for line in lines), result.output


def test_train_log_json(app: typer.Typer, data_dir: Path) -> None:
    document = json.loads(_run(app, data_dir, "train", "log", "--json"))
    assert [r["run_id"] for r in document["runs"]] == ["r1"] and document["runs"][0]["version"] == "v0001"
    assert document["iterations_of"] == "r1"
    [iteration] = document["iterations"]
    assert iteration["policy_loss"] == 0.1 and iteration["checks"] == [] and iteration["kl"] is None


def test_data_stats_json_parses_with_no_rows(app: typer.Typer, tmp_path: Path) -> None:
    stats = json.loads(_run(app, tmp_path / "empty", "data", "stats", "--json"))
    assert stats["rows"] == 0 and stats["mean_return_unit"] is None

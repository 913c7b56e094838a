"""Allocator evaluation: baselines, the gate on period P&L, the weight history and the CLI view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from streams.settings import Settings
from tests.kit.trainers.periods import STRATEGIES, bandit_periods
from tradeloop.cli import _global
from tradeloop.commands import models
from trainers.allocator.env import AllocatorRunData
from trainers.allocator.evaluation import (
    CANDIDATE,
    EQUAL,
    INVERSE_VOL,
    equal_weights,
    evaluate_allocator,
    inverse_vol_weights,
)
from trainers.allocator.history import append_history, latest_per_portfolio, read_history
from trainers.allocator.pairs import build_pairs
from trainers.run.gate import GateResult


def test_inverse_vol_weights() -> None:
    w = inverse_vol_weights(np.array([[0.01, 0.02, 0.04], [0.0, 0.0, 0.0], [0.0, 0.01, 0.01]]))
    np.testing.assert_allclose(w[0], np.array([4, 2, 1]) / 7)
    np.testing.assert_allclose(w[1], 1 / 3)
    assert w[2, 0] > 0.9  # a silent strategy is floored at 1% of the largest sd, not infinite
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def _evaluation(settings: Settings) -> tuple[dict[str, np.ndarray], GateResult]:
    pairs = build_pairs(bandit_periods(300, seed=3), STRATEGIES)
    train, hold = pairs.take(slice(0, 200)), pairs.take(slice(200, None))
    run = AllocatorRunData.build(train.obs, train.next_returns, train.ts)
    up = hold.obs[:, 0] > 0  # the state that announces the winner (see bandit_periods)
    informed = np.where(up[:, None], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05])
    weights = {
        CANDIDATE: informed,
        EQUAL: equal_weights(len(hold), 3),
        INVERSE_VOL: inverse_vol_weights(hold.trailing_std),
    }
    return weights, evaluate_allocator(weights, hold, run, settings.trainer)


def test_gate_passes_an_informed_allocator_and_reports_its_weights() -> None:
    weights, gate = _evaluation(Settings())
    assert gate.passed and gate.reference == EQUAL
    report = gate.to_dict()
    assert report["policies"][CANDIDATE]["sharpe"] > report["policies"][EQUAL]["sharpe"] + 1.0
    assert report["policies"][CANDIDATE]["reward"] > report["policies"][EQUAL]["reward"]
    history = report["weight_history"]
    assert history["strategies"] == STRATEGIES and len(history["period_start"]) == len(weights[CANDIDATE])
    np.testing.assert_allclose(history["weights"][CANDIDATE], weights[CANDIDATE], atol=1e-6)
    assert report["mean_weights"][EQUAL] == pytest.approx(dict.fromkeys(STRATEGIES, 1 / 3))


def test_gate_rejects_equal_weights_against_themselves() -> None:
    pairs = build_pairs(bandit_periods(200), STRATEGIES)
    run = AllocatorRunData.build(pairs.obs, pairs.next_returns, pairs.ts)
    same = equal_weights(len(pairs), 3)
    gate = evaluate_allocator({CANDIDATE: same, EQUAL: same}, pairs, run, Settings().trainer)
    assert not gate.passed


def test_history_file_and_cli_view(tmp_path: Path) -> None:
    _, gate = _evaluation(Settings())
    report = {**gate.to_dict(), "strategies": STRATEGIES}
    root = tmp_path / "models" / "allocator"
    append_history(root, "v0001-a", report, published=False)
    append_history(root, "v0002-b", report, published=True)
    with (root / "weight_history.jsonl").open("a") as fh:
        fh.write('{"torn')  # a crash mid-write leaves a partial line; readers skip it
    entries = read_history(root)
    assert [e["version"] for e in entries] == ["v0001-a", "v0002-b"] and entries[1]["published"]
    assert set(entries[0]["last_weights"]) == set(STRATEGIES)

    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(_global)
    models.register(app)
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path), "models", "show", "allocator", "--no-topic"]
    result = runner.invoke(app, [*args, "--json"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    state = json.loads(result.output)
    assert state["serving"] is None and [e["version"] for e in state["history"]] == ["v0001-a", "v0002-b"]
    table = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "v0002-b" in table.output and "published" in table.output


def test_latest_per_portfolio() -> None:
    records = [{"portfolio": "a", "ts": 3}, {"portfolio": "b", "ts": 1}, {"portfolio": "a", "ts": 2}]
    assert {k: v["ts"] for k, v in latest_per_portfolio(records).items()} == {"a": 3, "b": 1}

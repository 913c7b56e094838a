"""The sizer env: gymnasium's checker, exact rewards, chronological episodes, risk terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from streams.config.trainer import TrainerSettings
from tests.kit.trainers.records import bandit_records
from trainers.run.norm import NormStats
from trainers.sizer.data import RunData, prepare
from trainers.sizer.env import ACTION_HIGH, ACTION_LOW, SizerEnv, risk_penalty
from trainers.store.replay import ReplayStore


@pytest.fixture()
def data_path(tmp_path: Path) -> Path:
    records, _ = bandit_records(600)
    with ReplayStore(tmp_path / "r.sqlite") as store:
        store.write(records)
        rows = store.trainable()
    cfg = TrainerSettings(min_train_rows=100)
    path = tmp_path / "data.npz"
    prepare(rows, NormStats.fit(rows.state), cfg).save(path)
    return path


def _env(path: Path, **config: object) -> SizerEnv:
    return SizerEnv({"data_path": str(path), "episode_len": 32, **config})


def test_env_passes_gymnasium_checker(data_path: Path) -> None:
    env = _env(data_path)
    check_env(env, skip_render_check=True)
    assert env.action_space.low[0] == ACTION_LOW and env.action_space.high[0] == ACTION_HIGH


def test_reward_is_weighted_uplift_over_fixed_size_without_risk(data_path: Path) -> None:
    data = RunData.load(data_path)
    env = _env(data_path, risk="none")
    env.reset(seed=3)
    rows = env._rows.copy()
    for t, action in enumerate([2.0, 0.25, 1.0, 5.0]):
        _obs, reward, terminated, truncated, info = env.step(np.array([action], dtype=np.float32))
        size = min(action, ACTION_HIGH)
        assert info["pnl"] == pytest.approx(size * data.ret[rows[t]])
        assert reward == pytest.approx(data.weights[rows[t]] * (size - 1.0) * data.ret[rows[t]])
        assert not terminated and not truncated


def test_episode_replays_rows_in_event_time_order_and_terminates(data_path: Path) -> None:
    data = RunData.load(data_path)
    env = _env(data_path)
    env.reset(seed=1)
    assert np.all(np.diff(data.ts[env._rows]) >= 0)
    done = [env.step(np.array([1.0], dtype=np.float32))[2] for _ in range(32)]
    assert done == [False] * 31 + [True]


def test_same_seed_gives_same_episode(data_path: Path) -> None:
    a, b = _env(data_path), _env(data_path)
    a.reset(seed=11)
    b.reset(seed=11)
    np.testing.assert_array_equal(a._rows, b._rows)


def test_cvar_penalty_only_hits_losses_beyond_the_threshold() -> None:
    pnl = np.array([1.0, -0.5, -2.0, -3.0])
    np.testing.assert_allclose(risk_penalty(pnl, "cvar", 0.05, 1.0), [0, 0, 20.0, 40.0])
    np.testing.assert_allclose(risk_penalty(pnl, "variance", 0.05, 1.0), 0.5 * pnl**2)
    np.testing.assert_allclose(risk_penalty(pnl, "none", 0.05, 1.0), 0.0)


def test_cvar_decomposition_bounds_the_episode_cvar() -> None:
    # mean over an episode of v + (loss - v)+ / alpha is the Rockafellar-Uryasev CVaR bound.
    rng = np.random.default_rng(0)
    pnl = rng.normal(size=20_000)
    alpha = 0.05
    losses = np.sort(-pnl)[::-1]
    cvar = losses[: int(alpha * len(losses))].mean()
    var = float(np.quantile(-pnl, 1 - alpha))
    for v in (var, var - 0.5, var + 0.5):
        bound = v + risk_penalty(pnl, "cvar", alpha, v).mean()
        assert bound >= cvar - 1e-9
    assert var + risk_penalty(pnl, "cvar", alpha, var).mean() == pytest.approx(cvar, rel=1e-2)

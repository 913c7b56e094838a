"""The allocator env: gymnasium's checker, exact rewards, the weights path, the observation contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agents.inference.weights import allocator_observation
from agents.periods import MARKET_FEATURES
from tests.kit.trainers.periods import STRATEGIES, bandit_periods, make_period, run_data
from trainers.allocator.env import (
    MARKET_NAMES,
    AllocatorEnv,
    AllocatorRunData,
    RewardWeights,
    feature_names,
    observation,
    period_reward,
    portfolio_risk,
    softmax_weights,
    spec_digest,
)

FINITE = st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False)


@pytest.fixture()
def env(tmp_path: Path) -> AllocatorEnv:
    return AllocatorEnv({"data_path": str(run_data(tmp_path, bandit_periods(200))), "episode_len": 16})


def test_env_passes_gymnasium_checker(env: AllocatorEnv) -> None:
    check_env(env, skip_render_check=True)
    assert env.action_space.shape == (3,) and env.observation_space.shape == (8 + 6 + 2 * 3 + 4,)


def test_episode_replays_sampled_periods_in_event_time_order(env: AllocatorEnv) -> None:
    env.reset(seed=3)
    times = env._data.ts[env._rows]
    assert len(times) == 16 and np.all(np.diff(times) >= 0)
    done, steps = False, 0
    while not done:
        _, _, done, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        assert not truncated
    assert steps == 16


def test_reward_is_exact_counterfactual_minus_equal_weights(env: AllocatorEnv) -> None:
    env.reset(seed=1)
    data = env._data
    row = env._rows[0]
    action = np.array([0.5, -0.25, 0.0], dtype=np.float32)
    _, reward, _, _, info = env.step(action)
    w = softmax_weights(4.0 * action.astype(np.float64))
    p = float(w @ data.ret[row])
    eq = np.full(3, 1 / 3)
    expected = (0.6 * p / np.sqrt(w @ data.cov @ w) + 0.3 * p - 0.1 * max(0.0, -p)) - (
        0.6 * data.ret[row].mean() / np.sqrt(eq @ data.cov @ eq)
        + 0.3 * data.ret[row].mean()
        - 0.1 * max(0.0, -data.ret[row].mean())
    )
    assert info["portfolio_return"] == pytest.approx(p, rel=1e-12)
    assert reward == pytest.approx(expected, rel=1e-9)
    env.reset(seed=1)
    _, reward_equal, _, _, _ = env.step(np.zeros(3, dtype=np.float32))
    assert reward_equal == pytest.approx(0.0, abs=1e-12)  # logits 0 are equal weights


def test_sharpe_term_of_static_weights_is_their_sharpe_ratio() -> None:
    rng = np.random.default_rng(0)
    returns = rng.normal([0.1, 0.3, -0.1], [1.0, 2.0, 0.5], size=(5000, 3))
    data = AllocatorRunData.build(np.zeros((5000, 24)), returns, np.arange(5000))
    w = np.array([0.2, 0.5, 0.3])
    p = data.ret @ w
    term = period_reward(p, portfolio_risk(w, data.cov), RewardWeights(1.0, 0.0, 0.0)).mean()
    assert term == pytest.approx(p.mean() / p.std(), rel=1e-9)


def test_reward_weights_are_configurable(tmp_path: Path) -> None:
    path = str(run_data(tmp_path, bandit_periods(100)))
    pnl_only = AllocatorEnv({"data_path": path, "reward_sharpe_weight": 0.0, "reward_pnl_weight": 1.0,
                             "reward_drawdown_weight": 0.0, "baseline": "none"})  # fmt: skip
    pnl_only.reset(seed=0)
    row = pnl_only._rows[0]
    action = np.array([1.0, -1.0, 0.0], dtype=np.float32)
    _, reward, _, _, _ = pnl_only.step(action)
    assert reward == pytest.approx(float(pnl_only.weights_of(action) @ pnl_only._data.ret[row]))


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 12)), elements=FINITE))
def test_softmax_weights_are_finite_non_negative_and_sum_to_one(logits: np.ndarray) -> None:
    w = softmax_weights(logits)
    assert np.all(np.isfinite(w)) and np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-6)


@pytest.fixture(scope="module")
def small_env(tmp_path_factory: pytest.TempPathFactory) -> AllocatorEnv:
    return AllocatorEnv({"data_path": str(run_data(tmp_path_factory.mktemp("env"), bandit_periods(40)))})


@settings(max_examples=200, deadline=None)
@given(action=arrays(np.float32, 3, elements=st.floats(allow_nan=False, allow_infinity=False, width=32)))
def test_env_weights_of_any_action_are_valid(small_env: AllocatorEnv, action: np.ndarray) -> None:
    w = small_env.weights_of(action)
    assert np.all(np.isfinite(w)) and np.all(w >= 0) and abs(w.sum() - 1.0) <= 1e-6
    assert w.max() / w.min() <= np.exp(2 * 4.0) * (1 + 1e-9)  # logits stay within +-logit_bound


def test_observation_matches_the_inference_workers_order() -> None:
    rng = np.random.default_rng(4)
    for i in range(20):
        names = list(rng.permutation(["z", "a", "m", "q"]))
        period = make_period(i, strategies=names, rng=rng)
        order = sorted(names)
        assert observation(period, order) == allocator_observation(period, order)
    assert observation(make_period(0), ["alpha", "missing"]) is None


def test_feature_names_and_digest() -> None:
    assert MARKET_NAMES == MARKET_FEATURES  # the agents' names, in their order
    names = feature_names(STRATEGIES)
    assert len(names) == 8 + 6 + 2 * 3 + 4 and names[14] == "sharpe.alpha" and names[17] == "drawdown.alpha"
    assert spec_digest(STRATEGIES) != spec_digest([*STRATEGIES, "delta"])

"""The allocator environment: replays logged allocation periods, one period per step.

At the end of period ``t`` the allocator sees that period's state and chooses weights for period
``t + 1``; the step's reward comes from period ``t + 1``'s logged per-strategy returns. P&L is
linear in the weights and the logged returns ignore market impact, so ``w . r`` is *exactly* what
those weights would have earned (no importance weights). The weights do not change the next state
(the periods' portfolio features are computed with equal weights), so each step is a contextual
bandit and PPO runs with gamma 0.

**Observation** (:func:`observation`, the order the inference workers build in
``agents.inference.weights.allocator_observation``)::

    8 market | 6 portfolio | Sharpe per strategy | drawdown per strategy | 4 regime

normalised with the training window's mean and std. **Action**: one value in [-1, 1] per strategy;
``logits = logit_bound * action`` and the weights are ``softmax(logits)``.

**Reward** of step t, with ``p = w . r`` the portfolio return (returns scaled by the std of the
equal-weight portfolio's training returns) and ``C`` the covariance of the strategies' scaled
returns on the training window::

    sharpe_t   = p / sqrt(w' C w)        return per unit of the weights' ex-ante risk
    pnl_t      = p
    drawdown_t = max(0, -p)              increase of the running drawdown
    reward_t   = ws sharpe_t + wp pnl_t - wd drawdown_t - (the same for equal weights)

For weights held fixed, the expectation of ``sharpe_t`` is exactly their Sharpe ratio
``w . mu / sqrt(w' C w)`` (with the window's moments), so the term rewards risk-adjusted return
per period while staying a function of the step alone (PPO with gamma 0 needs that). The running
drawdown ``D`` of the cumulative P&L moves as ``D_t = max(0, D_{t-1} - p_t)``, so the period's
increase is exactly ``max(0, -p_t)``; summed over an episode it bounds the max drawdown from
above. The equal-weight reward does not depend on the action: subtracting it is a control
variate (same optimum, less policy-gradient variance), and an episode's return is the uplift.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import gymnasium as gym
import numpy as np

__all__ = [
    "MARKET_NAMES",
    "N_MARKET",
    "N_PORTFOLIO",
    "N_REGIME",
    "PORTFOLIO_NAMES",
    "REGIME_NAMES",
    "SPEC_VERSION",
    "AllocatorEnv",
    "AllocatorRunData",
    "RewardWeights",
    "feature_names",
    "observation",
    "period_reward",
    "portfolio_risk",
    "softmax_weights",
    "spec_digest",
]

SPEC_VERSION: Final = "allocator-v1"
# The AllocationPeriod features (agents/periods.py computes them; names for the manifest only).
MARKET_NAMES: Final = (
    "ret_5m", "ret_30m", "rv_5m", "rv_30m", "rv_ratio_1m_30m", "ema_cross", "volume_z", "drawdown_30m",
)  # fmt: skip
PORTFOLIO_NAMES: Final = (
    "period_return", "cumulative_return", "drawdown", "return_std", "log1p_trades", "win_rate",
)  # fmt: skip
REGIME_NAMES: Final = ("trend_direction", "vol_spike_share", "up_share", "premium_share")
N_MARKET: Final = len(MARKET_NAMES)
N_PORTFOLIO: Final = len(PORTFOLIO_NAMES)
N_REGIME: Final = len(REGIME_NAMES)


def feature_names(strategies: Sequence[str]) -> list[str]:
    """Names of the observation vector for ``strategies`` (in that order)."""
    return [
        *(f"market.{n}" for n in MARKET_NAMES),
        *(f"portfolio.{n}" for n in PORTFOLIO_NAMES),
        *(f"sharpe.{s}" for s in strategies),
        *(f"drawdown.{s}" for s in strategies),
        *(f"regime.{n}" for n in REGIME_NAMES),
    ]


def spec_digest(strategies: Sequence[str]) -> str:
    """sha256 over the spec version and the feature names (they include the strategies)."""
    return hashlib.sha256("\n".join((SPEC_VERSION, *feature_names(strategies))).encode()).hexdigest()


def observation(period: Mapping[str, Any], strategies: Sequence[str]) -> list[float] | None:
    """The raw observation of one AllocationPeriod for ``strategies``; None if one is missing.

    Example:
        >>> p = {"strategies": ["b", "a"], "market": [0.0] * 8, "portfolio_state": [1.0] * 6,
        ...      "strategy_sharpe": [0.2, 0.1], "strategy_drawdown": [0.02, 0.01], "regime": [0.5] * 4}
        >>> observation(p, ["a", "b"])[14:18]
        [0.1, 0.2, 0.01, 0.02]
    """
    index = {s: i for i, s in enumerate(period["strategies"])}
    if any(s not in index for s in strategies):
        return None
    sharpe = [float(period["strategy_sharpe"][index[s]]) for s in strategies]
    drawdown = [float(period["strategy_drawdown"][index[s]]) for s in strategies]
    return [*map(float, period["market"]), *map(float, period["portfolio_state"]), *sharpe, *drawdown,
            *map(float, period["regime"])]  # fmt: skip


def softmax_weights(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; finite logits give finite, non-negative weights summing to 1.

    Example:
        >>> softmax_weights(np.array([0.0, 0.0])).tolist()
        [0.5, 0.5]
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True, slots=True)
class RewardWeights:
    """Weights of the reward's Sharpe, P&L and drawdown terms."""

    sharpe: float = 0.6
    pnl: float = 0.3
    drawdown: float = 0.1


def portfolio_risk(weights: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Ex-ante standard deviation ``sqrt(w' C w)`` of each row of ``weights`` (floored above 0)."""
    w = np.asarray(weights, dtype=np.float64)
    var = np.einsum("...i,ij,...j->...", w, cov, w)
    return np.sqrt(np.maximum(var, 1e-12))


def period_reward(p: np.ndarray | float, risk: np.ndarray | float, weights: RewardWeights) -> np.ndarray:
    """The reward of portfolio returns ``p`` with ex-ante risk ``risk`` (scaled units), before the
    control variate."""
    p = np.asarray(p, dtype=np.float64)
    return weights.sharpe * p / risk + weights.pnl * p - weights.drawdown * np.maximum(0.0, -p)


@dataclass(frozen=True, slots=True)
class AllocatorRunData:
    """What the env needs: normalised observations, next-period returns (scaled), their covariance."""

    obs: np.ndarray  # float32 [n, d], normalised
    ret: np.ndarray  # float64 [n, k], next-period strategy returns / ret_scale
    ts: np.ndarray
    ret_scale: float  # std of the equal-weight portfolio's training returns
    cov: np.ndarray  # [k, k] covariance of the scaled strategy returns (training window)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez(
                fh, obs=self.obs, ret=self.ret, ts=self.ts, ret_scale=np.float64(self.ret_scale), cov=self.cov,
            )  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> AllocatorRunData:
        with np.load(path) as d:
            return cls(
                obs=d["obs"], ret=d["ret"], ts=d["ts"], ret_scale=float(d["ret_scale"]), cov=d["cov"],
            )  # fmt: skip

    @classmethod
    def build(cls, obs: np.ndarray, next_returns: np.ndarray, ts: np.ndarray) -> AllocatorRunData:
        """Run data from normalised ``obs`` and raw next-period returns ``[n, k]``."""
        scale = float(max(np.std(next_returns.mean(axis=1)), 1e-12))
        scaled = next_returns / scale
        cov = np.cov(scaled, rowvar=False, bias=True).reshape(scaled.shape[1], scaled.shape[1])
        return cls(obs=obs.astype(np.float32), ret=scaled, ts=ts, ret_scale=scale, cov=cov)


@lru_cache(maxsize=2)
def _load(path: str) -> AllocatorRunData:
    # Vectorised envs of one runner share one read-only copy of the run's data.
    return AllocatorRunData.load(Path(path))


class AllocatorEnv(gym.Env[np.ndarray, np.ndarray]):
    """Gymnasium env over one run's data file (see :class:`AllocatorRunData`).

    Config keys: ``data_path`` (str), ``episode_len`` (int), ``logit_bound`` (float),
    ``reward_sharpe_weight``, ``reward_pnl_weight``, ``reward_drawdown_weight`` (floats),
    ``baseline`` ("equal" subtracts the equal-weight reward, "none" does not), ``obs_noise``
    (float: std of Gaussian noise added to the normalised observations the policy sees).

    The observation noise regularises: a few hundred periods are easy to memorise, and a policy
    that must act on noisy states keeps to what the state says reliably (for linear models,
    input noise is ridge regression). The reward always uses the logged returns, never noise.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = dict(config or {})
        self._data = _load(str(config["data_path"]))
        self._episode_len = int(config.get("episode_len", 32))
        self._bound = float(config.get("logit_bound", 4.0))
        self._weights = RewardWeights(
            sharpe=float(config.get("reward_sharpe_weight", 0.6)),
            pnl=float(config.get("reward_pnl_weight", 0.3)),
            drawdown=float(config.get("reward_drawdown_weight", 0.1)),
        )
        self._baseline = str(config.get("baseline", "equal")) == "equal"
        self._noise = float(config.get("obs_noise", 0.0))
        n_obs, n_strategies = self._data.obs.shape[1], self._data.ret.shape[1]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n_strategies,), np.float32)
        self._rows = np.zeros(0, dtype=np.int64)
        self._t = 0

    def weights_of(self, action: np.ndarray) -> np.ndarray:
        """Strategy weights of an action in [-1, 1] (clipped first)."""
        clipped = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        return softmax_weights(self._bound * clipped)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        data = self._data
        rows = self.np_random.choice(len(data.ts), size=self._episode_len, replace=True)
        self._rows = rows[np.argsort(data.ts[rows], kind="stable")]
        self._t = 0
        return self._observe(self._rows[0]), {}

    def _observe(self, row: int) -> np.ndarray:
        obs = self._data.obs[row]
        if self._noise > 0:
            obs = (obs + self._noise * self.np_random.standard_normal(obs.shape)).astype(np.float32)
        return obs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        data = self._data
        row = self._rows[self._t]
        weights = self.weights_of(action)
        returns = data.ret[row]
        p = float(weights @ returns)
        reward = float(period_reward(p, portfolio_risk(weights, data.cov), self._weights))
        if self._baseline:
            equal = np.full(len(returns), 1.0 / len(returns))
            reward -= float(period_reward(returns.mean(), portfolio_risk(equal, data.cov), self._weights))
        self._t += 1
        terminated = self._t >= self._episode_len
        obs = self._observe(self._rows[min(self._t, self._episode_len - 1)])
        return obs, reward, terminated, False, {"portfolio_return": p}

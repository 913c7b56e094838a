"""The sizer environment: replays logged experiences, one signal per step (a contextual bandit).

Each episode draws ``episode_len`` training rows (by profit-weighted priority, or uniformly) and
replays them in event-time order. The observation is the row's normalised feature vector, the
action a size multiplier in [0.25, 2.0], and the reward is *exact*: P&L is linear in size and the
logged outcome ignores market impact, so ``multiplier x return_unit`` is what that size would have
earned. No importance weights are needed for the counterfactual; the ones applied here only undo
the priority sampling.

Reward of step t (returns scaled by the training window's return std, ``w_t`` the importance
weight)::

    pnl_t    = a_t * r_t
    reward_t = w_t * (pnl_t - risk_weight * risk_t)

with ``risk_t`` by ``risk``:

* ``cvar`` (default): ``max(0, -pnl_t - v) / alpha``, the Rockafellar-Uryasev decomposition of the
  episode's CVaR at ``alpha`` (5%): summed over the episode and divided by its length it is the
  CVaR estimate ``v + mean((loss - v)+) / alpha`` minus the constant ``v``. The threshold ``v`` is
  fixed per run at the unit-size loss quantile of the training window, so each step's penalty is
  known at that step (with gamma 0 PPO needs it there); for any fixed ``v`` the sum bounds the
  episode CVaR from above, so the penalty is conservative.
* ``variance``: ``pnl_t ** 2 / 2`` (mean-variance; its optimum sizes by mean / second moment).
* ``none``: no risk term.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from trainers.sizer.data import RunData

__all__ = ["ACTION_HIGH", "ACTION_LOW", "SizerEnv", "risk_penalty", "to_normalised_action"]

ACTION_LOW = 0.25
ACTION_HIGH = 2.0


def to_normalised_action(multiplier: float, low: float = ACTION_LOW, high: float = ACTION_HIGH) -> float:
    """The point of RLlib's [-1, 1] action range that maps to ``multiplier``.

    RLlib's env runner maps an action ``a`` to env units with ``low + (a + 1) * (high - low) / 2``
    clipped to [low, high] (``normalize_actions=True``); this is its inverse.
    """
    return 2.0 * (multiplier - low) / (high - low) - 1.0


@lru_cache(maxsize=2)
def _load(path: str) -> RunData:
    # Vectorised envs in one runner share one read-only copy of the run's data; a long-running
    # trainer keeps only the newest runs' data in memory.
    return RunData.load(Path(path))


def risk_penalty(pnl: np.ndarray | float, kind: str, alpha: float, var_level: float) -> np.ndarray:
    """The per-step risk term for ``pnl`` (scaled units); see the module docstring."""
    pnl = np.asarray(pnl, dtype=np.float64)
    if kind == "cvar":
        return np.maximum(0.0, -pnl - var_level) / alpha
    if kind == "variance":
        return 0.5 * pnl**2
    return np.zeros_like(pnl)


class SizerEnv(gym.Env[np.ndarray, np.ndarray]):
    """Gymnasium env over one run's data file (see :class:`trainers.sizer.data.RunData`).

    Config keys: ``data_path`` (str), ``episode_len`` (int), ``risk`` ("cvar", "variance",
    "none"), ``risk_weight`` (float), ``risk_alpha`` (float).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = dict(config or {})
        self._data = _load(str(config["data_path"]))
        self._episode_len = int(config.get("episode_len", 256))
        self._risk = str(config.get("risk", "cvar"))
        self._risk_weight = float(config.get("risk_weight", 0.1))
        self._risk_alpha = float(config.get("risk_alpha", 0.05))
        self._baseline = float(config.get("reward_baseline", 1.0))
        n_features = self._data.obs.shape[1]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n_features,), np.float32)
        self.action_space = gym.spaces.Box(ACTION_LOW, ACTION_HIGH, (1,), np.float32)
        self._rows = np.zeros(0, dtype=np.int64)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        data = self._data
        rows = self.np_random.choice(len(data.ret), size=self._episode_len, replace=True, p=data.probs)
        # Chronological replay inside the episode, so the CVaR term sees losses in event order.
        self._rows = rows[np.argsort(data.ts[rows], kind="stable")]
        self._t = 0
        return data.obs[self._rows[0]], {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        data = self._data
        row = self._rows[self._t]
        size = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], ACTION_LOW, ACTION_HIGH))
        pnl = size * data.ret[row]
        risk = float(risk_penalty(pnl, self._risk, self._risk_alpha, data.var_level))
        # The fixed-size P&L does not depend on the action (no market impact), so subtracting it
        # is a control variate: same optimal policy, far less variance in the policy gradient.
        uplift = pnl - self._baseline * data.ret[row]
        reward = float(data.weights[row] * (uplift - self._risk_weight * risk))
        self._t += 1
        terminated = self._t >= self._episode_len
        obs = data.obs[self._rows[min(self._t, self._episode_len - 1)]]
        return obs, reward, terminated, False, {"pnl": pnl}

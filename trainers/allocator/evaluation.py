"""Hold-out evaluation of allocators: baselines, the serving allocator, the gate, weight history.

Every policy is scored on the same chronological hold-out pairs by the P&L its weights would have
made in the next period, ``w_t . r_{t+1}`` (exact: P&L is linear in the weights, no market impact).
Metrics are per period (``mean_return``, ``sharpe`` = mean / std of the period returns, not
annualised, ``cvar``, ``max_drawdown``, ``win_rate``, ``profit_factor``; see
:mod:`trainers.run.gate`) plus ``reward``, the mean training reward of the period returns.

Baselines:

* ``equal``: ``1 / k`` each;
* ``inverse_vol``: weights proportional to ``1 / sd``, with ``sd`` each strategy's standard
  deviation of its period returns over the trailing ``inverse_vol_window`` periods up to the
  decision (floored at 1% of the largest, so a strategy that has not traded cannot take
  everything); equal weights until two periods of history exist.

The gate is :func:`trainers.run.gate.evaluate_pnl` against the serving allocator when one serves
for the same strategies, else against equal weights.

Example:
    >>> inverse_vol_weights(np.array([[1.0, 2.0], [0.0, 0.0]])).round(3).tolist()
    [[0.667, 0.333], [0.5, 0.5]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from streams.config.trainer import TrainerSettings
from trainers.allocator.env import AllocatorRunData, RewardWeights, period_reward, portfolio_risk
from trainers.allocator.pairs import PeriodPairs
from trainers.run.gate import CANDIDATE, GateResult, evaluate_pnl

__all__ = [
    "CANDIDATE",
    "EQUAL",
    "INVERSE_VOL",
    "SERVING",
    "equal_weights",
    "evaluate_allocator",
    "inverse_vol_weights",
    "mean_weights",
    "weight_history",
]

EQUAL: Final = "equal"
INVERSE_VOL: Final = "inverse_vol"
SERVING: Final = "serving"
_VOL_FLOOR: Final = 0.01
_HISTORY_ROWS: Final = 2000


def equal_weights(n: int, k: int) -> np.ndarray:
    """Weights ``[n, k]`` of ``1 / k`` each: the equal-weights baseline."""
    return np.full((n, k), 1.0 / k)


def inverse_vol_weights(trailing_std: np.ndarray) -> np.ndarray:
    """Weights ``[n, k]`` proportional to ``1 / sd`` per row (equal where no row has volatility)."""
    top = trailing_std.max(axis=1, keepdims=True)
    sd = np.maximum(trailing_std, _VOL_FLOOR * top)
    inv = np.divide(1.0, sd, out=np.ones_like(sd), where=sd > 0)
    return inv / inv.sum(axis=1, keepdims=True)


def mean_weights(weights: np.ndarray, strategies: list[str]) -> dict[str, float]:
    """Each strategy's mean weight over the rows of ``weights`` ``[n, k]``."""
    return {s: float(w) for s, w in zip(strategies, weights.mean(axis=0), strict=True)}


def weight_history(
    hold: PeriodPairs, weights: Mapping[str, np.ndarray], max_rows: int = _HISTORY_ROWS
) -> dict[str, Any]:
    """The weights of each policy per hold-out period (the newest ``max_rows``), for reports."""
    start = max(0, len(hold) - max_rows)
    return {
        "strategies": hold.strategies,
        "period_start": hold.period_start[start:].tolist(),
        "portfolio": hold.portfolio[start:],
        "weights": {name: np.round(w[start:], 6).tolist() for name, w in weights.items()},
    }


def evaluate_allocator(
    weights: Mapping[str, np.ndarray],
    hold: PeriodPairs,
    run: AllocatorRunData,
    cfg: TrainerSettings,
) -> GateResult:
    """Score every policy's hold-out ``weights`` ([n, k] each) and decide on the candidate.

    ``run`` gives the training window's return scale and covariance for the ``reward`` metric. The
    reference is ``serving`` when present, else ``equal``.
    """
    returns = hold.next_returns
    pnl = {name: (w * returns).sum(axis=1) for name, w in weights.items()}
    a = cfg.allocator
    reference = SERVING if SERVING in weights else EQUAL
    gate = evaluate_pnl(
        pnl, candidate=CANDIDATE, reference=reference, metric=cfg.gate_metric, margin=cfg.gate_margin,
        confidence=cfg.gate_confidence, samples=cfg.bootstrap_samples, block=a.bootstrap_block,
        seed=cfg.seed, alpha=cfg.risk_alpha,
    )  # fmt: skip
    reward = RewardWeights(a.reward_sharpe_weight, a.reward_pnl_weight, a.reward_drawdown_weight)
    for name, series in pnl.items():
        risk = portfolio_risk(weights[name], run.cov)
        gate.policies[name]["reward"] = float(period_reward(series / run.ret_scale, risk, reward).mean())
        gate.policies[name]["max_weight"] = float(weights[name].max(axis=1).mean())
    gate.details["mean_weights"] = {name: mean_weights(w, hold.strategies) for name, w in weights.items()}
    gate.details["weight_history"] = weight_history(hold, weights)
    gate.details["holdout_window"] = {
        "first_period_start": int(hold.period_start[0]),
        "last_period_start": int(hold.period_start[-1]),
        "periods": len(hold),
        "portfolios": sorted(set(hold.portfolio)),
    }
    return gate

"""Strategy weights per portfolio: the allocator's softmax, or equal weights, moved at a capped pace.

Which strategies and portfolios exist is learned from the ``allocation-periods`` topic (each
AllocationPeriod names its portfolio and strategies in a stable order), and, with an allocator
serving, from its manifest's ``strategies``. The allocator's observation is the latest period's
``market + portfolio_state + strategy_sharpe + strategy_drawdown + regime`` (Sharpe and drawdown in
the manifest's strategy order), matching DESIGN.md section 5.

Without an allocator (or when it cannot answer) the weights are equal over the period's
strategies, flagged ``fallback`` with the reason. Whatever the target, no weight moves more than
``max_weight_step`` from the last published weights in one interval: the step towards the target
is scaled down as a whole, so the weights stay non-negative and sum to 1.

Example:
    >>> cap_step({"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}, 0.2)
    {'a': 0.8, 'b': 0.2}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from streams.clock import new_event_id, now_us
from streams.serving.constants import KILL_SWITCH, MISSING_FEATURES, MODEL_ERROR, NO_MODEL, STRATEGY_MISMATCH
from streams.serving.runtime import LoadedModel

__all__ = [
    "WeightsPlanner",
    "allocator_observation",
    "cap_step",
    "equal_weights",
    "softmax",
    "target_weights",
]


def equal_weights(strategies: Sequence[str]) -> dict[str, float]:
    return {s: 1.0 / len(strategies) for s in strategies}


def softmax(logits: Sequence[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


def cap_step(
    previous: Mapping[str, float] | None, target: Mapping[str, float], max_step: float
) -> dict[str, float]:
    """Move from ``previous`` towards ``target`` with no weight changing by more than ``max_step``.

    Strategies new to ``target`` start from 0; ones no longer in it are dropped and the rest
    renormalised. Without a previous publication the start is equal weights.
    """
    names = list(target)
    if previous is None:
        start = [1.0 / len(names)] * len(names)
    else:
        start = [max(previous.get(n, 0.0), 0.0) for n in names]
        total = sum(start)
        start = [v / total for v in start] if total > 0 else [1.0 / len(names)] * len(names)
    delta = [target[n] - s for n, s in zip(names, start, strict=True)]
    biggest = max(abs(d) for d in delta)
    scale = min(1.0, max_step / biggest) if biggest > 0 else 1.0
    moved = [max(s + d * scale, 0.0) for s, d in zip(start, delta, strict=True)]
    total = sum(moved)
    return {n: round(v / total, 12) for n, v in zip(names, moved, strict=True)}


def allocator_observation(period: Mapping[str, Any], strategies: Sequence[str]) -> list[float] | None:
    """The allocator's raw observation from one AllocationPeriod, or None if a strategy is missing."""
    index = {s: i for i, s in enumerate(period["strategies"])}
    if any(s not in index for s in strategies):
        return None
    sharpe = [period["strategy_sharpe"][index[s]] for s in strategies]
    drawdown = [period["strategy_drawdown"][index[s]] for s in strategies]
    return [*period["market"], *period["portfolio_state"], *sharpe, *drawdown, *period["regime"]]


def target_weights(
    period: Mapping[str, Any], allocator: LoadedModel | None, kill_switch: bool = False
) -> tuple[dict[str, float], str | None, str | None]:
    """The weights ``allocator`` targets after ``period``, the version that chose them, the fallback reason.

    Equal weights over the period's strategies, with the reason, whenever the allocator cannot answer.
    """
    fallback = equal_weights(period["strategies"])
    if kill_switch:
        return fallback, None, KILL_SWITCH
    if allocator is None:
        return fallback, None, NO_MODEL
    strategies = allocator.manifest.strategies
    if set(strategies) != set(period["strategies"]):
        return fallback, None, STRATEGY_MISMATCH
    obs = allocator_observation(period, strategies)
    if obs is None or len(obs) != allocator.n_inputs or not all(math.isfinite(v) for v in obs):
        return fallback, None, MISSING_FEATURES
    try:
        logits = allocator.run(np.asarray([obs], dtype=np.float32))[0].tolist()
    # A verified model can still fail at run time; the equal weights are the safe answer.
    except Exception:
        return fallback, None, MODEL_ERROR
    if not all(math.isfinite(v) for v in logits):
        return fallback, None, MODEL_ERROR
    return dict(zip(strategies, softmax(logits), strict=True)), allocator.version, None


class WeightsPlanner:
    """Keeps the latest period and the last published weights per portfolio; plans the next records."""

    def __init__(self, worker_id: str, max_step: float) -> None:
        self.worker_id = worker_id
        self.max_step = max_step
        self.periods: dict[str, Mapping[str, Any]] = {}
        self.published: dict[str, dict[str, float]] = {}
        self._published_ts: dict[str, int] = {}

    def observe_period(self, record: Mapping[str, Any]) -> None:
        current = self.periods.get(record["portfolio"])
        if record["strategies"] and (current is None or current["ts"] <= record["ts"]):
            self.periods[record["portfolio"]] = record

    def observe_published(self, record: Mapping[str, Any]) -> None:
        """Remember weights published by any worker, so a new publisher continues from them."""
        portfolio = record["portfolio"]
        if record["ts"] >= self._published_ts.get(portfolio, -1):
            self.published[portfolio] = dict(zip(record["strategies"], record["weights"], strict=True))
            self._published_ts[portfolio] = record["ts"]

    def _target(
        self, period: Mapping[str, Any], allocator: LoadedModel | None, kill_switch: bool
    ) -> tuple[dict[str, float], str | None, str | None]:
        return target_weights(period, allocator, kill_switch)

    def plan(self, allocator: LoadedModel | None, kill_switch: bool) -> list[dict[str, Any]]:
        """One StrategyWeights record per known portfolio; remembers them as published."""
        records = []
        ts = now_us()
        for portfolio, period in sorted(self.periods.items()):
            target, version, reason = self._target(period, allocator, kill_switch)
            weights = cap_step(self.published.get(portfolio), target, self.max_step)
            record = {
                "event_id": new_event_id(), "ts": ts, "portfolio": portfolio, "strategies": list(weights),
                "weights": list(weights.values()), "model_version": version, "fallback": reason is not None,
                "fallback_reason": reason, "worker_id": self.worker_id,
            }  # fmt: skip
            self.observe_published(record)
            records.append(record)
        return records

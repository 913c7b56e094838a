"""The allocator's training pairs, built from the allocation periods of the allocation store.

A pair (:func:`build_pairs`) is the observation of period ``t`` and the per-strategy returns of
period ``t + 1`` of the same portfolio (consecutive periods only), for one strategy list. A
period that lacks one of the strategies cannot form a pair and is counted, not used.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainers.allocator.env import N_MARKET, N_PORTFOLIO, N_REGIME, observation

__all__ = ["PeriodPairs", "build_pairs", "choose_strategies"]


def choose_strategies(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The strategy list an allocator trains for: the newest period's (agents keep it sorted)."""
    return list(records[-1]["strategies"]) if records else []


@dataclass(frozen=True, slots=True)
class PeriodPairs:
    """Training pairs in event-time order: state at the end of period t, returns of period t + 1."""

    strategies: list[str]
    obs: np.ndarray  # [n, d] raw observations
    next_returns: np.ndarray  # [n, k]
    trailing_std: np.ndarray  # [n, k] std of each strategy's last W returns up to period t
    ts: np.ndarray  # end of period t
    period_start: np.ndarray  # start of period t + 1 (the period the weights apply to)
    portfolio: list[str]
    skipped: int  # periods that could not form a pair (missing strategy, gap, last period)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: slice) -> PeriodPairs:
        return PeriodPairs(
            self.strategies, self.obs[index], self.next_returns[index], self.trailing_std[index],
            self.ts[index], self.period_start[index], self.portfolio[index], self.skipped,
        )  # fmt: skip

    def data_hash(self) -> str:
        """sha256 over (portfolio, period start) of every pair: identifies a run's exact data."""
        digest = hashlib.sha256("\n".join(self.strategies).encode())
        for name, start in zip(self.portfolio, self.period_start.tolist(), strict=True):
            digest.update(f"{name}\t{start}\n".encode())
        return digest.hexdigest()


def _returns(record: Mapping[str, Any], strategies: Sequence[str]) -> list[float] | None:
    index = {s: i for i, s in enumerate(record["strategies"])}
    if any(s not in index for s in strategies):
        return None
    return [float(record["strategy_returns"][index[s]]) for s in strategies]


def build_pairs(
    records: Sequence[Mapping[str, Any]], strategies: Sequence[str], vol_window: int = 24
) -> PeriodPairs:
    """Consecutive-period pairs of every portfolio for ``strategies``, in event-time order."""
    by_portfolio: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        by_portfolio[record["portfolio"]].append(record)
    rows: list[tuple[int, str, list[float], list[float], list[float], int]] = []
    skipped = 0
    for name, periods in by_portfolio.items():
        periods = sorted(periods, key=lambda r: r["period_start"])
        history: list[list[float]] = []
        for now, nxt in zip(periods, [*periods[1:], None], strict=True):
            own = _returns(now, strategies)
            history = [*history, own][-vol_window:] if own is not None else []
            obs = observation(now, strategies)
            step = round(now["period_seconds"] * 1e6)
            later = None if nxt is None else _returns(nxt, strategies)
            if (
                obs is None
                or later is None
                or nxt is None
                or nxt["period_start"] != now["period_start"] + step
            ):
                skipped += 1
                continue
            trailing = np.std(np.array(history), axis=0) if len(history) >= 2 else np.zeros(len(strategies))
            rows.append((int(now["ts"]), name, obs, later, trailing.tolist(), int(nxt["period_start"])))
    rows.sort(key=lambda r: (r[0], r[1]))
    k, d = len(strategies), 2 * len(strategies) + N_MARKET + N_PORTFOLIO + N_REGIME
    return PeriodPairs(
        strategies=list(strategies),
        obs=np.array([r[2] for r in rows], dtype=np.float64).reshape(len(rows), d),
        next_returns=np.array([r[3] for r in rows], dtype=np.float64).reshape(len(rows), k),
        trailing_std=np.array([r[4] for r in rows], dtype=np.float64).reshape(len(rows), k),
        ts=np.array([r[0] for r in rows], dtype=np.int64),
        period_start=np.array([r[5] for r in rows], dtype=np.int64),
        portfolio=[r[1] for r in rows],
        skipped=skipped,
    )

"""The allocator's canary: a new allocator is judged on the realised returns of live periods.

An allocator answers once per period and portfolio, so there is no stream of requests to share
with a candidate the way the sizer's canary does. There is no need to either: P&L is linear in the
weights (DESIGN.md section 5; no market impact, the strategies' trades do not depend on their
capital), so what *any* weights would have earned over a period is exactly ``w . r``, with ``r``
the period's logged per-strategy returns. While the serving allocator (the incumbent) keeps
publishing, the worker asks both allocators for their target weights at every period that
arrives, the decision for the portfolio's next period; when that next period arrives (its
``period_start`` is the decided period's end) the candidate's realised uplift over it is

    uplift = (w_candidate - w_incumbent) . r_next

Only the two targets are compared (the published weights approach the target at the capped pace).
Periods on which neither allocator answered (e.g. another strategy set: both fall back to equal
weights) carry no evidence and are skipped; a candidate that falls back where the incumbent
answers is judged with its equal weights and counted as a fallback.

Verdict, with N = ``allocator_canary_periods``:

* roll back (``fallback_rate``) as soon as the candidate's fallbacks exceed
  ``canary_max_fallback_rate x N``;
* after N judged periods: roll back (``uplift``) when the mean uplift per period is below
  ``allocator_canary_min_uplift`` with confidence ``canary_uplift_z`` (mean + z x standard error <
  bound), else promote (``uplift_ok``);
* after ``allocator_canary_timeout_seconds`` without N judged periods: the same test on the
  periods judged so far, then promote (``timeout``): periods that stopped arriving cannot judge,
  and the trainer's hold-out gate already passed the candidate.

Example:
    >>> canary = AllocatorCanary(candidate, incumbent, settings.inference)   # doctest: +SKIP
    >>> canary.observe(period)       # every AllocationPeriod the worker reads  # doctest: +SKIP
    >>> canary.verdict()             # None while the evidence is coming in      # doctest: +SKIP
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.inference.weights import target_weights
from streams.config.inference import InferenceSettings
from streams.serving.canary import Evidence, Judge, JudgedOnEvidence
from streams.serving.model_store import CanaryFactory
from streams.serving.runtime import LoadedModel

__all__ = ["AllocatorCanary", "allocator_canary", "realised_uplift"]


@dataclass(frozen=True, slots=True)
class _Decision:
    """Both allocators' targets after one period (``end``: its end, the next period's start)."""

    end: int
    candidate: dict[str, float]
    incumbent: dict[str, float]


def realised_uplift(
    candidate: Mapping[str, float], incumbent: Mapping[str, float], period: Mapping[str, Any]
) -> float | None:
    """``(w_candidate - w_incumbent) . r`` over ``period``'s returns; None if a return is missing.

    Example:
        >>> period = {"strategies": ["a", "b"], "strategy_returns": [0.02, -0.01]}
        >>> round(realised_uplift({"a": 0.75, "b": 0.25}, {"a": 0.5, "b": 0.5}, period), 6)
        0.0075
    """
    returns = dict(zip(period["strategies"], period["strategy_returns"], strict=False))
    total = 0.0
    for strategy in candidate.keys() | incumbent.keys():
        value = returns.get(strategy)
        if value is None or not math.isfinite(value):
            return None
        total += (candidate.get(strategy, 0.0) - incumbent.get(strategy, 0.0)) * value
    return total


class AllocatorCanary(JudgedOnEvidence):
    """Live evidence about a candidate allocator against the serving one. Thread-safe."""

    def __init__(
        self,
        candidate: LoadedModel,
        incumbent: LoadedModel,
        settings: InferenceSettings,
        started: float | None = None,
    ) -> None:
        self.candidate = candidate
        self.incumbent = incumbent
        # Decisions: periods both allocators decided on (fallbacks: the candidate could not answer
        # and the incumbent could); outcomes: decisions whose next period arrived. Periods that
        # stop arriving cannot judge, so the timeout needs no decisions (the gate already passed it).
        self.evidence = Evidence(
            settings.allocator_canary_periods, settings.canary_max_fallback_rate,
            settings.allocator_canary_min_uplift, settings.canary_uplift_z,
            settings.allocator_canary_timeout_seconds, started, decisions_before_timeout=0, unit="periods",
        )  # fmt: skip
        self._pending: dict[str, _Decision] = {}
        self._lock = threading.Lock()

    def observe(self, period: Mapping[str, Any]) -> float | None:
        """Judge the decision ``period`` realises, then decide on it; returns the uplift it realised."""
        portfolio = period["portfolio"]
        with self._lock:
            pending = self._pending.get(portfolio)
            if pending is not None and period["ts"] <= pending.end:
                return None  # re-delivered, or older than what was decided on
            uplift = None
            if pending is not None and period["period_start"] == pending.end:
                uplift = realised_uplift(pending.candidate, pending.incumbent, period)
                if uplift is not None:
                    self.evidence.realised(uplift)
            self._decide(portfolio, period)
            return uplift

    def _decide(self, portfolio: str, period: Mapping[str, Any]) -> None:
        self._pending.pop(portfolio, None)
        if not period["strategies"]:
            return
        candidate, _, candidate_fallback = target_weights(period, self.candidate)
        incumbent, _, incumbent_fallback = target_weights(period, self.incumbent)
        if candidate_fallback is not None and incumbent_fallback is not None:
            return  # both would publish equal weights: nothing to learn from this portfolio
        self.evidence.decided(1, 1 if candidate_fallback is not None else 0)
        self._pending[portfolio] = _Decision(period["ts"], candidate, incumbent)


def allocator_canary(settings: InferenceSettings) -> CanaryFactory:
    """How a new allocator starts in a worker's model store: judged on ``allocator_canary_periods``
    periods (0: it serves at once)."""

    def start(candidate: LoadedModel, incumbent: LoadedModel) -> Judge | None:
        if settings.allocator_canary_periods <= 0:
            return None
        return AllocatorCanary(candidate, incumbent, settings)

    return start

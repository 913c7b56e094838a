"""Sizing decisions for a batch of requests: pure scoring, no Kafka.

One call scores a whole batch: observations for every request, the serving model (and a canary
candidate on its share) in one ``session.run`` each, outputs clipped to the configured bounds. Any
request no trusted model can answer gets the score rule with its reason; nothing raises for a
request that has a safe size.

Example:
    >>> from streams.serving.metrics import WorkerMetrics
    >>> s = Settings()
    >>> sizer = Sizer(s, ModelStore(s, WorkerMetrics("doc-sizer")), ControlState("w"), FeatureCache())
    >>> batch = sizer.decide([{"signal_id": "s1", "strategy": "momentum_1", "symbol": "X", "side": "BUY",
    ...                        "score": 0.9, "features": {}}])
    >>> batch.multipliers, batch.reasons
    ([1.5], ['no_model'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streams.clock import new_event_id, now_us
from streams.serving.canary import Canary, routed_to_canary
from streams.serving.constants import (
    KILL_SWITCH,
    MISSING_FEATURES,
    MODEL_ERROR,
    NO_MODEL,
    REJECTED_MODEL,
    RULE_MODEL_NAME,
    SIZER,
)
from streams.serving.control import ControlState
from streams.serving.fallback import rule_multiplier
from streams.serving.model_store import ModelStore
from streams.serving.observation import FeatureCache, ObservationBuilder, Observations
from streams.serving.runtime import LoadedModel
from streams.settings import Settings

__all__ = ["BatchDecision", "Sizer", "bounds_for", "score_model"]


def bounds_for(model: LoadedModel, low: float, high: float) -> tuple[float, float]:
    """The configured bounds, narrowed by the manifest's own action range when it declares one."""
    m_low = model.manifest.action_low
    m_high = model.manifest.action_high
    lo = max(low, m_low) if m_low is not None and math.isfinite(m_low) else low
    hi = min(high, m_high) if m_high is not None and math.isfinite(m_high) else high
    return (lo, hi) if lo <= hi else (low, high)


def score_model(model: LoadedModel, obs: NDArray[np.float32], low: float, high: float) -> list[float | None]:
    """Clipped multipliers of ``model`` for raw observations; None where the model cannot answer.

    A failed run or a non-finite output is unusable (the caller falls back with ``model_error``);
    the model is never trusted to stay within bounds, so every output is clipped.
    """
    try:
        raw = model.run(obs)[:, 0].tolist()
    # A verified model can still fail at run time (e.g. an op that rejects some inputs).
    except Exception:
        return [None] * len(obs)
    lo, hi = bounds_for(model, low, high)
    finite = math.isfinite
    return [min(max(v, lo), hi) if finite(v) else None for v in raw]


@dataclass(slots=True)
class BatchDecision:
    """The answers to one batch, in request order, and what the shadow needs afterwards."""

    multipliers: list[float]
    versions: list[str | None]
    reasons: list[str | None]
    observations: Observations | None = None
    scored: list[int] = field(default_factory=list)  # rows a model answered (compared with the shadow)
    missing_snapshots: int = 0  # requests scored without a feature snapshot of their symbol

    def model_name(self, i: int) -> str:
        return SIZER if self.versions[i] is not None else RULE_MODEL_NAME


class Sizer:
    """Scores batches of SizingRequest records with whatever the store serves right now."""

    def __init__(
        self, settings: Settings, store: ModelStore, control: ControlState, features: FeatureCache
    ) -> None:
        self.low = settings.inference.min_multiplier
        self.high = settings.inference.max_multiplier
        self.store = store
        self.control = control
        self.features = features
        self.builder = ObservationBuilder(require_stream=settings.inference.require_stream_features)

    def _rule(self, requests: Sequence[Mapping[str, Any]], reason: str) -> BatchDecision:
        n = len(requests)
        multipliers = [rule_multiplier(r["score"], self.low, self.high) for r in requests]
        return BatchDecision(multipliers, [None] * n, [reason] * n)

    def decide(self, requests: Sequence[Mapping[str, Any]]) -> BatchDecision:
        """Answer every request of the batch."""
        if self.control.kill_switch:
            return self._rule(requests, KILL_SWITCH)
        slot = self.store.slot(SIZER)
        serving, canary = slot.serving, slot.canary  # one read each: a swap mid-batch cannot split it
        if not isinstance(canary, Canary):  # the sizer's slot only ever holds a request canary
            canary = None
        if serving is None:
            return self._rule(requests, REJECTED_MODEL if slot.last_rejection else NO_MODEL)
        if len(requests) == 1 and canary is None:
            return self._decide_one(requests[0], serving, slot.shadow is not None)
        observations = self.builder.build(requests, self.features)
        low, high = self.low, self.high
        n = len(requests)
        required = observations.required_ok
        complete = all(required)
        rows = list(range(n)) if complete else [i for i, ok in enumerate(required) if ok]
        x = observations.obs if complete else observations.obs[rows]
        answers = score_model(serving, x, low, high) if rows else []
        missing = observations.has_snapshot.count(False)
        if complete and canary is None and None not in answers:
            # The common case: the serving model answered every request.
            return BatchDecision(answers, [serving.version] * n, [None] * n, observations, rows, missing)  # type: ignore[arg-type]
        scores = observations.scores
        multipliers = [0.0 if ok else rule_multiplier(scores[i], low, high) for i, ok in enumerate(required)]
        versions: list[str | None] = [None] * n
        reasons: list[str | None] = [None if ok else MISSING_FEATURES for ok in required]
        if not rows:
            return BatchDecision(multipliers, versions, reasons, missing_snapshots=missing)
        answered_by = [serving.version] * len(rows)
        if canary is not None:
            routed = [
                j for j, i in enumerate(rows) if routed_to_canary(requests[i]["signal_id"], canary.share)
            ]
            if routed:
                incumbent = answers
                answers = list(incumbent)
                candidate = score_model(canary.candidate, x[routed], low, high)
                judged: tuple[list[str], list[float], list[float]] = ([], [], [])
                for j, value in zip(routed, candidate, strict=True):
                    answers[j] = value
                    answered_by[j] = canary.candidate.version
                    baseline = incumbent[j]
                    if value is not None and baseline is not None:
                        judged[0].append(requests[rows[j]]["signal_id"])
                        judged[1].append(value)
                        judged[2].append(baseline)
                canary.record(*judged, fallbacks=sum(v is None for v in candidate))
        scored = []
        for j, i in enumerate(rows):
            value = answers[j]
            if value is None:
                reasons[i] = MODEL_ERROR
                multipliers[i] = rule_multiplier(scores[i], low, high)
            else:
                multipliers[i] = value
                versions[i] = answered_by[j]
                scored.append(i)
        return BatchDecision(multipliers, versions, reasons, observations, scored, missing)

    def _decide_one(self, request: Mapping[str, Any], serving: LoadedModel, shadow: bool) -> BatchDecision:
        """One request without a canary: the same answer as a batch of one, with less overhead.

        At low load every request comes alone, and numpy's fixed cost per call would dominate.
        """
        row, ok, has_snapshot = self.builder.row(request, self.features)
        missing = 0 if has_snapshot else 1
        score = request["score"]
        if not ok:
            return BatchDecision([rule_multiplier(score, self.low, self.high)], [None], [MISSING_FEATURES],
                                 missing_snapshots=missing)  # fmt: skip
        try:
            value = serving.run_row(row)[0]
        # A verified model can still fail at run time; the rule answers instead.
        except Exception:
            value = math.nan
        if not math.isfinite(value):
            return BatchDecision([rule_multiplier(score, self.low, self.high)], [None], [MODEL_ERROR],
                                 missing_snapshots=missing)  # fmt: skip
        low, high = bounds_for(serving, self.low, self.high)
        observations = None
        if shadow:
            observations = Observations(np.array([row], dtype=np.float32), [True], [score], [has_snapshot])
        return BatchDecision(
            [min(max(value, low), high)], [serving.version], [None], observations, [0], missing
        )

    def shadow(self, batch: BatchDecision) -> list[float]:
        """Score the shadow on the rows a model answered; the absolute differences to what was sent."""
        shadow = self.store.slot(SIZER).shadow
        if shadow is None or batch.observations is None or not batch.scored:
            return []
        values = score_model(shadow, batch.observations.obs[batch.scored], self.low, self.high)
        # A shadow that fails counts as maximal disagreement: it would have fallen back.
        return [
            self.high - self.low if v is None else abs(v - batch.multipliers[i])
            for v, i in zip(values, batch.scored, strict=True)
        ]

    @staticmethod
    def records(
        requests: Sequence[Mapping[str, Any]], batch: BatchDecision, worker_id: str, latency_us: int,
        decided_us: int | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """SizingDecision records for the batch, in request order (``ts``: ``decided_us``, else now)."""
        ts = now_us() if decided_us is None else decided_us
        out = []
        for i, request in enumerate(requests):
            reason = batch.reasons[i]
            out.append({
                "event_id": new_event_id(), "ts": ts, "signal_id": request["signal_id"],
                "client_id": request["client_id"], "request_ts": request["ts"],
                "multiplier": batch.multipliers[i], "model_name": batch.model_name(i),
                "model_version": batch.versions[i], "fallback": reason is not None, "fallback_reason": reason,
                "latency_us": latency_us, "worker_id": worker_id,
            })  # fmt: skip
        return out

"""Settings of the inference workers."""

from __future__ import annotations

from streams.config.base import Section

__all__ = ["InferenceSettings"]


class InferenceSettings(Section):
    """Serving bounds, batching, canary and weights publishing."""

    group_id: str = "tradeloop-inference"
    worker_id: str = ""
    min_multiplier: float = 0.25
    max_multiplier: float = 2.0
    max_batch: int = 256
    weights_interval_seconds: float = 300.0
    max_weight_step: float = 0.2
    canary_share: float = 0.2
    canary_decisions: int = 200

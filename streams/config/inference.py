"""Settings of the inference workers."""

from __future__ import annotations

from pydantic import Field

from streams.config.base import Section

__all__ = ["InferenceSettings"]


class InferenceSettings(Section):
    """Serving bounds, batching, canary, guardrails and weights publishing."""

    group_id: str = Field(
        default="", description="consumer group of sizing requests; empty derives <topic_prefix>inference"
    )
    worker_id: str = Field(default="", description="id of this worker; empty derives inference-<host>-<pid>")
    min_multiplier: float = Field(default=0.25, description="lowest multiplier ever answered (guardrail)")
    max_multiplier: float = Field(default=2.0, description="highest multiplier ever answered (guardrail)")
    max_batch: int = Field(default=256, ge=1, description="most requests scored as one batch")
    require_stream_features: bool = Field(
        default=False,
        description="answer with the fallback rule when the symbol has no feature snapshot yet "
        "(default: score with the stream features zeroed, as the trainer's replay rows do)",
    )
    max_update_bytes: int = Field(default=16_000_000, ge=1, description="largest ONNX model accepted")
    weights_interval_seconds: float = Field(default=300.0, gt=0, description="StrategyWeights period")
    max_weight_step: float = Field(
        default=0.2, gt=0, le=1, description="largest change of any strategy weight per interval"
    )
    canary_share: float = Field(
        default=0.2, ge=0, le=1, description="share of requests a newly promoted model answers at first"
    )
    canary_decisions: int = Field(default=200, ge=1, description="N: canary decisions and outcomes judged")
    canary_max_fallback_rate: float = Field(
        default=0.05, ge=0, le=1, description="roll back when more of the canary's answers fall back"
    )
    canary_min_uplift: float = Field(
        default=0.0, description="roll back when the realised uplift per decision is surely below this"
    )
    canary_uplift_z: float = Field(
        default=1.64, ge=0, description="confidence (z) needed to call the uplift below the bound"
    )
    canary_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="promote after N decisions when outcomes are this late"
    )
    allocator_canary_periods: int = Field(
        default=12,
        ge=0,
        description="N: allocation periods whose realised returns judge a new allocator against the "
        "serving one before it serves (0: a new allocator serves at once)",
    )
    allocator_canary_min_uplift: float = Field(
        default=0.0,
        description="roll a new allocator back when its realised portfolio return per period over the "
        "serving allocator's is surely below this (confidence canary_uplift_z)",
    )
    allocator_canary_timeout_seconds: float = Field(
        default=7200.0,
        gt=0,
        description="judge a new allocator on the periods that arrived by then when N have not",
    )
    sizing_partitions: int = Field(
        default=12,
        ge=1,
        description="partitions of sizing-requests and sizing-decisions: on the embedded broker a fetch "
        "costs in proportion to the record batches in each partition it reads (docs/inference.md)",
    )
    request_fetch_wait_ms: int = Field(
        default=5, ge=0, description="fetch.wait.max.ms on the request path (Tansu answers at this period)"
    )
    control_fetch_wait_ms: int = Field(
        default=50, ge=0, description="fetch.wait.max.ms of the control and model-updates reader"
    )
    data_fetch_wait_ms: int = Field(
        default=200, ge=0, description="fetch.wait.max.ms of the features/outcomes/periods reader"
    )
    commit_interval_seconds: float = Field(default=1.0, gt=0, description="period of offset commits")
    heartbeat_interval_seconds: float = Field(default=2.0, gt=0)
    features_backfill: int = Field(
        default=10_000, ge=0, description="feature snapshots re-read per partition at start"
    )
    pending_outcomes_max: int = Field(
        default=100_000, ge=1, description="canary decisions remembered while their outcome is awaited"
    )

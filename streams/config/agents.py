"""Settings of the Faust stream agents (``TRADELOOP_AGENTS__<FIELD>``).

docs/agents.md explains how each knob affects state size, expiry and throughput.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from streams.config.base import Section

__all__ = ["AgentSettings"]


class AgentSettings(Section):
    """Validation, feature, price-move, join and allocation-period knobs."""

    # The worker
    app_id: str = Field(
        default="tradeloop-agents",
        description="Faust app id = consumer group; prefixes its changelog topics. Unique per deployment",
    )
    store: Literal["memory", "rocksdb"] = "memory"
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="uvloop",
        description="the worker's asyncio event loop (bench/stream_throughput.py compares them)",
    )
    web_enabled: bool = False
    web_port: int = 6066
    batch_max: int = Field(default=2000, ge=1, description="events per stream.take batch")
    batch_within_seconds: float = Field(default=0.05, gt=0, description="longest wait to fill a batch")
    max_fetch_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        description="bytes per partition a fetch may return (Faust's consumer_max_fetch_size): Faust "
        "waits up to 1.5 s per fetch and the embedded broker answers at that deadline, so this bounds "
        "the input rate of batch records",
    )
    step_max_bytes: int = Field(
        default=1_000_000,
        ge=1,
        description="input bytes handed to a handler at once: a Faust batch of large batch records is "
        "processed in steps of this size, so the event loop (and the group heartbeat) never waits long",
    )
    recovery_consistency_check: bool = Field(
        default=False,
        description="Faust's check that a restored changelog offset is not past the topic's end; off "
        "because Tansu reports that end as the last batch's base offset + 1 (docs/agents.md): turn "
        "it on against Kafka with the rocksdb store",
    )
    commit_interval_seconds: float = Field(default=1.0, gt=0, description="Faust offset commit interval")
    standby_replicas: int = Field(
        default=0,
        ge=0,
        description="Faust table standby replicas: other workers keep a warm copy of each partition's "
        "tables by reading its changelog continuously (bench/failover.py --standby-replicas measures "
        "what a takeover gains; docs/agents.md)",
    )
    tick_seconds: float = Field(default=0.5, gt=0, description="timer period: idle expiry, lag, periods")
    heartbeat_seconds: float = Field(default=2.0, gt=0)

    # Validation
    max_future_seconds: float = 300.0
    max_batch_events: int = Field(
        default=50_000, ge=1, description="events a batch record may hold; a larger one is one dead letter"
    )
    dedup_window: int = Field(
        default=4096, ge=16, description="trade event ids remembered per symbol for duplicate detection"
    )

    # Features
    snapshot_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        description="event-time throttle of FeatureSnapshots per symbol; 0 emits every trade",
    )
    snapshot_retention_seconds: float = Field(
        default=900.0, gt=0, description="event time a snapshot stays available to the point-in-time join"
    )

    # Rapid price moves
    velocity_window_seconds: float = Field(default=60.0, ge=5.0, le=300.0)
    velocity_threshold_pct_per_min: float = 1.0
    vol_spike_multiplier: float = 3.0
    vol_ewma_alpha: float = Field(default=0.02, gt=0, le=1)
    move_warmup_evaluations: int = Field(
        default=20, ge=1, description="evaluations before VOL_SPIKE may fire"
    )

    # Join
    join_grace_seconds: float = 60.0
    idle_expiry_seconds: float = Field(default=30.0, gt=0)
    join_retention_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="event time a finished signal is kept for duplicates and corrections",
    )
    stale_snapshot_seconds: float = Field(default=60.0, gt=0)
    profit_scale: float = Field(default=0.01, gt=0, description="profitability = tanh(return_unit / scale)")
    premium_multiplier: float = Field(default=1.5, ge=1.0)

    # Allocation periods
    allocation_period_seconds: float = Field(default=300.0, gt=0)
    allocation_history: int = Field(default=12, ge=2, description="periods in rolling Sharpe and drawdown")

    @model_validator(mode="after")
    def _snapshot_retention_covers_interval(self) -> AgentSettings:
        if self.snapshot_retention_seconds < self.snapshot_interval_seconds:
            raise ValueError("snapshot_retention_seconds must be >= snapshot_interval_seconds")
        return self

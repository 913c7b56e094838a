"""Settings of the Faust stream agents."""

from __future__ import annotations

from typing import Literal

from streams.config.base import Section

__all__ = ["AgentSettings"]


class AgentSettings(Section):
    """Validation, feature, price-move, join and allocation-period knobs."""

    app_id: str = "tradeloop-agents"
    store: Literal["memory", "rocksdb"] = "memory"
    web_enabled: bool = False
    web_port: int = 6066
    max_future_seconds: float = 300.0
    dedup_window: int = 100_000
    velocity_window_seconds: float = 60.0
    velocity_threshold_pct_per_min: float = 1.0
    vol_spike_multiplier: float = 3.0
    vol_ewma_alpha: float = 0.02
    join_grace_seconds: float = 60.0
    idle_expiry_seconds: float = 30.0
    allocation_period_seconds: float = 300.0

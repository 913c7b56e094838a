"""How the engine SDK batches events (``TRADELOOP_BATCHING__<FIELD>``).

The SDK collects trades, signals and outcomes per (topic, partition) and produces them as one
batch record (:mod:`streams.avro.batches`) when ``max_events`` are waiting or the oldest has waited
``linger_ms``. Defaults are chosen by ``bench/sdk_batching.py`` (README, "Benchmarks").
"""

from __future__ import annotations

from pydantic import Field

from streams.config.base import Section

__all__ = ["BatchingSettings"]


class BatchingSettings(Section):
    """Batching of the engine's events into batch records."""

    enabled: bool = Field(default=True, description="false sends one record per event (the 0.1 wire shape)")
    linger_ms: float = Field(default=5.0, ge=0.0, le=100.0, description="longest wait of an event")
    max_events: int = Field(default=500, ge=1, le=50_000, description="events per batch record at most")

"""Logical topic names and per-topic creation configs (DESIGN.md section 4).

Names here are *logical*; :meth:`streams.settings.Settings.topic` adds the configured prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ALLOCATION_PERIODS",
    "ALL_TOPICS",
    "BATCH_SCHEMA_OF_TOPIC",
    "CONTROL",
    "DEAD_LETTER",
    "EXPERIENCES",
    "FEATURES",
    "HEARTBEATS",
    "MODEL_UPDATES",
    "OUTCOMES",
    "PRICE_MOVES",
    "SIGNALS",
    "SIZING_DECISIONS",
    "SIZING_REQUESTS",
    "STRATEGY_WEIGHTS",
    "TRADES",
    "TopicSpec",
]

TRADES: Final = "trades"
SIGNALS: Final = "signals"
OUTCOMES: Final = "outcomes"
FEATURES: Final = "features"
PRICE_MOVES: Final = "price-moves"
EXPERIENCES: Final = "experiences"
ALLOCATION_PERIODS: Final = "allocation-periods"
MODEL_UPDATES: Final = "model-updates"
SIZING_REQUESTS: Final = "sizing-requests"
SIZING_DECISIONS: Final = "sizing-decisions"
STRATEGY_WEIGHTS: Final = "strategy-weights"
DEAD_LETTER: Final = "dead-letter"
HEARTBEATS: Final = "heartbeats"
CONTROL: Final = "control"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How a topic is created: its value schema(s), key meaning and broker configs.

    Attributes:
        batch_schema: a second value schema carrying many events per record (parallel arrays),
            told apart from ``schema`` by its fingerprint; None where only single records exist.
        sizing_path: created with ``inference.sizing_partitions`` partitions instead of
            ``partitions`` (the request -> decision round trip; ``docs/inference.md``).
    """

    name: str
    schema: str
    key: str
    configs: dict[str, str] = field(default_factory=dict)
    single_partition: bool = False
    batch_schema: str | None = None
    sizing_path: bool = False


_COMPACT = {"cleanup.policy": "compact"}

ALL_TOPICS: Final[tuple[TopicSpec, ...]] = (
    TopicSpec(TRADES, "Trade", "symbol", batch_schema="TradeBatch"),
    TopicSpec(SIGNALS, "Signal", "symbol (signal_id accepted)", batch_schema="SignalBatch"),
    TopicSpec(OUTCOMES, "Outcome", "symbol (signal_id accepted)", batch_schema="OutcomeBatch"),
    TopicSpec(FEATURES, "FeatureSnapshot", "symbol"),
    TopicSpec(PRICE_MOVES, "PriceMove", "symbol"),
    TopicSpec(EXPERIENCES, "Experience", "signal_id"),
    TopicSpec(ALLOCATION_PERIODS, "AllocationPeriod", "portfolio"),
    TopicSpec(MODEL_UPDATES, "ModelUpdate", "model name", _COMPACT),
    TopicSpec(SIZING_REQUESTS, "SizingRequest", "signal_id", sizing_path=True),
    TopicSpec(SIZING_DECISIONS, "SizingDecision", "signal_id", sizing_path=True),
    TopicSpec(STRATEGY_WEIGHTS, "StrategyWeights", "portfolio"),
    TopicSpec(DEAD_LETTER, "DeadLetter", "original key"),
    TopicSpec(HEARTBEATS, "Heartbeat", "component id"),
    # One partition keeps operator commands totally ordered for every worker.
    TopicSpec(CONTROL, "Control", "scope", single_partition=True),
)

SCHEMA_OF_TOPIC: Final[dict[str, str]] = {spec.name: spec.schema for spec in ALL_TOPICS}
BATCH_SCHEMA_OF_TOPIC: Final[dict[str, str]] = {
    spec.name: spec.batch_schema for spec in ALL_TOPICS if spec.batch_schema is not None
}

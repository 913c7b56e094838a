"""Live uplift of the served models: what the engine earned with them against the simple rule.

**Sizer.** Reads the engine's own signals and outcomes, single or in batch records (not the
worker's experiences, so the figure does not wait for the stream worker to catch up). For each signal whose size a model chose
(``model_version`` set) and whose outcome has arrived, the realised unit P&L is
``action x return_unit`` and the fixed-size counterfactual is ``return_unit``: exact, because P&L
is linear in size (DESIGN.md section 5).

**Allocator.** Reads the StrategyWeights the inference workers publish (what an engine subscribed
with ``EngineClient.subscribe_weights`` receives) and the allocation periods. Learned weights
(``model_version`` set) are in force for a portfolio from the moment they are read until the next
record for it; every allocation period read while learned weights are in force adds
``(w - equal) . r``, ``r`` the period's per-strategy returns: what the received weights earned over
equal weights, exact for the same reason. Weights and periods are matched in the order they are
read, not by event time (the weights carry wall-clock time, the simulated periods event time), so
a period may be scored with the weights of the next decision now and then.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.errors import SchemaDecodeError
from streams.kafka.consumer import EventConsumer
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS, OUTCOMES, SIGNALS, STRATEGY_WEIGHTS

__all__ = ["LiveUplift", "UpliftTracker", "WeightsUplift"]


@dataclass
class LiveUplift:
    """Running sums over closed decisions made with a model."""

    decisions_with_model: int = 0
    model_pnl: float = 0.0
    fixed_pnl: float = 0.0
    versions: dict[str, int] = field(default_factory=dict)
    _open: dict[str, tuple[float, str]] = field(default_factory=dict, repr=False)
    _early: dict[str, float] = field(default_factory=dict, repr=False)

    def signal(self, record: Mapping[str, Any]) -> None:
        version, action = record.get("model_version"), record.get("action")
        if version is None or not isinstance(action, float):
            return  # sized by the rule or at 1.0: not a model decision
        signal_id = str(record["signal_id"])
        early = self._early.pop(signal_id, None)
        if early is not None:
            self._close(action, str(version), early)
        else:
            self._open[signal_id] = (action, str(version))

    def outcome(self, record: Mapping[str, Any]) -> None:
        unit = record.get("return_unit")
        if not isinstance(unit, float) or not math.isfinite(unit):
            return
        signal_id = str(record["signal_id"])
        opened = self._open.pop(signal_id, None)
        if opened is not None:
            self._close(opened[0], opened[1], unit)
        elif len(self._early) < 100_000:  # outcomes read before their signal (other partitions)
            self._early[signal_id] = unit

    def _close(self, action: float, version: str, unit: float) -> None:
        self.decisions_with_model += 1
        self.model_pnl += action * unit
        self.fixed_pnl += unit
        self.versions[version] = self.versions.get(version, 0) + 1

    @property
    def uplift(self) -> float:
        """Unit-notional P&L the model added over fixed size (sum of (action - 1) x return)."""
        return self.model_pnl - self.fixed_pnl

    def summary(self) -> dict[str, object]:
        return {
            "decisions_with_model": self.decisions_with_model,
            "live_uplift": round(self.uplift, 6),
            "model_pnl_units": round(self.model_pnl, 6),
            "fixed_size_pnl_units": round(self.fixed_pnl, 6),
            "decisions_by_version": dict(self.versions),
        }


@dataclass
class WeightsUplift:
    """Learned strategy weights received and what they earned over equal weights.

    Example:
        >>> w = WeightsUplift()
        >>> w.weights({"portfolio": "main", "strategies": ["a", "b"], "weights": [0.75, 0.25],
        ...            "model_version": "v1", "fallback": False, "fallback_reason": None})
        >>> w.period({"portfolio": "main", "strategies": ["a", "b"], "strategy_returns": [0.02, -0.01]})
        >>> w.updates, w.periods, w.periods_read, round(w.uplift, 6)
        (1, 1, 1, 0.0075)
    """

    updates: int = 0
    periods: int = 0
    periods_read: int = 0  # scored or not: before any learned weights, a period is only read
    uplift: float = 0.0
    model_version: str | None = None
    fallback_reason: str | None = None
    latest: dict[str, float] = field(default_factory=dict)
    _in_force: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def weights(self, record: Mapping[str, Any]) -> None:
        """A StrategyWeights record: learned weights come into force, a fallback ends them."""
        portfolio = str(record["portfolio"])
        weights = dict(zip(record["strategies"], record["weights"], strict=True))
        self.latest = {str(k): float(v) for k, v in weights.items()}
        if record.get("fallback") or record.get("model_version") is None:
            self._in_force.pop(portfolio, None)
            self.model_version, self.fallback_reason = None, str(record.get("fallback_reason") or "fallback")
            return
        self.updates += 1
        self.model_version, self.fallback_reason = str(record["model_version"]), None
        self._in_force[portfolio] = self.latest

    def period(self, record: Mapping[str, Any]) -> None:
        """An AllocationPeriod: scored when learned weights are in force for its portfolio."""
        self.periods_read += 1
        weights = self._in_force.get(str(record["portfolio"]))
        strategies = list(record["strategies"])
        returns = list(record["strategy_returns"])
        if weights is None or not strategies or not all(math.isfinite(r) for r in returns):
            return
        equal = 1.0 / len(strategies)
        self.uplift += sum(
            (weights.get(s, 0.0) - equal) * r for s, r in zip(strategies, returns, strict=True)
        )
        self.periods += 1

    def summary(self) -> dict[str, object]:
        return {
            "weights_updates": self.updates,
            "weights_uplift_vs_equal": round(self.uplift, 6),
            "weights_periods_scored": self.periods,
            "weights_periods_read": self.periods_read,
            "weights_model_version": self.model_version,
            "weights_latest": {k: round(v, 4) for k, v in self.latest.items()},
        }


class UpliftTracker:
    """Consumes signals, outcomes, strategy weights and allocation periods (no group, from the
    start) into a :class:`LiveUplift` (``state``) and a :class:`WeightsUplift` (``weights``)."""

    def __init__(self, settings: Settings) -> None:
        self.state = LiveUplift()
        self.weights = WeightsUplift()
        self.unreadable = 0
        self._consumer = EventConsumer(settings, "tradeloop-up-uplift", "tradeloop-up-uplift")
        self._consumer.assign_all([SIGNALS, OUTCOMES, STRATEGY_WEIGHTS, ALLOCATION_PERIODS])

    def poll(self, max_messages: int = 20_000) -> None:
        for message in self._consumer.poll_batch(max_messages, 0.05):
            topic = self._consumer.logical(message.topic() or "")
            try:
                for record in self._consumer.events(message):  # batch records unpacked
                    self._take(topic, record)
            except SchemaDecodeError:
                self.unreadable += 1  # the stream worker dead-letters its inputs; here we only count

    def _take(self, topic: str, record: Mapping[str, Any]) -> None:
        if topic == SIGNALS:
            self.state.signal(record)
        elif topic == OUTCOMES:
            self.state.outcome(record)
        elif topic == STRATEGY_WEIGHTS:
            self.weights.weights(record)
        else:
            self.weights.period(record)

    def summary(self) -> dict[str, object]:
        """Both learners' live figures, for ``--summary-json``."""
        return {**self.state.summary(), **self.weights.summary()}

    def close(self) -> None:
        self._consumer.close()

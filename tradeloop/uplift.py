"""Live uplift of the served sizer: realised P&L of model-sized decisions vs fixed size.

Reads the experiences topic. For each completed experience whose action a model chose
(``model_version`` set), the realised unit P&L is ``action x return_unit`` and the fixed-size
counterfactual is ``return_unit`` (exact: P&L is linear in size, DESIGN.md section 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from streams.consumer import EventConsumer
from streams.errors import SchemaDecodeError
from streams.settings import Settings
from streams.topics import EXPERIENCES

__all__ = ["LiveUplift", "UpliftTracker"]


@dataclass
class LiveUplift:
    """Running sums over decisions made with a model."""

    decisions_with_model: int = 0
    model_pnl: float = 0.0
    fixed_pnl: float = 0.0
    versions: dict[str, int] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, record: dict[str, object]) -> None:
        version = record.get("model_version")
        unit = record.get("return_unit")
        action = record.get("action")
        if record.get("status") == "CENSORED" or version is None or not isinstance(unit, float):
            return
        signal_id = str(record["signal_id"])
        if signal_id in self._seen or not isinstance(action, float) or not math.isfinite(unit):
            return
        self._seen.add(signal_id)
        self.decisions_with_model += 1
        self.model_pnl += action * unit
        self.fixed_pnl += unit
        self.versions[str(version)] = self.versions.get(str(version), 0) + 1

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


class UpliftTracker:
    """Consumes experiences (no group, from the start) into a :class:`LiveUplift`."""

    def __init__(self, settings: Settings) -> None:
        self.state = LiveUplift()
        self.unreadable = 0
        self._consumer = EventConsumer(settings, "tradeloop-up-uplift", "tradeloop-up-uplift")
        self._consumer.assign_all([EXPERIENCES])

    def poll(self, max_messages: int = 5000) -> None:
        for message in self._consumer.poll_batch(max_messages, 0.05):
            try:
                self.state.add(self._consumer.decode(message))
            except SchemaDecodeError:
                self.unreadable += 1  # the worker dead-letters its inputs; here we only count

    def close(self) -> None:
        self._consumer.close()

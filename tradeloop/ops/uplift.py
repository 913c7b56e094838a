"""Live uplift of the served sizer: realised P&L of model-sized signals vs fixed size.

Reads the engine's own signals and outcomes (not the worker's experiences, so the figure does
not wait for the stream worker to catch up). For each signal whose size a model chose
(``model_version`` set) and whose outcome has arrived, the realised unit P&L is
``action x return_unit`` and the fixed-size counterfactual is ``return_unit``: exact, because P&L
is linear in size (DESIGN.md section 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from streams.consumer import EventConsumer
from streams.errors import SchemaDecodeError
from streams.settings import Settings
from streams.topics import OUTCOMES, SIGNALS

__all__ = ["LiveUplift", "UpliftTracker"]


@dataclass
class LiveUplift:
    """Running sums over closed decisions made with a model."""

    decisions_with_model: int = 0
    model_pnl: float = 0.0
    fixed_pnl: float = 0.0
    versions: dict[str, int] = field(default_factory=dict)
    _open: dict[str, tuple[float, str]] = field(default_factory=dict, repr=False)
    _early: dict[str, float] = field(default_factory=dict, repr=False)

    def signal(self, record: dict[str, object]) -> None:
        version, action = record.get("model_version"), record.get("action")
        if version is None or not isinstance(action, float):
            return  # sized by the rule or at 1.0: not a model decision
        signal_id = str(record["signal_id"])
        early = self._early.pop(signal_id, None)
        if early is not None:
            self._close(action, str(version), early)
        else:
            self._open[signal_id] = (action, str(version))

    def outcome(self, record: dict[str, object]) -> None:
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


class UpliftTracker:
    """Consumes signals and outcomes (no group, from the start) into a :class:`LiveUplift`."""

    def __init__(self, settings: Settings) -> None:
        self.state = LiveUplift()
        self.unreadable = 0
        self._consumer = EventConsumer(settings, "tradeloop-up-uplift", "tradeloop-up-uplift")
        self._consumer.assign_all([SIGNALS, OUTCOMES])

    def poll(self, max_messages: int = 20_000) -> None:
        for message in self._consumer.poll_batch(max_messages, 0.05):
            try:
                record = self._consumer.decode(message)
            except SchemaDecodeError:
                self.unreadable += 1  # the stream worker dead-letters its inputs; here we only count
                continue
            if self._consumer.logical(message.topic() or "") == SIGNALS:
                self.state.signal(record)
            else:
                self.state.outcome(record)

    def close(self) -> None:
        self._consumer.close()

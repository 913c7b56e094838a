"""Rapid price move detection: velocity and volatility-spike detectors per symbol.

Both run at the feature emission points (see ``snapshot_interval_seconds``), in event time:

* **VELOCITY** fires when ``|p / p_ref - 1| * 100 / window_minutes >= velocity_threshold_pct_per_min``,
  where ``p_ref`` is the last price before the velocity window (bucket-aligned like the features).
* **VOL_SPIKE** fires when the 1-minute realised volatility is at least ``vol_spike_multiplier`` times
  an adaptive baseline, an EWMA (``vol_ewma_alpha``) of the same volatility at earlier evaluations,
  once ``move_warmup_evaluations`` evaluations have been seen.

A detector that fired stays quiet for one window, so a long move yields one alert per window. A
signal is *premium* when its time falls inside ``[alert.ts, alert.ts + window)`` of any alert of
its symbol.

Example:
    >>> from streams.config.agents import AgentSettings
    >>> detector = MoveDetector(AgentSettings())
    >>> detector.premium_at(5), detector.remember(0, "VELOCITY", 10), detector.premium_at(5)
    (False, None, True)
"""

from __future__ import annotations

import bisect
import math
import uuid
from typing import Any, Final

import numpy as np

from agents.features import FINE_US, FeatureState
from streams.config.agents import AgentSettings
from streams.features import STREAM_FEATURES

__all__ = ["MOVE_NAMESPACE", "VELOCITY", "VOL_SPIKE", "MoveDetector"]

VELOCITY: Final = "VELOCITY"
VOL_SPIKE: Final = "VOL_SPIKE"
VOL_WINDOW_US: Final = 60_000_000  # the detector compares the 1-minute volatility
MOVE_NAMESPACE: Final = uuid.UUID("0a8e4f7e-2d43-4c4f-8d4e-9b7f1f6a2c11")

_RV_1M: Final = STREAM_FEATURES.index("rv_1m")
_RET_1M: Final = STREAM_FEATURES.index("ret_1m")


def _start(alert: tuple[int, str, int]) -> int:
    return alert[0]


class MoveDetector:
    """Detector state of one symbol: volatility baseline, last alert per kind, recent alerts."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.velocity_us = int(settings.velocity_window_seconds * 1_000_000)
        self.velocity_buckets = max(1, round(self.velocity_us / FINE_US))
        self.longest_us = max(self.velocity_us, VOL_WINDOW_US)
        self.retention_us = int(settings.snapshot_retention_seconds * 1_000_000)
        self.baseline: float | None = None
        self.evaluations = 0
        self.last_fire: dict[str, int] = {}
        self.recent: list[tuple[int, str, int]] = []  # (ts, kind, window_us), oldest first

    def check(self, symbol: str, state: FeatureState, values: np.ndarray) -> list[dict[str, Any]]:
        """PriceMove records for the features ``values`` just evaluated on ``state``."""
        ts, price = state.last_ts, state.last_price
        moves = []
        ref = state.ref_close(self.velocity_buckets)
        if not math.isnan(ref):
            change = (price / ref - 1.0) * 100.0
            speed = abs(change) / (self.velocity_us / 60_000_000)
            threshold = self.settings.velocity_threshold_pct_per_min
            if speed >= threshold and self._ready(VELOCITY, ts, self.velocity_us):
                moves.append(
                    self._alert(symbol, VELOCITY, ts, speed, threshold, self.velocity_us, change, price)
                )
        rv = float(values[_RV_1M])
        if self.baseline is None:
            self.baseline = rv
        else:
            multiplier = self.settings.vol_spike_multiplier
            ratio = rv / self.baseline if self.baseline > 0 else 0.0
            warm = self.evaluations >= self.settings.move_warmup_evaluations
            if warm and ratio >= multiplier and self._ready(VOL_SPIKE, ts, VOL_WINDOW_US):
                change = math.expm1(float(values[_RET_1M])) * 100.0
                moves.append(
                    self._alert(symbol, VOL_SPIKE, ts, ratio, multiplier, VOL_WINDOW_US, change, price)
                )
            self.baseline += self.settings.vol_ewma_alpha * (rv - self.baseline)
        self.evaluations += 1
        return moves

    def _ready(self, kind: str, ts: int, window_us: int) -> bool:
        last = self.last_fire.get(kind)
        return last is None or ts >= last + window_us

    def _alert(
        self, symbol: str, kind: str, ts: int, value: float, threshold: float, window_us: int, change: float,
        price: float,
    ) -> dict[str, Any]:  # fmt: skip
        self.last_fire[kind] = ts
        self.remember(ts, kind, window_us)
        return {
            "event_id": uuid.uuid5(MOVE_NAMESPACE, f"{symbol}/{kind}/{ts}").hex,
            "ts": ts, "symbol": symbol, "kind": kind, "value": value, "threshold": threshold,
            "window_seconds": window_us / 1e6, "change_pct": change, "price": price,
        }  # fmt: skip

    def remember(self, ts: int, kind: str, window_us: int) -> None:
        """Record an alert for :meth:`premium_at`, forgetting those older than the retention."""
        self.recent.append((ts, kind, window_us))
        horizon = ts - self.retention_us
        self.recent = [m for m in self.recent if m[0] + m[2] >= horizon]

    def premium_at(self, ts: int) -> bool:
        """True when a detected move of this symbol was under way at event time ``ts``."""
        # Alerts are remembered in event-time order; only those that started at or before ``ts``
        # and less than the longest window earlier can cover it.
        recent = self.recent
        i = bisect.bisect_right(recent, ts, key=_start)
        while i > 0 and recent[i - 1][0] > ts - self.longest_us:
            i -= 1
            if ts < recent[i][0] + recent[i][2]:
                return True
        return False

    def core(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "evaluations": self.evaluations,
            "last_fire": self.last_fire,
            "recent": [list(m) for m in self.recent],
        }

    def restore_core(self, core: dict[str, Any]) -> None:
        self.baseline = core["baseline"]
        self.evaluations = core["evaluations"]
        self.last_fire = dict(core["last_fire"])
        self.recent = [(int(t), str(k), int(w)) for t, k, w in core["recent"]]

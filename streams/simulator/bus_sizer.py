"""A sizing callback that asks the inference workers over the bus, as a real engine would.

With it, ``tradeloop simulate --size-via-bus`` closes the loop: each signal's multiplier comes
from a sizing decision, and the signal records which model version chose it. When no decision
arrives in time the engine trades at its base size (1.0) and says no model chose it.
"""

from __future__ import annotations

import logging
from typing import Any

from streams.sdk import EngineClient, SizeTimeoutError
from streams.settings import Settings

__all__ = ["BusSizer"]

log = logging.getLogger(__name__)


class BusSizer:
    """Callable sizer for :class:`streams.simulator.Simulator` backed by :class:`EngineClient`."""

    def __init__(self, settings: Settings, timeout: float = 0.5) -> None:
        self.client = EngineClient(settings, client_id="simulator-engine")
        self.timeout = timeout
        self.answered = 0
        self.with_model = 0
        self.timeouts = 0

    def __call__(self, signal: dict[str, Any]) -> tuple[float, str | None]:
        try:
            decision = self.client.request_size(
                signal["signal_id"],
                strategy=signal["strategy"],
                symbol=signal["symbol"],
                side=signal["side"],
                score=signal["score"],
                features=signal["features"],
                timeout=self.timeout,
            )
        except SizeTimeoutError:
            self.timeouts += 1
            if self.timeouts in (1, 10, 100) or self.timeouts % 1000 == 0:
                log.warning(
                    "no sizing decision within %.1fs (%d so far); trading at 1.0", self.timeout, self.timeouts
                )
            return 1.0, None
        self.answered += 1
        if decision.fallback:
            return decision.multiplier, None
        self.with_model += 1
        return decision.multiplier, decision.model_version

    def close(self) -> None:
        self.client.close()

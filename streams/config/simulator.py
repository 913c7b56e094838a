"""Settings of the simulated trading engine."""

from __future__ import annotations

from streams.config.base import Section

__all__ = ["SimulatorSettings"]


class SimulatorSettings(Section):
    """How the simulated engine behaves by default; CLI flags override per run."""

    symbols: int = 4
    strategies_per_family: int = 2
    trades_per_signal: int = 8
    holding_seconds: float = 120.0
    portfolio: str = "main"

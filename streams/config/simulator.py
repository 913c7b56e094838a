"""Settings of the simulated trading engine."""

from __future__ import annotations

from pydantic import Field

from streams.config.base import Section

__all__ = ["SimulatorSettings"]


class SimulatorSettings(Section):
    """How the simulated engine behaves by default; CLI flags override per run."""

    symbols: int = Field(default=4, ge=1, le=64, description="simulated instruments")
    strategies_per_family: int = Field(default=2, ge=1, le=8, description="strategy variants per family")
    trades_per_signal: int = Field(default=8, ge=1, description="mean market prints between two signals")
    holding_seconds: float = Field(default=120.0, gt=0, description="base holding time of a signal")
    portfolio: str = Field(default="main", description="portfolio every simulated signal trades for")
    trades_per_second: float = Field(
        default=2.0, gt=0, description="mean market prints per simulated second and symbol"
    )
    notional: float = Field(default=10_000.0, gt=0, description="quote notional of a unit-size position")
    fee_bps: float = Field(default=1.0, ge=0, description="fee per side in basis points of notional")
    news_interval_seconds: float = Field(
        default=900.0, gt=0, description="simulated seconds between scheduled news shocks of a symbol"
    )

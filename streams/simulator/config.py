"""The simulator's run configuration: a seed plus the engine knobs of the settings section.

Example:
    >>> cfg = SimConfig(seed=3, symbols=5)
    >>> cfg.symbol_names()
    ['BTC-USD', 'ETH-USD', 'SOL-USD', 'XRP-USD', 'ADA-USD']
    >>> cfg.start_us
    1767225600000000
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pydantic import Field

from streams.config.simulator import SimulatorSettings

__all__ = ["EPOCH_US", "SYMBOL_SPECS", "SimConfig", "SymbolSpec"]

# 2026-01-01T00:00:00Z. Event time starts here for every seed, so ids and timestamps are reproducible.
EPOCH_US: Final = 1_767_225_600_000_000


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Static description of one simulated instrument."""

    name: str
    start_price: float
    vol_scale: float  # multiplies the base volatility: a volatile coin moves more per second
    lot: float  # typical print size in units of the instrument
    decimals: int  # price tick as decimals
    spread_bps: float  # normal quoted spread


SYMBOL_SPECS: Final = (
    SymbolSpec("BTC-USD", 50_000.0, 0.8, 0.05, 1, 1.0),
    SymbolSpec("ETH-USD", 3_000.0, 1.0, 0.8, 2, 1.5),
    SymbolSpec("SOL-USD", 150.0, 1.3, 12.0, 3, 2.5),
    SymbolSpec("XRP-USD", 0.6, 1.2, 4_000.0, 5, 3.0),
    SymbolSpec("ADA-USD", 0.45, 1.4, 5_000.0, 5, 3.5),
    SymbolSpec("DOGE-USD", 0.12, 1.6, 20_000.0, 6, 4.0),
    SymbolSpec("AVAX-USD", 35.0, 1.4, 50.0, 3, 3.0),
    SymbolSpec("LINK-USD", 15.0, 1.3, 120.0, 3, 3.0),
)


class SimConfig(SimulatorSettings):
    """Everything that determines a simulated event stream. Equal configs give equal streams.

    The settings section's knobs, with their bounds (it derives from
    :class:`streams.config.simulator.SimulatorSettings`), plus ``seed``, which picks the random
    paths, and ``start_us``, the event time of the first instant.
    """

    seed: int = Field(default=1, ge=0, description="the random paths; the same seed gives the same stream")
    start_us: int = Field(default=EPOCH_US, description="event time of the first instant, microseconds")

    @classmethod
    def from_settings(cls, section: SimulatorSettings, seed: int = 1) -> SimConfig:
        """A config with the settings section's knobs and ``seed``."""
        return cls(seed=seed, **section.model_dump())

    def symbol_specs(self) -> list[SymbolSpec]:
        """The instruments of this run: the built-in list, then generated ones past its end."""
        specs = list(SYMBOL_SPECS[: self.symbols])
        for i in range(len(specs), self.symbols):
            specs.append(SymbolSpec(f"SYM{i + 1}-USD", 100.0, 1.0 + 0.1 * (i % 5), 10.0, 3, 3.0))
        return specs

    def symbol_names(self) -> list[str]:
        return [s.name for s in self.symbol_specs()]

    @property
    def fee_round_trip(self) -> float:
        """Fees of opening and closing a position, as a fraction of notional."""
        return 2.0 * self.fee_bps / 1e4

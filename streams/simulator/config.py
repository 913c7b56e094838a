"""The simulator's run configuration: a seed plus the engine knobs of the settings section.

Example:
    >>> cfg = SimConfig(seed=3, symbols=5)
    >>> cfg.symbol_names()
    ['BTC-USD', 'ETH-USD', 'SOL-USD', 'XRP-USD', 'ADA-USD']
    >>> cfg.start_us
    1767225600000000
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from streams.config.simulator import SimulatorSettings
from streams.errors import ConfigError

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


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that determines a simulated event stream. Equal configs give equal streams.

    Attributes mirror :class:`streams.config.simulator.SimulatorSettings`; ``seed`` picks the
    random paths and ``start_us`` the event time of the first instant.
    """

    seed: int = 1
    symbols: int = 4
    strategies_per_family: int = 2
    trades_per_signal: int = 8
    holding_seconds: float = 120.0
    portfolio: str = "main"
    trades_per_second: float = 2.0
    notional: float = 10_000.0
    fee_bps: float = 1.0
    news_interval_seconds: float = 900.0
    start_us: int = EPOCH_US

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ConfigError(f"simulator seed must be >= 0, got {self.seed}")
        if self.symbols < 1 or self.strategies_per_family < 1 or self.trades_per_signal < 1:
            raise ConfigError("simulator needs >= 1 symbol, strategy per family and trade per signal")
        if min(self.holding_seconds, self.trades_per_second, self.notional, self.news_interval_seconds) <= 0:
            raise ConfigError("simulator holding time, trade rate, notional and news interval must be > 0")
        if self.fee_bps < 0:
            raise ConfigError(f"simulator fee must be >= 0 bps, got {self.fee_bps}")

    @classmethod
    def from_settings(cls, section: SimulatorSettings, seed: int = 1) -> SimConfig:
        """A config with the settings section's knobs and ``seed``."""
        names = {f.name for f in fields(cls)}
        return cls(seed=seed, **{k: v for k, v in section.model_dump().items() if k in names})

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

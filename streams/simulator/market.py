"""Regime-switching price paths and the engine-side features a strategy observes.

Each symbol's log price follows one of four regimes, switching as a Markov chain with random
durations:

* ``TREND_UP`` / ``TREND_DOWN``: constant drift plus diffusion;
* ``RANGE``: mean reversion toward the price where the range began (Ornstein-Uhlenbeck);
* ``VOL_SPIKE``: several times the normal volatility, no drift.

On top of the regimes come random **gaps** (a jump between two prints, about once per
20 simulated minutes per symbol) and **scheduled news shocks**: symbol ``i`` has news at
``(i + 1) * interval / n + k * interval`` seconds after the start (``k = 0, 1, ...``), a jump of
random sign followed by a volatility spike. :meth:`Market.news_times` lists them.

Features are exponentially weighted statistics of the prints a symbol has had, so they are
what an engine could compute itself at signal time (no peeking at the regime).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from streams.features import ENGINE_FEATURES
from streams.simulator.config import SimConfig, SymbolSpec
from streams.simulator.draws import Draws

__all__ = ["REGIMES", "Market", "Regime"]


class Regime(StrEnum):
    TREND_UP = "TREND_UP"
    TREND_DOWN = "TREND_DOWN"
    RANGE = "RANGE"
    VOL_SPIKE = "VOL_SPIKE"


REGIMES: Final = tuple(Regime)

BASE_SIGMA: Final = 1e-4  # log-price diffusion per sqrt(second): about 8 bps per minute
TREND_DRIFT: Final = 2.5e-5  # per second: a trend moves about 15 bps a minute
RANGE_KAPPA: Final = 1.0 / 120.0  # range pull toward its anchor, per second
SPIKE_SIGMA: Final = 3.5  # volatility multiple during a spike

# (drift sign, sigma multiple, mean duration in seconds)
_PARAMS: Final = {
    Regime.TREND_UP: (1.0, 1.0, 480.0),
    Regime.TREND_DOWN: (-1.0, 1.0, 480.0),
    Regime.RANGE: (0.0, 1.0, 540.0),
    Regime.VOL_SPIKE: (0.0, SPIKE_SIGMA, 90.0),
}
_NEXT: Final = {
    Regime.RANGE: ((Regime.TREND_UP, 0.35), (Regime.TREND_DOWN, 0.35), (Regime.VOL_SPIKE, 0.30)),
    Regime.TREND_UP: ((Regime.RANGE, 0.60), (Regime.TREND_DOWN, 0.15), (Regime.VOL_SPIKE, 0.25)),
    Regime.TREND_DOWN: ((Regime.RANGE, 0.60), (Regime.TREND_UP, 0.15), (Regime.VOL_SPIKE, 0.25)),
    Regime.VOL_SPIKE: ((Regime.RANGE, 0.50), (Regime.TREND_UP, 0.25), (Regime.TREND_DOWN, 0.25)),
}

# Time constants (seconds) of the feature statistics.
TAU_FAST: Final = 20.0
TAU_SLOW: Final = 180.0
TAU_Z: Final = 60.0
TAU_DEV: Final = 300.0
TAU_MOM: Final = 30.0
TAU_VOL: Final = 60.0
TAU_CHANNEL: Final = 300.0
TAU_REF: Final = 30.0
TAU_SPREAD: Final = 30.0

GAP_MEAN_SECONDS: Final = 1200.0
GAP_SIGMAS: Final = 5.0  # a gap is about five one-minute moves
NEWS_SIGMAS: Final = 6.0


@dataclass(slots=True)
class _Symbol:
    """Mutable per-symbol state: the path, the regime, and the feature statistics."""

    spec: SymbolSpec
    x: float = 0.0  # log(price / start price)
    t: float = 0.0  # seconds since start of the last update
    regime: Regime = Regime.RANGE
    regime_end: float = 0.0
    anchor: float = 0.0
    ema_fast: float = 0.0
    ema_slow: float = 0.0
    ema_z: float = 0.0
    dev_var: float = 0.0
    ema_mom: float = 0.0
    var_r: float = 0.0
    high: float = 0.0
    low: float = 0.0
    ref_high: float = 0.0  # the channel as it was about TAU_REF seconds ago
    ref_low: float = 0.0
    breakout: float = 0.0
    log_spread: float = 0.0
    next_gap: float = 0.0
    next_news: float = 0.0
    last_move: float = 0.0  # last return in units of its expected size (drives print sides)


class Market:
    """The simulated market of one run. Pure state machine: :meth:`update` moves one symbol.

    Attributes:
        stats: how often each regime was entered, plus ``gaps`` and ``news`` counts.
    """

    def __init__(self, config: SimConfig) -> None:
        self._draws = Draws(config.seed, "market")
        self._news_interval = config.news_interval_seconds
        self.stats: Counter[str] = Counter()
        n = config.symbols
        self._symbols: list[_Symbol] = []
        for i, spec in enumerate(config.symbol_specs()):
            var = (BASE_SIGMA * spec.vol_scale) ** 2
            sym = _Symbol(spec=spec, var_r=var, dev_var=var * TAU_Z, log_spread=math.log(spec.spread_bps))
            sym.next_gap = GAP_MEAN_SECONDS * self._draws.exponential()
            sym.next_news = (i + 1) * config.news_interval_seconds / n
            self._enter(sym, REGIMES[self._draws.randrange(len(REGIMES))], 0.0)
            self._symbols.append(sym)

    # -- regimes -------------------------------------------------------------------------
    def _enter(self, sym: _Symbol, regime: Regime, t: float) -> None:
        sym.regime = regime
        sym.regime_end = t + _PARAMS[regime][2] * (0.25 + 1.5 * self._draws.uniform())
        if regime is Regime.RANGE:
            sym.anchor = sym.x
        self.stats[regime.value] += 1

    def _switch(self, sym: _Symbol, t: float) -> None:
        u = self._draws.uniform()
        choices = _NEXT[sym.regime]
        chosen = choices[-1][0]
        for regime, p in choices:
            u -= p
            if u < 0:
                chosen = regime
                break
        self._enter(sym, chosen, t)

    def news_times(self, symbol: int, until_seconds: float) -> list[float]:
        """The scheduled news times of ``symbol`` (seconds after the start) up to ``until_seconds``."""
        first = (symbol + 1) * self._news_interval / len(self._symbols)
        return [
            first + k * self._news_interval
            for k in range(int((until_seconds - first) // self._news_interval) + 1)
        ]

    # -- price path ----------------------------------------------------------------------
    def update(self, i: int, t: float) -> float:
        """Move symbol ``i`` to time ``t`` (seconds since the start); returns its new mid price."""
        sym = self._symbols[i]
        draws = self._draws
        dt = max(t - sym.t, 1e-6)
        sym.t = t
        if t >= sym.regime_end:
            self._switch(sym, t)
        drift_sign, sigma_mult, _ = _PARAMS[sym.regime]
        sigma = BASE_SIGMA * sym.spec.vol_scale * sigma_mult
        jump = 0.0
        while t >= sym.next_news:
            jump += NEWS_SIGMAS * sigma * math.sqrt(60.0) * draws.normal()
            sym.next_news += self._news_interval
            self.stats["news"] += 1
            self._enter(sym, Regime.VOL_SPIKE, t)
            sigma = BASE_SIGMA * sym.spec.vol_scale * SPIKE_SIGMA
        if t >= sym.next_gap:
            sign = 1.0 if draws.uniform() < 0.5 else -1.0
            jump += sign * GAP_SIGMAS * sigma * math.sqrt(60.0) * (0.5 + draws.uniform())
            sym.next_gap = t + GAP_MEAN_SECONDS * draws.exponential()
            self.stats["gaps"] += 1
        if sym.regime is Regime.RANGE:
            drift = (sym.anchor - sym.x) * (1.0 - math.exp(-RANGE_KAPPA * dt))
        else:
            drift = drift_sign * TREND_DRIFT * sym.spec.vol_scale * dt
        diffusion = sigma * math.sqrt(dt)
        shock = draws.normal()
        dx = drift + diffusion * shock + jump
        sym.last_move = dx / diffusion
        self._observe(sym, sym.x + dx, dx, dt)
        return sym.spec.start_price * math.exp(sym.x)

    def _observe(self, sym: _Symbol, x: float, dx: float, dt: float) -> None:
        """Update the feature statistics with a new print at log price ``x``."""
        sigma_hat = math.sqrt(sym.var_r)
        a = dt / (TAU_CHANNEL + dt)
        sym.high = max(x, sym.high - a * (sym.high - x))
        sym.low = min(x, sym.low + a * (x - sym.low))
        # Breakouts are measured against a lagged channel, so a run of new highs shows as > 1.
        b = dt / (TAU_REF + dt)
        sym.ref_high += b * (sym.high - sym.ref_high)
        sym.ref_low += b * (sym.low - sym.ref_low)
        half = max((sym.ref_high - sym.ref_low) * 0.5, sigma_hat * math.sqrt(TAU_VOL))
        sym.breakout = (x - (sym.ref_high + sym.ref_low) * 0.5) / half
        sym.x = x
        sym.var_r += dt / (TAU_VOL + dt) * (dx * dx / dt - sym.var_r)
        sym.ema_fast += dt / (TAU_FAST + dt) * (x - sym.ema_fast)
        sym.ema_slow += dt / (TAU_SLOW + dt) * (x - sym.ema_slow)
        sym.ema_mom += dt / (TAU_MOM + dt) * (x - sym.ema_mom)
        sym.ema_z += dt / (TAU_Z + dt) * (x - sym.ema_z)
        dev = x - sym.ema_z
        sym.dev_var += dt / (TAU_DEV + dt) * (dev * dev - sym.dev_var)
        # Spreads widen with volatility and wander on their own (log-OU around the normal level).
        target = math.log(sym.spec.spread_bps * (0.6 + 0.4 * sigma_hat / (BASE_SIGMA * sym.spec.vol_scale)))
        b = dt / (TAU_SPREAD + dt)
        sym.log_spread += b * (target - sym.log_spread) + 0.15 * math.sqrt(b) * self._draws.normal()

    # -- observations --------------------------------------------------------------------
    def print_side_and_size(self, i: int) -> tuple[str, float, float]:
        """Aggressor side, size and half-spread (fraction) of a print on symbol ``i``."""
        sym = self._symbols[i]
        p_buy = 0.5 + 0.3 * math.tanh(sym.last_move)
        side = "BUY" if self._draws.uniform() < p_buy else "SELL"
        busy = math.sqrt(_PARAMS[sym.regime][1])
        size = sym.spec.lot * busy * math.exp(0.8 * self._draws.normal())
        return side, size, 0.5e-4 * math.exp(sym.log_spread)

    def features(self, i: int) -> dict[str, float]:
        """The engine features of symbol ``i`` now, keyed exactly by ``ENGINE_FEATURES``."""
        sym = self._symbols[i]
        sigma_hat = math.sqrt(sym.var_r)
        values = (
            (sym.ema_fast - sym.ema_slow) / (sigma_hat * math.sqrt(TAU_SLOW)),
            (sym.x - sym.ema_z) / math.sqrt(sym.dev_var + 1e-18),
            max(-5.0, min(5.0, sym.breakout)),
            (sym.x - sym.ema_mom) / (sigma_hat * math.sqrt(TAU_MOM)),
            sigma_hat * math.sqrt(60.0) * 1e4,
            math.exp(sym.log_spread),
        )
        return dict(zip(ENGINE_FEATURES, values, strict=True))

    def regime(self, i: int) -> Regime:
        """The hidden regime of symbol ``i`` (for tests and benchmarks, not for strategies)."""
        return self._symbols[i].regime

    def price(self, i: int) -> float:
        sym = self._symbols[i]
        return sym.spec.start_price * math.exp(sym.x)

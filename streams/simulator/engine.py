"""The simulated trading engine: market prints, strategy signals and their outcomes, in event time.

One :class:`Simulator` is a deterministic state machine. Prints arrive as a Poisson stream over all
symbols (``trades_per_second`` per symbol); after a random number of prints (``trades_per_signal``
on average) a randomly chosen strategy looks at the symbols' latest features, starting with the
symbol that just traded, and signals on the first where its indicator fires (else nothing). Each
signal closes after its holding time (earlier on a take-profit or stop-loss) with an outcome.

**The outcome's return comes from the hidden function, not from the price path**: the realised
unit return is ``oracle.expected_return(...) + noise`` (see :mod:`streams.simulator.oracle`),
the exit price is derived from it (``entry * (1 + side * gross)``, so entry, exit, fees and
``return_unit`` agree exactly), and the exit reason labels how far the return went. The price
path drives the features, so what a strategy observes and what it earns are linked only through
the hidden function, which is what a learner has to find.

Event time starts at ``SimConfig.start_us`` (2026-01-01 UTC) and advances with simulated time;
ids are ``f"{seed}-{n}"`` (events) and ``f"{seed}-sig-{n}"`` (signals). Same config, same events.

Example:
    >>> sim = Simulator(SimConfig(seed=1))
    >>> events = list(sim.events(1000))
    >>> sorted({e.topic for e in events})
    ['outcomes', 'signals', 'trades']
    >>> all(a.record["ts"] <= b.record["ts"] for a, b in zip(events, events[1:]))
    True
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from streams.errors import TradeloopError
from streams.simulator.config import SimConfig
from streams.simulator.draws import Draws
from streams.simulator.market import Market, Regime
from streams.simulator.oracle import expected_return, noise_sd
from streams.simulator.strategies import Strategy, build_strategies
from streams.topics import OUTCOMES, SIGNALS, TRADES

__all__ = ["SimEvent", "Simulator", "SimulatorError", "Sizer"]

# A sizer returns the multiplier, or (multiplier, model version) when a model chose it.
Sizer = Callable[[dict[str, Any]], float | tuple[float, str | None]]

_EXIT_SIGMAS = 1.5  # a return beyond this many noise sds closes early as take-profit / stop-loss


class SimulatorError(TradeloopError):
    """The simulator was misused, e.g. a sizing callback returned an invalid multiplier."""


class SimEvent(NamedTuple):
    """One simulated record: its logical topic, its Kafka key and the Avro-ready record dict."""

    topic: str
    key: str
    record: dict[str, Any]


class Simulator:
    """A reproducible simulated trading engine.

    Args:
        config: what to simulate; the seed fixes every draw.
        sizer: optional callback given each signal record (with ``action`` 1.0) that returns the
            size multiplier the engine applies; it becomes the signal's ``action`` and the
            outcome's ``size_multiplier``, and scales its ``pnl`` and ``fees``. It does not change
            the market or any other event, so sized and unsized runs stay comparable.
    """

    def __init__(self, config: SimConfig | None = None, sizer: Sizer | None = None) -> None:
        self.config = config = config or SimConfig()
        self._sizer = sizer
        self._market = Market(config)
        self._strategies: list[Strategy] = build_strategies(config.strategies_per_family)
        self._specs = config.symbol_specs()
        self._clock = Draws(config.seed, "clock")
        self._signal_draws = Draws(config.seed, "signals")
        self._outcome_draws = Draws(config.seed, "outcomes")
        self._mean_gap_us = 1e6 / (config.trades_per_second * config.symbols)
        self._next_trade_us = config.start_us + self._trade_gap()
        self._until_signal = self._signal_gap()
        self._queue: deque[SimEvent] = deque()
        self._open: list[tuple[int, int, SimEvent]] = []
        self._events = 0
        self._signals = 0
        self._oracle: dict[str, float] = {}
        self.counts: Counter[str] = Counter()

    # -- public API ------------------------------------------------------------------------
    @property
    def strategies(self) -> list[str]:
        return [s.name for s in self._strategies]

    @property
    def families(self) -> dict[str, str]:
        """Strategy name -> family."""
        return {s.name: s.family for s in self._strategies}

    @property
    def symbols(self) -> list[str]:
        return [s.name for s in self._specs]

    @property
    def stats(self) -> dict[str, int]:
        """Events per topic, regime entries per regime name, and ``gaps`` / ``news`` counts."""
        return {**self.counts, **self._market.stats}

    @property
    def open_positions(self) -> int:
        return len(self._open)

    def regime(self, symbol: str) -> Regime:
        """The hidden regime a symbol is in now (for tests and benchmarks only)."""
        return self._market.regime(self.symbols.index(symbol))

    def news_times(self, symbol: str, until_seconds: float) -> list[float]:
        """Scheduled news shocks of ``symbol``, in seconds after the start, up to ``until_seconds``."""
        return self._market.news_times(self.symbols.index(symbol), until_seconds)

    def events(self, n_events: int | None = None) -> Iterator[SimEvent]:
        """The next ``n_events`` events in event-time order (endless when None).

        Successive calls continue the same stream; signals still open at the end have their
        outcomes later in the stream.
        """
        produced = 0
        while n_events is None or produced < n_events:
            yield self._next(True)
            produced += 1

    def backfill(self, n_pairs: int) -> Iterator[SimEvent]:
        """``n_pairs`` new signals, their outcomes and every print until the last one closes."""
        target = self._signals + n_pairs
        while self._signals < target or self._queue or self._open:
            yield self._next(self._signals < target)

    def oracle(self, signal_id: str) -> float:
        """The true expected unit return of a signal (for benchmarks; never give it to a learner).

        Raises:
            KeyError: no signal with that id was simulated.
        """
        return self._oracle[signal_id]

    def oracle_table(self) -> dict[str, float]:
        return dict(self._oracle)

    # -- event generation ------------------------------------------------------------------
    def _trade_gap(self) -> int:
        return max(1, int(self._clock.exponential() * self._mean_gap_us))

    def _signal_gap(self) -> int:
        return 1 + self._clock.randrange(2 * self.config.trades_per_signal - 1)

    def _event_id(self) -> str:
        self._events += 1
        return f"{self.config.seed}-{self._events}"

    def _emit(self, event: SimEvent) -> SimEvent:
        event.record["event_id"] = self._event_id()
        self.counts[event.topic] += 1
        return event

    def _next(self, signals_open: bool) -> SimEvent:
        if self._queue:
            return self._emit(self._queue.popleft())
        if self._open and self._open[0][0] <= self._next_trade_us:
            return self._emit(heapq.heappop(self._open)[2])
        t_us = self._next_trade_us
        self._next_trade_us = t_us + self._trade_gap()
        i = self._clock.randrange(len(self._specs))
        trade = self._trade(i, t_us)
        if signals_open:
            self._until_signal -= 1
            if self._until_signal <= 0:
                self._until_signal = self._signal_gap()
                self._try_signal(i, t_us)
        return self._emit(trade)

    def _trade(self, i: int, t_us: int) -> SimEvent:
        spec = self._specs[i]
        mid = self._market.update(i, (t_us - self.config.start_us) / 1e6)
        side, size, half_spread = self._market.print_side_and_size(i)
        price = mid * (1.0 + half_spread) if side == "BUY" else mid * (1.0 - half_spread)
        record = {
            "event_id": "",
            "ts": t_us,
            "symbol": spec.name,
            "price": round(price, spec.decimals),
            "size": max(round(size, 6), 1e-6),
            "side": side,
        }
        return SimEvent(TRADES, spec.name, record)

    def _try_signal(self, i: int, t_us: int) -> None:
        # A uniformly chosen strategy scans the symbols, starting with the one that just traded,
        # and fires on the first whose latest features trigger it. Picking the strategy first
        # keeps every strategy about equally active whatever its selectivity.
        strategy = self._strategies[self._signal_draws.randrange(len(self._strategies))]
        n = len(self._specs)
        for k in range(n):
            symbol = (i + k) % n
            features = self._market.features(symbol)
            decision = strategy.decide(features, self._signal_draws)
            if decision is not None:
                self._signal(strategy, symbol, t_us, features, *decision)
                return

    def _signal(
        self, strategy: Strategy, i: int, t_us: int, features: dict[str, float], side: str, score: float
    ) -> None:
        cfg = self.config
        spec = self._specs[i]
        signal_id = f"{cfg.seed}-sig-{self._signals}"
        self._signals += 1
        mid = self._market.price(i)
        horizon = cfg.holding_seconds * strategy.horizon_factor
        record: dict[str, Any] = {
            "event_id": "",
            "ts": t_us,
            "signal_id": signal_id,
            "strategy": strategy.name,
            "family": strategy.family,
            "portfolio": cfg.portfolio,
            "symbol": spec.name,
            "side": side,
            "price": round(mid, spec.decimals),
            "score": score,
            "features": features,
            "horizon_seconds": horizon,
            "action": 1.0,
            "model_version": None,
        }
        action, record["model_version"] = self._size(record)
        record["action"] = action
        self._queue.append(SimEvent(SIGNALS, spec.name, record))

        expected = expected_return(strategy.family, side, features, cfg.fee_round_trip)
        self._oracle[signal_id] = expected
        sd = noise_sd(features, horizon)
        realised = expected + sd * self._outcome_draws.normal()
        gross = max(-0.5, min(0.5, realised + cfg.fee_round_trip))
        direction = 1.0 if side == "BUY" else -1.0
        entry = mid * (1.0 + direction * 0.5e-4 * features["eng_spread_bps"])
        if gross >= _EXIT_SIGMAS * sd:
            reason, held = "TAKE_PROFIT", 0.3 + 0.7 * self._outcome_draws.uniform()
        elif gross <= -_EXIT_SIGMAS * sd:
            reason, held = "STOP_LOSS", 0.3 + 0.7 * self._outcome_draws.uniform()
        else:
            reason, held = "TIME", 1.0
        close_us = t_us + max(1, int(horizon * held * 1e6))
        notional = cfg.notional * action
        outcome = {
            "event_id": "",
            "ts": close_us,
            "signal_id": signal_id,
            "symbol": spec.name,
            "strategy": strategy.name,
            "entry_price": entry,
            "exit_price": entry * (1.0 + direction * gross),
            "size_multiplier": action,
            "return_unit": gross - cfg.fee_round_trip,
            "pnl": (gross - cfg.fee_round_trip) * notional,
            "fees": cfg.fee_round_trip * notional,
            "exit_reason": reason,
            "side": side,
        }
        heapq.heappush(self._open, (close_us, self._signals, SimEvent(OUTCOMES, spec.name, outcome)))

    def _size(self, record: dict[str, Any]) -> tuple[float, str | None]:
        if self._sizer is None:
            return 1.0, None
        view = {**record, "features": dict(record["features"])}  # the callback cannot alter the signal
        answer = self._sizer(view)
        multiplier, version = answer if isinstance(answer, tuple) else (answer, None)
        if not isinstance(multiplier, int | float) or not math.isfinite(multiplier) or multiplier < 0:
            raise SimulatorError(
                f"sizer returned {multiplier!r} for {record['signal_id']}; need a finite value >= 0"
            )
        return float(multiplier), version

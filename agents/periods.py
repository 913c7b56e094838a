"""Allocation periods: per portfolio and tumbling event-time period, the allocator's inputs.

The join sends, per batch and portfolio, one internal record with what each experience with a
return (COMPLETE and CORRECTION) contributes (:func:`period_inputs`: id, strategy, return, outcome
time, premium flag and the 8 market features at signal time), so a period hop costs one Faust
record per join batch, not one per experience. Each contribution is assigned to the period
containing its outcome time. A period closes when the portfolio's outcome watermark passes its end plus
``join_grace_seconds`` (or, when the portfolio has been idle for ``idle_expiry_seconds``, when the
watermark advanced by the idle wall time does); an experience later than that counts in the oldest
open period. Strategies are listed in sorted order of their names, growing as new ones appear, and
every per-strategy array follows that order. docs/agents.md lists the 8 market, 6 portfolio and 4
regime features.

Example:
    >>> from streams.config.agents import AgentSettings
    >>> p = PortfolioState("main", AgentSettings(allocation_period_seconds=60))
    >>> p.add(Contribution("e1", "a", 0.01, 30_000_000, False, None))
    >>> [r["strategy_returns"] for r in p.close_until(200_000_000)]
    [[0.01], [0.0]]
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np

from agents.journal import Journal, Write
from agents.packing import join_bytes, split_bytes
from agents.validate import DUPLICATE, Inbound, RecentIds
from streams.config.agents import AgentSettings
from streams.deadletter import STAGE_DECODE, STAGE_DEDUP, DeadLetter
from streams.features import SIZER_SPEC, STREAM_FEATURES

__all__ = [
    "MARKET_FEATURES",
    "PERIOD_NAMESPACE",
    "Contribution",
    "Periods",
    "PeriodsBatch",
    "PortfolioState",
    "market_of",
    "period_inputs",
]

PERIOD_NAMESPACE: Final = uuid.UUID("4e6a1b9c-8d2f-4f3a-b7e5-2a9c0d8e6f14")
MARKET_FEATURES: Final = (
    "ret_5m", "ret_30m", "rv_5m", "rv_30m", "rv_ratio_1m_30m", "ema_cross", "volume_z", "drawdown_30m",
)  # fmt: skip
_OFFSET: Final = len(SIZER_SPEC.signal) + len(SIZER_SPEC.engine)
_MARKET_IDX: Final = [_OFFSET + STREAM_FEATURES.index(n) for n in MARKET_FEATURES]
_CROSS, _RATIO, _RET30 = (MARKET_FEATURES.index(n) for n in ("ema_cross", "rv_ratio_1m_30m", "ret_30m"))
MAX_EMPTY_PERIODS: Final = 1000  # a longer gap emits this many empty periods, then jumps
BAD_PERIOD_INPUT: Final = "bad_period_input"
MAX_CONTRIBUTIONS: Final = 1000


class Contribution(NamedTuple):
    """What one experience with a return adds to its portfolio's period."""

    event_id: str
    strategy: str
    return_unit: float
    outcome_ts: int
    premium: bool
    market: Sequence[float] | None  # MARKET_FEATURES at signal time; None without a full state


def market_of(state: Sequence[float]) -> list[float] | None:
    """The MARKET_FEATURES of an experience's state vector; None when it is not a full vector."""
    return [state[i] for i in _MARKET_IDX] if len(state) == SIZER_SPEC.size else None


def period_inputs(experiences: Iterable[Mapping[str, Any]]) -> list[tuple[str, bytes]]:
    """The internal period records of a join batch: (portfolio, value), one per portfolio and chunk.

    Censored experiences (no return) contribute nothing and are left out. A record holds at most
    :data:`MAX_CONTRIBUTIONS` contributions (about 400 kB), under Kafka's default message size.
    """
    by_portfolio: dict[str, list[Mapping[str, Any]]] = {}
    for exp in experiences:
        if exp["return_unit"] is not None:
            by_portfolio.setdefault(exp["portfolio"], []).append(exp)
    chunks = [
        (portfolio, rows[i : i + MAX_CONTRIBUTIONS])
        for portfolio, rows in by_portfolio.items()
        for i in range(0, len(rows), MAX_CONTRIBUTIONS)
    ]
    out = []
    for portfolio, rows in chunks:
        markets = [market_of(r["state"]) for r in rows]
        texts = [[r["event_id"] for r in rows], [r["strategy"] for r in rows], [r["outcome_ts"] for r in rows],
                 [r["premium"] for r in rows], [m is not None for m in markets]]  # fmt: skip
        floats = [r["return_unit"] for r in rows]
        for market in markets:
            floats += market or []
        out.append((portfolio, join_bytes(texts, floats)))
    return out


def _contributions(value: bytes) -> list[Contribution]:
    (ids, strategies, outcome_ts, premium, full), floats, _ = split_bytes(value)
    n = len(ids)
    if not n == len(strategies) == len(outcome_ts) == len(premium) == len(full):
        raise ValueError("columns of different lengths")
    width = len(MARKET_FEATURES)
    returns, market = floats[:n], floats[n:]
    out, at = [], 0
    for i in range(n):
        values = None
        if full[i]:
            values, at = market[at : at + width], at + width
        out.append(Contribution(ids[i], strategies[i], returns[i], outcome_ts[i], premium[i], values))
    if at != len(market):
        raise ValueError("market values do not match the contributions")
    return out


def _sharpe(returns: list[float]) -> float:
    if len(returns) < 2:
        return 0.0
    arr = np.array(returns)
    std = float(arr.std())
    return float(arr.mean()) / std if std > 0 else 0.0


def _drawdown(returns: list[float]) -> float:
    """Current drawdown (>= 0) of the cumulative return path over ``returns`` from its running peak."""
    path = np.cumsum(returns)
    return float(max(0.0, float(path.max(initial=0.0))) - (path[-1] if len(path) else 0.0))


@dataclass(slots=True)
class _Open:
    """One open period: sums only, so its persisted state stays small however busy the period."""

    returns: dict[str, float] = field(default_factory=dict)
    trades: int = 0
    wins: int = 0
    premium: int = 0
    with_state: int = 0
    market_sum: list[float] = field(default_factory=lambda: [0.0] * len(MARKET_FEATURES))
    cross_sign: float = 0.0
    ratio_high: int = 0
    ret30_up: int = 0

    def to_json(self) -> list[Any]:
        return [self.returns, self.trades, self.wins, self.premium, self.with_state, self.market_sum,
                self.cross_sign, self.ratio_high, self.ret30_up]  # fmt: skip


class PortfolioState:
    """Open periods, strategy history and watermark of one portfolio."""

    def __init__(self, portfolio: str, settings: AgentSettings) -> None:
        self.portfolio = portfolio
        self.period_us = int(settings.allocation_period_seconds * 1_000_000)
        self.grace_us = int(settings.join_grace_seconds * 1_000_000)
        self.history_len = settings.allocation_history
        self.open: dict[int, _Open] = {}
        self.next_start: int | None = None  # start of the oldest period not yet emitted
        self.strategies: list[str] = []
        self.history: dict[str, list[float]] = {}
        self.portfolio_returns: list[float] = []
        self.cumulative = 0.0
        self.peak = 0.0
        self.wm = 0
        self.offsets: dict[int, int] = {}
        self.ids = RecentIds(settings.dedup_window)
        self.partition = 0
        self.seen_wall = 0

    def add(self, c: Contribution) -> None:
        """Count one experience with a return into the period of its outcome time."""
        start = c.outcome_ts // self.period_us * self.period_us
        if self.next_start is None:
            self.next_start = start
        start = max(start, self.next_start)  # late: the oldest open period takes it
        slot = self.open.setdefault(start, _Open())
        slot.returns[c.strategy] = slot.returns.get(c.strategy, 0.0) + c.return_unit
        slot.trades += 1
        slot.wins += c.return_unit > 0
        slot.premium += bool(c.premium)
        if c.market is not None:
            slot.with_state += 1
            slot.market_sum = [a + b for a, b in zip(slot.market_sum, c.market, strict=True)]
            slot.cross_sign += float(np.sign(c.market[_CROSS]))
            slot.ratio_high += c.market[_RATIO] > 1.5
            slot.ret30_up += c.market[_RET30] > 0
        if c.strategy not in self.history:
            self.history[c.strategy] = []
            self.strategies = sorted(self.history)
        self.wm = max(self.wm, c.outcome_ts)

    def close_until(self, watermark: int) -> list[dict[str, Any]]:
        """Emit every period whose end + grace is at or before ``watermark``, oldest first."""
        records = []
        emitted = 0
        while self.next_start is not None and self.next_start + self.period_us + self.grace_us <= watermark:
            start = self.next_start
            records.append(self._close(start, self.open.pop(start, _Open())))
            emitted += 1
            self.next_start = start + self.period_us
            if emitted >= MAX_EMPTY_PERIODS and not self.open:
                self.next_start = None
                break
        return records

    def _close(self, start: int, slot: _Open) -> dict[str, Any]:
        returns = [slot.returns.get(s, 0.0) for s in self.strategies]
        for strategy, value in zip(self.strategies, returns, strict=True):
            self.history[strategy] = [*self.history[strategy], value][-self.history_len :]
        period_return = float(np.mean(returns)) if returns else 0.0  # equal weights
        self.cumulative += period_return
        self.peak = max(self.peak, self.cumulative)
        self.portfolio_returns = [*self.portfolio_returns, period_return][-self.history_len :]
        market, regime = [0.0] * len(MARKET_FEATURES), [0.0] * 4
        n = slot.with_state
        if n:
            market = [total / n for total in slot.market_sum]
            regime = [slot.cross_sign / n, slot.ratio_high / n, slot.ret30_up / n, 0.0]
        regime[3] = slot.premium / slot.trades if slot.trades else 0.0
        portfolio_state = [
            period_return,
            self.cumulative,
            self.peak - self.cumulative,
            float(np.std(self.portfolio_returns)),
            math.log1p(slot.trades),
            slot.wins / slot.trades if slot.trades else 0.0,
        ]
        end = start + self.period_us
        return {
            "event_id": uuid.uuid5(PERIOD_NAMESPACE, f"{self.portfolio}/{start}").hex,
            "ts": end, "portfolio": self.portfolio, "period_start": start,
            "period_seconds": self.period_us / 1e6, "strategies": list(self.strategies),
            "strategy_returns": returns, "market": market, "portfolio_state": portfolio_state,
            "strategy_sharpe": [_sharpe(self.history[s]) for s in self.strategies],
            "strategy_drawdown": [_drawdown(self.history[s]) for s in self.strategies],
            "regime": regime, "trades": slot.trades,
        }  # fmt: skip

    def core(self) -> bytes:
        periods = {str(k): v.to_json() for k, v in self.open.items()}
        doc = {
            "open": periods,
            "next": self.next_start, "history": self.history, "pr": self.portfolio_returns,
            "cum": self.cumulative, "peak": self.peak, "wm": self.wm, "offsets": self.offsets,
            "ids": self.ids.count, "partition": self.partition,
        }  # fmt: skip
        return json.dumps(doc, separators=(",", ":")).encode()

    def restore(self, data: bytes, chunks: Iterable[tuple[int, bytes]]) -> None:
        doc = json.loads(data)
        self.open = {int(k): _Open(*v) for k, v in doc["open"].items()}
        self.next_start = doc["next"]
        self.history = doc["history"]
        self.strategies = sorted(self.history)
        self.portfolio_returns = doc["pr"]
        self.cumulative, self.peak, self.wm = doc["cum"], doc["peak"], doc["wm"]
        self.offsets = {int(p): o for p, o in doc["offsets"].items()}
        self.partition = doc["partition"]
        self.ids.restore(doc["ids"], chunks)


@dataclass(slots=True)
class PeriodsBatch:
    periods: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


class Periods:
    """Allocation periods of every portfolio, from the join's period records keyed by portfolio."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.idle_us = int(settings.idle_expiry_seconds * 1_000_000)
        self.portfolios: dict[str, PortfolioState] = {}
        self.journal = Journal()

    def handle(self, messages: Iterable[Inbound], now: int) -> PeriodsBatch:
        out = PeriodsBatch()
        touched: dict[str, PortfolioState] = {}
        for msg in messages:
            try:
                contributions = _contributions(msg.value)
            except (ValueError, TypeError, KeyError, IndexError) as exc:  # only the join writes these
                out.dead.append(msg.reject(STAGE_DECODE, BAD_PERIOD_INPUT, f"{type(exc).__name__}: {exc}"))
                continue
            state = self._portfolio((msg.key or b"").decode())
            if msg.offset <= state.offsets.get(msg.partition, -1):
                continue  # redelivered after a restart: already counted
            state.offsets[msg.partition] = msg.offset
            state.partition = msg.partition
            state.seen_wall = now
            touched[state.portfolio] = state
            for c in contributions:
                if not state.ids.add(c.event_id):
                    out.dead.append(msg.reject(STAGE_DEDUP, DUPLICATE, f"experience {c.event_id} seen"))
                    continue
                state.add(c)
        for state in touched.values():
            out.periods.extend((state.portfolio, r) for r in state.close_until(state.wm))
            out.writes.extend(self._writes(state))
        return out

    def tick(self, now: int) -> PeriodsBatch:
        """Close periods of portfolios idle for ``idle_expiry_seconds``, by watermark + idle time."""
        out = PeriodsBatch()
        for state in self.portfolios.values():
            idle = now - state.seen_wall
            if idle >= self.idle_us and state.next_start is not None:
                records = state.close_until(state.wm + idle)
                if records:
                    out.periods.extend((state.portfolio, r) for r in records)
                    out.writes.extend(self._writes(state))
        return out

    def _portfolio(self, name: str) -> PortfolioState:
        found = self.portfolios.get(name)
        if found is None:
            found = self.portfolios[name] = PortfolioState(name, self.settings)
        return found

    def _writes(self, state: PortfolioState) -> list[Write]:
        parts: dict[str, bytes | None] = {f"D{i}": v for i, v in state.ids.dirty_chunks().items()}
        parts["core"] = state.core()
        return self.journal.record(state.partition, state.portfolio, parts)

    def load(self, items: Iterable[tuple[bytes, bytes]], now: int, partitions: Collection[int] | None = None) -> None:
        """Rebuild every portfolio from persisted keys; with ``partitions``, only those held here."""
        self.portfolios.clear()
        for name, parts in self.journal.load(items).items():
            state = PortfolioState(name, self.settings)
            chunks = [(int(k[1:]), v) for k, v in parts.items() if k.startswith("D")]
            state.restore(parts["core"], chunks)
            if partitions is not None and state.partition not in partitions:
                self.journal.forget(name)
                continue
            state.seen_wall = now
            self.portfolios[name] = state

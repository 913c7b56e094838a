"""Allocation periods: per portfolio and tumbling event-time period, the allocator's inputs.

Experiences with a return (COMPLETE and CORRECTION) are assigned to the period containing their
outcome time. A period closes when the portfolio's outcome watermark passes its end plus
``join_grace_seconds`` (or, when the portfolio has been idle for ``idle_expiry_seconds``, when the
watermark advanced by the idle wall time does); an experience later than that counts in the oldest
open period. Strategies are listed in sorted order of their names, growing as new ones appear, and
every per-strategy array follows that order. docs/agents.md lists the 8 market, 6 portfolio and 4
regime features.

Example:
    >>> from streams.config.agents import AgentSettings
    >>> p = PortfolioState("main", AgentSettings(allocation_period_seconds=60))
    >>> p.add({"strategy": "a", "return_unit": 0.01, "outcome_ts": 30_000_000, "state": [], "premium": False})
    >>> [r["strategy_returns"] for r in p.close_until(200_000_000)]
    [[0.01], [0.0]]
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from agents.deadletter import DeadLetter
from agents.journal import Journal, Write
from agents.validate import DUPLICATE, STAGE_DECODE, STAGE_DEDUP, Inbound, RecentIds
from streams.codec import Codec
from streams.config.agents import AgentSettings
from streams.errors import SchemaDecodeError
from streams.features import SIZER_SPEC, STREAM_FEATURES

__all__ = ["MARKET_FEATURES", "PERIOD_NAMESPACE", "Periods", "PeriodsBatch", "PortfolioState"]

PERIOD_NAMESPACE: Final = uuid.UUID("4e6a1b9c-8d2f-4f3a-b7e5-2a9c0d8e6f14")
MARKET_FEATURES: Final = (
    "ret_5m", "ret_30m", "rv_5m", "rv_30m", "rv_ratio_1m_30m", "ema_cross", "volume_z", "drawdown_30m",
)  # fmt: skip
_OFFSET: Final = len(SIZER_SPEC.signal) + len(SIZER_SPEC.engine)
_MARKET_IDX: Final = [_OFFSET + STREAM_FEATURES.index(n) for n in MARKET_FEATURES]
_CROSS, _RATIO, _RET30 = (
    _OFFSET + STREAM_FEATURES.index(n) for n in ("ema_cross", "rv_ratio_1m_30m", "ret_30m")
)
MAX_EMPTY_PERIODS: Final = 1000  # a longer gap emits this many empty periods, then jumps


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
    returns: dict[str, float] = field(default_factory=dict)
    trades: int = 0
    wins: int = 0
    premium: int = 0
    states: list[list[float]] = field(default_factory=list)


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

    def add(self, exp: dict[str, Any]) -> None:
        """Count one experience with a return into the period of its outcome time."""
        start = exp["outcome_ts"] // self.period_us * self.period_us
        if self.next_start is None:
            self.next_start = start
        start = max(start, self.next_start)  # late: the oldest open period takes it
        slot = self.open.setdefault(start, _Open())
        strategy = exp["strategy"]
        slot.returns[strategy] = slot.returns.get(strategy, 0.0) + exp["return_unit"]
        slot.trades += 1
        slot.wins += exp["return_unit"] > 0
        slot.premium += bool(exp["premium"])
        slot.states.append(list(exp["state"]))
        if strategy not in self.history:
            self.history[strategy] = []
            self.strategies = sorted(self.history)
        self.wm = max(self.wm, exp["outcome_ts"])

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
        rows = [st for st in slot.states if len(st) == SIZER_SPEC.size]
        states = np.array(rows) if rows else np.zeros((0, SIZER_SPEC.size))
        market, regime = [0.0] * len(MARKET_FEATURES), [0.0] * 4
        if len(states):
            market = states[:, _MARKET_IDX].mean(axis=0).tolist()
            regime = [
                float(np.sign(states[:, _CROSS]).mean()),
                float((states[:, _RATIO] > 1.5).mean()),
                float((states[:, _RET30] > 0).mean()),
                0.0,
            ]
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
        periods = {str(k): [v.returns, v.trades, v.wins, v.premium, v.states] for k, v in self.open.items()}
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
    """Allocation periods of every portfolio, from experiences keyed by portfolio."""

    def __init__(self, settings: AgentSettings, codec: Codec) -> None:
        self.settings = settings
        self.codec = codec
        self.idle_us = int(settings.idle_expiry_seconds * 1_000_000)
        self.portfolios: dict[str, PortfolioState] = {}
        self.journal = Journal()

    def handle(self, messages: Iterable[Inbound], now: int) -> PeriodsBatch:
        out = PeriodsBatch()
        touched: dict[str, PortfolioState] = {}
        for msg in messages:
            try:
                exp = self.codec.decode("experiences", msg.value)
            except SchemaDecodeError as exc:
                out.dead.append(msg.reject(STAGE_DECODE, exc.reason, exc.detail))
                continue
            state = self._portfolio(exp["portfolio"])
            if msg.offset <= state.offsets.get(msg.partition, -1):
                continue  # redelivered after a restart: already counted
            state.offsets[msg.partition] = msg.offset
            state.partition = msg.partition
            state.seen_wall = now
            touched[state.portfolio] = state
            if exp["return_unit"] is None:
                continue  # CENSORED: no return to count
            if not state.ids.add(exp["event_id"]):
                out.dead.append(msg.reject(STAGE_DEDUP, DUPLICATE, f"experience {exp['event_id']} seen"))
                continue
            state.add(exp)
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

    def load(self, items: Iterable[tuple[bytes, bytes]], now: int) -> None:
        self.portfolios.clear()
        for name, parts in self.journal.load(items).items():
            state = self._portfolio(name)
            chunks = [(int(k[1:]), v) for k, v in parts.items() if k.startswith("D")]
            state.restore(parts["core"], chunks)
            state.seen_wall = now

"""A broker-free harness that drives Market and Joiner the way the worker does."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from agents.join import JoinBatch, Joiner
from agents.market import Market
from streams.config.agents import AgentSettings
from tests.unit.agents.builders import CODEC, SECOND, T0, inbound, trade

NOW = T0 + 3600 * SECOND  # wall clock in these tests: an hour after the data's start


class Harness:
    def __init__(self, settings: AgentSettings | None = None) -> None:
        self.settings = settings or AgentSettings(join_grace_seconds=5, idle_expiry_seconds=2)
        self.market = Market(self.settings, CODEC)
        self.joiner = Joiner(self.settings, CODEC, self.market)
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)
        self.table: dict[bytes, bytes] = {}
        self.experiences: list[tuple[str, dict[str, Any]]] = []
        self.dead: list[Any] = []
        self.now = NOW
        self.trade_no = 0

    def _take(self, batch: JoinBatch) -> JoinBatch:
        self.experiences.extend(batch.experiences)
        self.dead.extend(batch.dead)
        for _, key, value in batch.writes:
            if value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        return batch

    def msg(self, topic: str, record: dict[str, Any], partition: int = 0, route: int | None = None) -> Any:
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        return inbound(topic, record, offset, partition, route=route)

    def trades(
        self, start: int, end: int, step: int = SECOND, symbol: str = "BTC", price: float = 100.0
    ) -> None:
        msgs = []
        for ts in range(start, end, step):
            self.trade_no += 1
            msgs.append(self.msg("trades", trade(f"{symbol}-{self.trade_no}", ts, symbol, price)))
        self.market.handle(msgs, self.now)

    def feed(self, *items: tuple[str, dict[str, Any]], partition: int = 0) -> JoinBatch:
        return self._take(self.joiner.handle([self.msg(t, r, partition) for t, r in items], self.now))

    def tick(self, advance_seconds: float = 0.0) -> JoinBatch:
        self.now += int(advance_seconds * SECOND)
        return self._take(self.joiner.tick(self.now))

    def by_key(self) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["signal_id"], r["revision"]): r for _, r in self.experiences}

    def encoded(self) -> dict[tuple[str, int], bytes]:
        return {(r["signal_id"], r["revision"]): CODEC.encode("experiences", r) for _, r in self.experiences}

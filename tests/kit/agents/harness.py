"""A broker-free harness that drives Market and Joiner the way the worker does."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from agents.join import JoinBatch, Joiner
from agents.market import Market
from streams.config.agents import AgentSettings
from tests.kit.agents.builders import CODEC, SECOND, T0, inbound, trade

NOW = T0 + 3600 * SECOND  # wall clock in these tests: an hour after the data's start


class Harness:
    def __init__(self, settings: AgentSettings | None = None, partitions: int = 1) -> None:
        self.settings = settings or AgentSettings(join_grace_seconds=5, idle_expiry_seconds=2)
        self.market = Market(self.settings, CODEC, partitions)
        self.joiner = Joiner(self.settings, CODEC, self.market)
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)
        self.table: dict[bytes, bytes] = {}
        self.experiences: list[tuple[str, dict[str, Any]]] = []
        self.values: dict[tuple[str, int], bytes] = {}
        self.snapshots: list[tuple[str, dict[str, Any]]] = []
        self.dead: list[Any] = []
        self.now = NOW
        self.trade_no = 0

    def _take(self, batch: JoinBatch) -> JoinBatch:
        self.experiences.extend((e.key, e.record) for e in batch.experiences)
        self.values.update({(e.record["signal_id"], e.record["revision"]): e.value for e in batch.experiences})
        self.dead.extend(batch.dead)
        for _, key, value in batch.writes:
            if value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        return batch

    def msg(self, topic: str, record: dict[str, Any], partition: int = 0, route: int | None = None,
            key: bytes | None = None) -> Any:  # fmt: skip
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        return inbound(topic, record, offset, partition, key=key, route=route)

    def trades(
        self, start: int, end: int, step: int = SECOND, symbol: str = "BTC", price: float = 100.0
    ) -> None:
        msgs = []
        for ts in range(start, end, step):
            self.trade_no += 1
            msgs.append(self.msg("trades", trade(f"{symbol}-{self.trade_no}", ts, symbol, price)))
        self.market.handle(msgs, self.now)

    def join(self, messages: list[Any]) -> JoinBatch:
        """Decode, validate and join ``messages`` as the worker's join agent does."""
        events, dead = self.market.inputs.events(messages, self.now)
        batch = self.joiner.handle(events, self.now)
        batch.dead[:0] = dead
        return self._take(batch)

    def feed(self, *items: tuple[str, dict[str, Any]], partition: int = 0) -> JoinBatch:
        return self.join([self.msg(t, r, partition) for t, r in items])

    def tick(self, advance_seconds: float = 0.0) -> JoinBatch:
        self.now += int(advance_seconds * SECOND)
        return self._take(self.joiner.tick(self.now))

    def by_key(self) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["signal_id"], r["revision"]): r for _, r in self.experiences}

    def encoded(self) -> dict[tuple[str, int], bytes]:
        """The sealed bytes of every experience, as the worker produces them."""
        return dict(self.values)

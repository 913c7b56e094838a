"""A deterministic stream of engine events covering every join case, and its expected experiences.

The expectation comes from the pure handlers (Market + Joiner in one process); because join
decisions depend only on the order of events within a lane, a worker consuming the same
topics must produce exactly these records, byte for byte, whether the events travel one per
record or many per batch record.

Signals and outcomes are keyed by symbol (the contract), except every fifth pair, which is keyed by
signal id as 0.1 engines did: the worker forwards those to their symbol's partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.config.agents import AgentSettings
from streams.kafka.partitioning import partition_for
from tests.kit.agents.builders import SECOND, T0, outcome, signal, trade
from tests.kit.agents.harness import Harness

SYMBOLS = ("BTC", "ETH")
END = T0 + 600 * SECOND  # last regular trade
# one signal+outcome pair per partition pushes every watermark past all deadlines
SENTINEL = T0 + 700 * SECOND
LAST_TRADES = T0 + 720 * SECOND

Event = tuple[str, str, dict[str, Any]]  # (topic, key, record)


def scenario_settings(**overrides: Any) -> AgentSettings:
    return AgentSettings(**{"join_grace_seconds": 5, "idle_expiry_seconds": 20, **overrides})


def partition_of(key: str, partitions: int) -> int:
    """The partition our producers give ``key``: Kafka's default (murmur2) partitioner."""
    return partition_for(key.encode(), partitions)


@dataclass
class Scenario:
    trades: list[Event] = field(default_factory=list)
    joins: list[Event] = field(default_factory=list)  # signals and outcomes in production order
    late: list[Event] = field(default_factory=list)  # outcomes produced after the sentinels
    signal_ids: list[str] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        return self.trades + self.joins + self.late


def build(n_signals: int = 60, seed: int = 7, partitions: int = 3, prefix: str = "sig") -> Scenario:
    """Trades every ~0.5 s per symbol; signals every 8 s; six outcome patterns (see comments)."""
    rng = np.random.default_rng(seed)
    sc = Scenario()
    for symbol in SYMBOLS:
        ts = T0 + np.cumsum(rng.integers(200_000, 800_000, 1400))
        ts = ts[ts < END]
        prices = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, len(ts))))
        for i, (t, p) in enumerate(zip(ts.tolist(), prices.tolist(), strict=True)):
            side = "BUY" if rng.random() < 0.5 else "SELL"
            sc.trades.append(
                ("trades", symbol, trade(f"{symbol}-{i}", t, symbol, p, float(rng.uniform(0.1, 3)), side))
            )
        for j, t in enumerate(range(LAST_TRADES, LAST_TRADES + 3 * SECOND, SECOND)):
            sc.trades.append(("trades", symbol, trade(f"{symbol}-last-{j}", t, symbol, float(prices[-1]))))
    step = (540 - 60) * SECOND // max(1, n_signals)
    for i in range(n_signals):
        sid = f"{prefix}-{i:04d}"
        key = sid if i % 5 == 4 else SYMBOLS[i % 2]  # every fifth pair keyed by signal id (0.1 keying)
        sc.signal_ids.append(sid)
        ts = T0 + 60 * SECOND + i * step + int(rng.integers(0, SECOND))
        sig = signal(sid, ts, symbol=SYMBOLS[i % 2], horizon=30.0, score=float(rng.uniform(0, 1)),
                     strategy=f"strat-{i % 3}", features={"eng_momentum": float(rng.normal())})  # fmt: skip
        out = outcome(sid, ts + int(rng.integers(10, 25)) * SECOND, float(rng.normal(0, 0.01)),
                      symbol=SYMBOLS[i % 2], strategy=f"strat-{i % 3}")  # fmt: skip
        kind = i % 6
        if kind == 0:  # no outcome ever: CENSORED
            sc.joins.append(("signals", key, sig))
        elif kind == 1:  # outcome after the watermark passed the deadline: CENSORED then CORRECTION
            sc.joins.append(("signals", key, sig))
            sc.late.append(("outcomes", key, {**out, "ts": ts + 40 * SECOND}))
        elif kind == 2:  # outcome produced before its signal: COMPLETE
            sc.joins += [("outcomes", key, out), ("signals", key, sig)]
        elif kind == 3:  # the signal twice: one experience, one dead letter
            sc.joins += [("signals", key, sig), ("signals", key, sig), ("outcomes", key, out)]
        elif kind == 4:  # two outcomes with different ids: the second is dead-lettered
            dup = {**out, "event_id": f"{out['event_id']}-again", "return_unit": 0.5}
            sc.joins += [("signals", key, sig), ("outcomes", key, out), ("outcomes", key, dup)]
        else:
            sc.joins += [("signals", key, sig), ("outcomes", key, out)]
    # Sentinels move every join lane's watermarks past the data, since the join keeps its clocks
    # per lane (see agents.join): per symbol, one pair keyed by symbol (lane (p, p)) and one keyed
    # by a signal id on each source partition (the forwarded lanes).
    for symbol in SYMBOLS:
        sentinels = [f"{prefix}-sentinel-{symbol}"]
        covered: set[int] = set()
        k = 0
        while len(covered) < partitions:
            sid = f"{prefix}-sentinel-{symbol}-{k}"
            k += 1
            if partition_of(sid, partitions) not in covered:
                covered.add(partition_of(sid, partitions))
                sentinels.append(sid)
        for n, sid in enumerate(sentinels):
            key = symbol if n == 0 else sid
            sc.signal_ids.append(sid)
            sc.joins.append(("signals", key, signal(sid, SENTINEL, symbol=symbol, horizon=5.0)))
            sc.joins.append(("outcomes", key, outcome(sid, SENTINEL + SECOND, 0.001, symbol=symbol)))
    return sc


def coordinates(key: str, record: dict[str, Any], partitions: int) -> tuple[int, int | None]:
    """(source partition, route or None): where the producer puts an event, where the join takes it."""
    source, home = partition_of(key, partitions), partition_of(record["symbol"], partitions)
    return source, (None if source == home else home)


def expected(sc: Scenario, settings: AgentSettings, partitions: int = 3) -> Harness:
    """Run the scenario through the pure handlers, with the partitions the producer would pick.

    The market's snapshots are kept in ``harness.snapshots``.
    """
    h = Harness(settings, partitions)
    msgs = [h.msg("trades", r, partition_of(k, partitions)) for _, k, r in sc.trades]
    h.snapshots = h.market.handle(msgs, h.now).snapshots
    batch = [h.msg(t, r, *coordinates(k, r, partitions), key=k.encode()) for t, k, r in sc.joins + sc.late]
    for start in range(0, len(batch), 50):
        h.join(batch[start : start + 50])
    return h

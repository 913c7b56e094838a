"""One bad input of every class the worker must dead-letter, with the reason it must give.

Shared by the unit tests (pure handlers) and the integration test (the running worker).
"""

from __future__ import annotations

from typing import Any

from streams.avro.batches import to_columns
from streams.kafka.partitioning import partition_for
from tests.kit.agents.builders import CODEC, SECOND, T0, outcome, signal, trade

FAR_FUTURE = T0 + 10**9 * SECOND


def _good_trade() -> dict[str, Any]:
    return trade("ok", T0, "BTC", 100.0, 1.0)


def _encoded(topic: str, record: dict[str, Any]) -> bytes:
    return CODEC.encode(topic, record)


def bad_inputs() -> list[tuple[str, str, bytes | None, bytes]]:
    """(topic, expected reason, key, value bytes) for every class of bad input."""
    t = _good_trade()
    good = _encoded("trades", t)
    cases: list[tuple[str, str, bytes | None, bytes]] = [
        ("trades", "empty", b"BTC", b""),
        ("trades", "bad_magic", b"BTC", b"{json: true}"),
        ("trades", "truncated", b"BTC", good[:14]),
        ("trades", "unknown_schema", b"BTC", b"\xc3\x01" + b"\x00" * 8 + good[10:]),
        ("trades", "trailing_bytes", b"BTC", good + b"\x00"),
        ("trades", "missing_field", b"", _encoded("trades", {**t, "symbol": ""})),
        ("trades", "key_mismatch", b"ETH", good),
        ("trades", "non_finite", b"BTC", _encoded("trades", {**t, "price": float("nan")})),
        ("trades", "non_positive_price", b"BTC", _encoded("trades", {**t, "price": -1.0})),
        ("trades", "non_positive_size", b"BTC", _encoded("trades", {**t, "size": 0.0})),
        ("trades", "bad_timestamp", b"BTC", _encoded("trades", {**t, "ts": -5})),
        ("trades", "future_timestamp", b"BTC", _encoded("trades", {**t, "ts": FAR_FUTURE})),
        ("signals", "score_out_of_range", b"q1", _encoded("signals", signal("q1", T0, score=1.5))),
        ("signals", "non_positive_horizon", b"q2", _encoded("signals", signal("q2", T0, horizon=0.0))),
        ("signals", "non_finite", b"q3", _encoded("signals", signal("q3", T0, features={"eng_zscore": float("inf")}))),
        ("signals", "non_positive_price", b"q4", _encoded("signals", {**signal("q4", T0), "price": 0.0})),
        ("outcomes", "negative_value", b"q5", _encoded("outcomes", {**outcome("q5", T0), "fees": -1.0})),
        ("outcomes", "non_finite", b"q6", _encoded("outcomes", {**outcome("q6", T0), "return_unit": float("inf")})),
    ]  # fmt: skip
    return cases


def duplicate_trade() -> tuple[bytes, bytes]:
    """The same trade twice: the second copy is a duplicate."""
    return b"BTC", _encoded("trades", trade("dup-1", T0 + 5 * SECOND, "BTC", 100.0, 1.0))


def _other_symbol(symbol: str, partitions: int) -> str:
    """A symbol that Kafka's default partitioner puts on another partition than ``symbol``."""
    home = partition_for(symbol.encode(), partitions)
    return next(s for s in (f"ALT{i}" for i in range(100)) if partition_for(s.encode(), partitions) != home)


def bad_batches(partitions: int) -> list[tuple[str, str, bytes, bytes, int | None]]:
    """(topic, reason, key, value, index of the bad event or None for the whole record) per class."""
    trades = [trade(f"b-{i}", T0 + i * SECOND, "BTC", 100.0 + i) for i in range(5)]
    bad_price = [dict(t) for t in trades]
    bad_price[2]["price"] = -3.0
    ragged = to_columns("trades", trades)
    ragged["size"] = ragged["size"][:3]
    far = _other_symbol("BTC", partitions)
    sigs = [signal(f"bs-{i}", T0 + i * SECOND, symbol="BTC") for i in range(3)]
    sigs[1] = signal("bs-1", T0 + SECOND, symbol=far)
    return [
        ("trades", "non_positive_price", b"BTC", CODEC.encode_batch("trades", to_columns("trades", bad_price)), 2),
        ("trades", "ragged_batch", b"BTC", CODEC.encode_batch("trades", ragged), None),
        ("trades", "empty_batch", b"BTC", CODEC.encode_batch("trades", to_columns("trades", [])), None),
        ("signals", "wrong_partition", b"BTC", CODEC.encode_batch("signals", to_columns("signals", sigs)), 1),
    ]  # fmt: skip

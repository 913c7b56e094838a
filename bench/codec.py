"""Codec benchmark: framed encode+decode round trips vs bare fastavro, same records, same process.

    python bench/codec.py --json bench/results/codec.json

Both loops do the same Avro work on Trade and Signal records (alternating); the framed loop adds
the single-object header on write and the header check plus schema lookup on read. Each loop runs
in several interleaved rounds and the median is reported, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/codec.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastavro import schemaless_reader, schemaless_writer

from bench._report import report
from streams.avro.codec import Codec
from streams.avro.schemas import SchemaRegistry

TRADE = {"event_id": "3f2a9c0e5b1d4e7f", "ts": 1_767_225_600_000_000, "symbol": "BTC-USD",
         "price": 50_123.25, "size": 0.125, "side": "BUY"}  # fmt: skip
SIGNAL = {
    "event_id": "9a8b7c6d5e4f3a2b", "ts": 1_767_225_600_000_000, "signal_id": "sig-000123",
    "strategy": "ema_cross_fast", "family": "ema_cross", "portfolio": "main", "symbol": "BTC-USD", "side": "SELL",
    "price": 50_120.0, "score": 0.71, "features": {"eng_trend_strength": 0.4, "eng_zscore": -1.2,
    "eng_breakout_distance": 0.01, "eng_momentum": 0.3, "eng_volatility": 0.02, "eng_spread_bps": 1.5},
    "horizon_seconds": 120.0, "action": 1.0, "model_version": None,
}  # fmt: skip


def framed(codec: Codec, n: int) -> float:
    encode, decode = codec.encode, codec.decode
    start = time.perf_counter()
    for _ in range(n // 2):
        decode("trades", encode("trades", TRADE))
        decode("signals", encode("signals", SIGNAL))
    return (n // 2 * 2) / (time.perf_counter() - start)


def bare(n: int) -> float:
    registry = SchemaRegistry.default()
    trade, signal = registry.for_topic("trades").parsed, registry.for_topic("signals").parsed

    def trip(schema: object, record: dict) -> None:
        out = io.BytesIO()
        schemaless_writer(out, schema, record)
        schemaless_reader(io.BytesIO(out.getvalue()), schema, None)

    start = time.perf_counter()
    for _ in range(n // 2):
        trip(trade, TRADE)
        trip(signal, SIGNAL)
    return (n // 2 * 2) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--n", type=int, default=40_000, help="round trips per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    codec = Codec()
    framed(codec, 2_000), bare(2_000)  # warm caches
    framed_rates, bare_rates = [], []
    for _ in range(args.rounds):
        framed_rates.append(framed(codec, args.n))
        bare_rates.append(bare(args.n))
    ratios = [f / b for f, b in zip(framed_rates, bare_rates, strict=True)]
    result = {
        "encode_decode_per_s": round(statistics.median(framed_rates)),
        "bare_fastavro_per_s": round(statistics.median(bare_rates)),
        "ratio_to_bare_fastavro": round(statistics.median(ratios), 3),
        "rounds": args.rounds,
        "round_trips_per_round": args.n,
    }
    report(
        "codec: encode + decode round trips (Trade and Signal), one core",
        [
            ("framed round trips/s", f"{result['encode_decode_per_s']:,}", ">= 50,000"),
            ("bare fastavro round trips/s", f"{result['bare_fastavro_per_s']:,}", "(baseline)"),
            ("ratio framed / bare", f"{result['ratio_to_bare_fastavro']:.3f}", ">= 0.9"),
        ],
        result,
        args.json,
    )


if __name__ == "__main__":
    main()

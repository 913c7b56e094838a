"""Sizing inside the engine's process through the SDK, and publish -> the engine's sizer serving.

This process plays an engine: ``EngineClient.local_sizer().size(...)`` answers in the calling
thread with a served model (an MLP shaped like the trainer's, 2 x 64), a feature snapshot of the
symbol from the features topic, and each decision reported on ``sizing-decisions`` as a worker's
would be. Each call is timed from before ``size`` to its return: ``--count`` calls back to back
(``local_*``, as ``bench/inference.py`` times one decision), then as many at a steady ``--rate``
with a sleep between calls (``paced_*``: an engine woken by each signal; the wake-up's cold caches
show in both figures). The baseline, timed the same two ways in the same run, is a bare
``InferenceSession.run`` of the trainer's ONNX bytes on an already-normalised row.

The swap figure runs from just before the produce of a new signed version on the model-updates
topic until the engine's own ``size`` calls (every millisecond) answer with it: follow, verify,
build, swap. Canary is off (``canary_share=0``) so "serving" means answering every signal.
``local_p99_during_swaps_us`` is the size latency while those swaps happen (verification and
session building run on the sizer's control thread, which shares the interpreter).

    python bench/engine_sizer.py --json out.json [--count 20000 --rate 2000 --swaps 20]

Targets (DESIGN.md section 8): p99 <= 200 us in process; publish -> serving p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.unit.inference, bench

from bench._cluster import add_bootstrap_option, cluster
from bench._report import report
from streams.clock import new_event_id, now_us
from streams.features import ENGINE_FEATURES, SIZER_SPEC, STREAM_FEATURES, build_state
from streams.kafka.admin import create_topics
from streams.kafka.producer import EventProducer
from streams.sdk import EngineClient
from streams.serving.runtime import session_options
from streams.settings import Settings
from streams.topics import FEATURES, MODEL_UPDATES
from tests.kit.inference.model_factory import sizer_update

SYMBOLS = [f"SYM{i}" for i in range(8)]


def signed_updates(versions: list[str], key: bytes) -> list[dict[str, Any]]:
    """Signed sizer updates, exported by torch in a child process: an engine does not load torch,
    and its heap here would make every full garbage collection of the measured process slower."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.starmap(_update, [(v, key, 3 + i) for i, v in enumerate(versions)])


def _update(version: str, key: bytes, seed: int) -> dict[str, Any]:
    return sizer_update(version, key, seed=seed)


def timings_us(call: Any, count: int) -> np.ndarray:
    """Time ``call(i)`` ``count`` times back to back; microseconds per call."""
    out = np.empty(count)
    clock = time.perf_counter_ns
    for i in range(count):
        begin = clock()
        call(i)
        out[i] = clock() - begin
    return out / 1000.0


def paced_timings_us(call: Any, count: int, rate: float) -> np.ndarray:
    """Time ``call(i)`` ``count`` times at ``rate`` calls a second; microseconds per call."""
    out = np.empty(count)
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        begin = clock()
        call(i)
        out[i] = clock() - begin
    return out / 1000.0


def percentiles(values: np.ndarray | list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def publish_features(settings: Settings, rng: np.random.Generator) -> None:
    with EventProducer(settings, "bench-agents", config={"linger.ms": 0}) as producer:
        for symbol in SYMBOLS:
            values = rng.normal(scale=0.1, size=len(STREAM_FEATURES)).tolist()
            producer.send(FEATURES, symbol, {"event_id": new_event_id(), "ts": now_us(), "symbol": symbol,
                                             "spec_version": SIZER_SPEC.version, "values": values,
                                             "trade_count": 10})  # fmt: skip


def run(settings: Settings, count: int, rate: float, swaps: int) -> dict[str, Any]:
    create_topics(settings)
    key = settings.signing_key()
    rng = np.random.default_rng(7)
    first, *updates = signed_updates([f"e{i:03d}" for i in range(swaps + 1)], key)
    # One producer publishes every version, the first before the clock starts: a fresh client's
    # connection and producer id would otherwise be timed with the first swap.
    trainer = EventProducer(settings, "bench-trainer", config={"linger.ms": 0})
    trainer.send(MODEL_UPDATES, "sizer", first)
    trainer.flush(30.0)
    publish_features(settings, rng)
    signals = [
        {"strategy": "momentum_fast", "symbol": SYMBOLS[i % len(SYMBOLS)], "side": "BUY" if i % 2 else "SELL",
         "score": float(rng.uniform()),
         "features": {n: float(v) for n, v in zip(ENGINE_FEATURES, rng.normal(size=6), strict=True)}}
        for i in range(256)
    ]  # fmt: skip
    with EngineClient(settings, client_id=f"bench-engine-{uuid.uuid4().hex[:4]}") as engine:
        sizer = engine.local_sizer(wait=60.0)
        if not sizer.wait_serving("e000", 30.0):
            raise SystemExit(f"the engine's sizer did not load the model: {sizer.core.info()}")
        deadline = time.monotonic() + 10.0
        while sum(sizer.core.features.get(s) is not None for s in SYMBOLS) < len(SYMBOLS):
            if time.monotonic() > deadline:
                raise SystemExit("feature snapshots not received")
            time.sleep(0.01)

        def size(i: int) -> Any:
            return sizer.size(f"b{i}", **signals[i % len(signals)])

        check = size(0)
        assert check.model_version == "e000" and not check.fallback, check

        # The bare baseline: the trainer's bytes in a plain session, on a row normalised beforehand.
        model = sizer.core.store.slot("sizer").serving
        assert model is not None
        manifest = model.manifest
        session = ort.InferenceSession(
            model.record["onnx"], session_options(), providers=["CPUExecutionProvider"]
        )
        s0 = signals[0]
        state, _ = build_state(SIZER_SPEC, score=s0["score"], side=s0["side"], family="momentum",
                               engine_features=s0["features"], stream_values=None)  # fmt: skip
        row = ((np.asarray([state]) - np.asarray(manifest.obs_mean)) / np.asarray(manifest.obs_std)).astype(
            np.float32
        )
        gc.collect()
        for i in range(2000):  # warm-up of both
            size(i)
            session.run([manifest.output_name], {manifest.input_name: row})

        def bare_run(_: int) -> Any:
            return session.run([manifest.output_name], {manifest.input_name: row})

        bare = timings_us(bare_run, count)
        local = timings_us(size, count)
        paced_bare = paced_timings_us(bare_run, count, rate)
        paced = paced_timings_us(size, count, rate)
        assert sizer.serving_version == "e000"

        # Publish -> the engine's own size() answers with the new version.
        swap_s: list[float] = []
        during: list[float] = []
        for n, update in enumerate(updates):
            version = update["version"]
            started = time.perf_counter()
            trainer.send(MODEL_UPDATES, "sizer", update)
            trainer.poll(0)
            while True:
                begin = time.perf_counter_ns()
                decision = size(n)
                during.append((time.perf_counter_ns() - begin) / 1000.0)
                if decision.model_version == version:
                    swap_s.append(time.perf_counter() - started)
                    break
                if time.perf_counter() - started > 30.0:
                    raise SystemExit(f"{version} not served within 30 s: {sizer.core.info()}")
                time.sleep(0.001)
            time.sleep(0.2)
        trainer.flush(10.0)
        fallbacks = sizer.core.fallbacks
    local_p50, local_p99 = percentiles(local)
    bare_p50, bare_p99 = percentiles(bare)
    paced_p50, paced_p99 = percentiles(paced)
    paced_bare_p50, paced_bare_p99 = percentiles(paced_bare)
    swap_p50, swap_p99 = percentiles(swap_s)
    return {
        "local_p50_us": local_p50,
        "local_p99_us": local_p99,
        "local_max_us": float(local.max()),
        "bare_run_p50_us": bare_p50,
        "bare_run_p99_us": bare_p99,
        "ratio_to_bare_run": local_p50 / bare_p50,
        "ratio_to_bare_run_p99": local_p99 / bare_p99,
        "paced_p50_us": paced_p50,
        "paced_p99_us": paced_p99,
        "paced_bare_run_p50_us": paced_bare_p50,
        "paced_bare_run_p99_us": paced_bare_p99,
        "swap_to_local_serving_p50_s": swap_p50,
        "swap_to_local_serving_p99_s": swap_p99,
        "swap_to_local_serving_max_s": float(max(swap_s)),
        "local_p99_during_swaps_us": float(np.percentile(during, 99)),
        "swaps": len(swap_s),
        "sized": count,
        "rate_per_s": rate,
        "fallbacks": fallbacks,
        "load_average_1m": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--count", type=int, default=20_000, help="size() calls timed (and as many bare runs)"
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="calls per second")
    parser.add_argument("--swaps", type=int, default=20, help="model versions published and timed")
    add_bootstrap_option(parser)
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    with cluster(args.bootstrap) as (bootstrap, _):
        settings = Settings(
            kafka_bootstrap=bootstrap,
            topic_prefix=prefix,
            inference={"canary_share": 0.0},
            metrics_enabled=False,
        )
        result = run(settings, args.count, args.rate, args.swaps)
    r = result
    rows = [
        ("size() in the engine's thread, p50 / p99 (us)", f"{r['local_p50_us']:.1f} / {r['local_p99_us']:.1f}",
         "p99 <= 200"),
        ("bare session.run in the same run, p50 / p99 (us)",
         f"{r['bare_run_p50_us']:.1f} / {r['bare_run_p99_us']:.1f}", ""),
        ("ratio to the bare run, p50 / p99", f"{r['ratio_to_bare_run']:.2f} / {r['ratio_to_bare_run_p99']:.2f}", ""),
        (f"paced at {args.rate:,.0f}/s: size() / bare p50 (us)",
         f"{r['paced_p50_us']:.1f} / {r['paced_bare_run_p50_us']:.1f}", ""),
        (f"paced at {args.rate:,.0f}/s: size() / bare p99 (us)",
         f"{r['paced_p99_us']:.1f} / {r['paced_bare_run_p99_us']:.1f}", ""),
        ("publish -> the engine serving it, p50 / p99 (s)",
         f"{r['swap_to_local_serving_p50_s']:.3f} / {r['swap_to_local_serving_p99_s']:.3f}", "p99 <= 1"),
        ("size() p99 while swapping (us)", f"{r['local_p99_during_swaps_us']:.1f}", ""),
        ("fallbacks", str(r["fallbacks"]), "0"),
    ]  # fmt: skip
    report("in-process sizing through the SDK", rows, result, args.json)


if __name__ == "__main__":
    main()

"""In-process inference: one sizing decision and batched decisions vs a bare ``session.run``.

One decision covers what the worker does per request inside the process: observation building
(request features + the symbol's cached snapshot), normalisation with the manifest statistics,
``session.run``, clipping, fallback checks. The baseline is a bare ``session.run`` of the same
model on an already-normalised row, in the same process.

    python bench/inference.py --json out.json

Targets (DESIGN.md section 8): p99 <= 100 us for one decision, >= 100,000 decisions/s batched.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.kit.inference.model_factory

from streams.features import ENGINE_FEATURES, SIZER_SPEC, STREAM_FEATURES
from streams.serving.control import ControlState
from streams.serving.metrics import WorkerMetrics
from streams.serving.model_store import ModelStore
from streams.serving.observation import FeatureCache
from streams.serving.runtime import session_options
from streams.serving.sizing import Sizer
from streams.settings import Settings
from tests.kit.inference.model_factory import sizer_update


def timings_us(fn: Callable[[], Any], count: int, warmup: int = 2000) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(count)
    clock = time.perf_counter_ns
    for i in range(count):
        start = clock()
        fn()
        out[i] = clock() - start
    return out / 1000.0


def throughput(fn: Callable[[], Any], per_call: int, seconds: float) -> float:
    fn()
    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * per_call / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--count", type=int, default=50_000, help="single decisions timed")
    parser.add_argument("--batch", type=int, default=256, help="batch size (the worker's max_batch)")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput run")
    args = parser.parse_args()

    settings = Settings(inference={"canary_share": 0.0, "max_batch": args.batch})
    store = ModelStore(settings, WorkerMetrics(f"bench-{uuid.uuid4().hex[:6]}"))
    applied = store.apply(sizer_update("bench", settings.signing_key(), seed=11))
    assert applied.kind == "serving", applied
    model = store.slot("sizer").serving
    assert model is not None
    rng = np.random.default_rng(5)
    cache = FeatureCache()
    symbols = [f"SYM{i}" for i in range(16)]
    for symbol in symbols:
        values = rng.normal(size=len(STREAM_FEATURES)).tolist()
        cache.update({"symbol": symbol, "ts": 1, "spec_version": SIZER_SPEC.version, "values": values})
    sizer = Sizer(settings, store, ControlState("bench"), cache)
    requests = [
        {"event_id": "e", "ts": 1, "signal_id": f"sig-{i}", "client_id": "bench", "strategy": "momentum_fast",
         "symbol": symbols[i % 16], "side": "BUY" if i % 2 else "SELL", "score": float(rng.uniform()),
         "features": {n: float(v) for n, v in zip(ENGINE_FEATURES, rng.normal(size=6), strict=True)}}
        for i in range(args.batch)
    ]  # fmt: skip
    one = [requests[0]]
    check = sizer.decide(one)
    assert check.versions == ["bench"], check

    # Bare baseline: the trainer's own ONNX bytes in a plain session, run on rows normalised beforehand.
    name_in, name_out = model.manifest.input_name, model.manifest.output_name
    cpu = ["CPUExecutionProvider"]
    session = ort.InferenceSession(model.record["onnx"], session_options(), providers=cpu)
    std = np.asarray(model.manifest.obs_std, dtype=np.float32)
    row = ((sizer.builder.build(one, cache).obs - model.mean) / std).astype(np.float32)
    block = ((sizer.builder.build(requests, cache).obs - model.mean) / std).astype(np.float32)

    console = Console()
    results: dict[str, float] = {}
    gc.collect()
    gc.freeze()  # as the worker does once its models are loaded
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("timing", total=4)
        bare = timings_us(lambda: session.run([name_out], {name_in: row}), args.count)
        progress.advance(task)
        single = timings_us(lambda: sizer.decide(one), args.count)
        progress.advance(task)
        bare_batched = throughput(lambda: session.run([name_out], {name_in: block}), args.batch, args.seconds)
        progress.advance(task)
        batched = throughput(lambda: sizer.decide(requests), args.batch, args.seconds)
        progress.advance(task)

    results = {
        "single_p50_us": float(np.percentile(single, 50)),
        "single_p99_us": float(np.percentile(single, 99)),
        "batched_per_s": batched,
        "overhead_ratio_vs_bare_run": float(np.percentile(single, 50) / np.percentile(bare, 50)),
        "bare_p50_us": float(np.percentile(bare, 50)),
        "bare_p99_us": float(np.percentile(bare, 99)),
        "bare_batched_per_s": bare_batched,
        "batched_ratio_vs_bare_run": batched / bare_batched,
        "batch": args.batch,
        "n_features": SIZER_SPEC.size,
    }
    table = Table(
        "measure", "decision (worker path)", "bare session.run", "target", title="inference in process"
    )
    table.add_row("single p50 (us)", f"{results['single_p50_us']:.1f}", f"{results['bare_p50_us']:.1f}", "")
    table.add_row(
        "single p99 (us)", f"{results['single_p99_us']:.1f}", f"{results['bare_p99_us']:.1f}", "<= 100"
    )
    table.add_row(f"batched ({args.batch})/s", f"{batched:,.0f}", f"{bare_batched:,.0f}", ">= 100,000")
    table.add_row("overhead ratio (p50)", f"{results['overhead_ratio_vs_bare_run']:.2f}x", "1.00x", "")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

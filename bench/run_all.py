"""Run every benchmark and write bench/RESULTS.md: each figure beside its target.

    python bench/run_all.py [--only codec,inference] [--results-dir bench/results]

Benchmarks run one at a time (they measure this machine; running them together would measure
each other). Each writes its JSON under ``--results-dir``; a benchmark that fails or times out is
listed as such, never left out.
"""

from __future__ import annotations

import argparse
import json
import operator
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    check: Callable[[float, float], bool]
    bound: float
    text: str


GE, LE, GT = operator.ge, operator.le, operator.gt


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...]
    targets: tuple[Target, ...]
    timeout: float = 900.0


BENCHES: tuple[Bench, ...] = (
    Bench("codec", (), (
        Target("encode_decode_per_s", "framed round trips/s", GE, 50_000, ">= 50,000"),
        Target("ratio_to_bare_fastavro", "ratio to bare fastavro", GE, 0.9, ">= 0.9"),
    )),
    Bench("stream_throughput", (), (
        Target("features_events_per_s", "trades through validation + features, SDK batching, events/s", GE, 20_000, ">= 20,000"),
        Target("ratio_to_plain_loop", "ratio to plain confluent-kafka loop, same records and handler", GE, 0.5, ">= 0.5"),
        Target("single_record_ratio_to_bare", "single-record trades, ratio to a bare Faust agent", GE, 0.8, ">= 0.8"),
        Target("joins_per_s", "signal/outcome joins/s in the worker", GE, 5_000, ">= 5,000"),
        Target("join_handler_us", "pure join handler, CPU us per join", LE, 50, "<= 50"),
    ), timeout=1500),
    Bench("batch_layout", (), (
        Target("trades_parallel_over_records", "trade batch decode: parallel arrays / array of records", LE, 1.0, "<= 1"),
        Target("parallel_over_records", "... worst topic (signals, outcomes: equal within noise)", GE, 0, "reported"),
    )),
    Bench("inference", (), (
        Target("single_p99_us", "one decision in process, p99 us", LE, 100, "<= 100"),
        Target("batched_per_s", "batched decisions/s", GE, 100_000, ">= 100,000"),
    )),
    Bench("engine_sizer", (), (
        Target("local_p99_us", "sizing in the engine's process through the SDK, p99 us", LE, 200, "<= 200"),
        Target("ratio_to_bare_run", "... p50 ratio to a bare session.run", GE, 0, "reported"),
        Target("swap_to_local_serving_p99_s", "publish -> the engine's sizer serving it, p99 s", LE, 1.0, "<= 1"),
    )),
    Bench("bus_latency", (), (
        Target("ratio_p50_vs_bare", "request -> decision over the bus / bare round trip, p50", LE, 2.5, "<= 2.5"),
        Target("ratio_p99_vs_bare", "request -> decision over the bus / bare round trip, p99", LE, 2.5, "<= 2.5"),
        Target("bus_p99_ms", "request -> decision over the bus, p99 ms", GE, 0, "reported"),
    )),
    Bench("model_propagation", (), (
        Target("propagation_p99_s", "publish -> all workers serving, p99 s", LE, 1.0, "<= 1"),
    )),
    Bench("feedback_loop", (), (
        Target("seconds_to_serving", "10,000 experiences -> model serving, s", LE, 120, "<= 120"),
    ), timeout=1200),
    Bench("learning_quality", (), (
        Target("oracle_uplift_fraction", "sizer: fraction of oracle Sharpe uplift", GE, 0.8, ">= 0.8"),
    ), timeout=2400),
    Bench("load", (), (
        Target("events_per_s", "whole loop for 2 min, events/s produced (busy market)", GE, 10_000, ">= 10,000"),
        Target("worker_events_per_s", "events/s the stream worker consumed meanwhile", GE, 10_000, ">= 10,000"),
        Target("max_lag_seconds_after_drain", "worst consumer-group lag after the drain, s of input", LE, 5, "< 5"),
        Target("components_still_growing", "tradeloop processes whose RSS still grew in the last 30 s", LE, 0, "0"),
    ), timeout=900),
    Bench("failover", (), (
        Target("keys_taken_over", "join entries restored from the killed worker's changelogs", GE, 100_000, ">= 100,000"),
        Target("kill_to_takeover_s", "kill -> survivor holds every partition, state restored, s", LE, 15, "<= 15"),
    ), timeout=1200),
    Bench("allocator_quality", (), (
        Target("oracle_uplift_fraction", "allocator: fraction of oracle uplift", GE, 0.6, ">= 0.6"),
    ), timeout=2400),
)  # fmt: skip


def _value(result: dict, key: str) -> float | None:
    value = result.get(key)
    if isinstance(value, dict):  # {"mean": ..., "std": ...} for multi-seed figures
        value = value.get("mean")
    return float(value) if isinstance(value, int | float) else None


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def run(bench: Bench, results_dir: Path) -> tuple[dict | None, str, float]:
    script = ROOT / "bench" / f"{bench.name}.py"
    out = results_dir / f"{bench.name}.json"
    if not script.exists():
        return None, "not implemented", 0.0
    started = time.monotonic()
    try:
        completed = subprocess.run(
            [sys.executable, str(script), "--json", str(out), *bench.args],
            cwd=ROOT, timeout=bench.timeout, capture_output=True, text=True,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"timed out after {bench.timeout:.0f}s", time.monotonic() - started
    elapsed = time.monotonic() - started
    if completed.returncode != 0 or not out.exists():
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"failed (exit {completed.returncode}): {tail[0][:160]}", elapsed
    return json.loads(out.read_text()), "ok", elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--markdown", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument(
        "--reuse", action="store_true", help="write the table from the JSON already in --results-dir"
    )
    args = parser.parse_args()
    wanted = {n for n in args.only.split(",") if n}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python bench/run_all.py{' --reuse' if args.reuse else ''}` on "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}; each row gives the time "
        "its benchmark ran.",
        "",
        "| benchmark | figure | measured | target | met | run |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for bench in BENCHES:
        if wanted and bench.name not in wanted:
            continue
        print(f"running {bench.name} ...", flush=True)
        existing = args.results_dir / f"{bench.name}.json"
        if args.reuse:
            found = existing.exists()
            result, status, elapsed = (json.loads(existing.read_text()) if found else None), "not run", 0.0
            if found:
                status = f"ok (run {result.get('date', '?')})"
        else:
            result, status, elapsed = run(bench, args.results_dir)
        if result is not None and "date" not in result:  # a benchmark that does not stamp its JSON
            result["date"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(existing.stat().st_mtime))
        print(f"  {status} in {elapsed:.0f}s", flush=True)
        for target in bench.targets:
            value = _value(result, target.key) if result else None
            ran = result.get("date", "?") if result else "-"
            if value is None:
                lines.append(f"| {bench.name} | {target.label} | {status} | {target.text} | no | {ran} |")
                continue
            met = "yes" if target.check(value, target.bound) else "**no**"
            lines.append(f"| {bench.name} | {target.label} | {_fmt(value)} | {target.text} | {met} | {ran} |")
    lines += ["", "Raw JSON of each run is in `bench/results/` (not committed)."]
    args.markdown.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()

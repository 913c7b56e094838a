"""Model publish -> every inference worker serving it, with 4 running workers.

Four workers run as separate processes (``python -m tradeloop infer``), as in production.
Each publish is a signed sizer update of a new version (models are exported and signed before the
clock starts); the time runs from just before the produce call until this process has read, on
the heartbeats topic, the acknowledgement of every worker that it serves the new version (a
worker heartbeats at once after a swap). So the figure includes verification, building the
session, the swap and the acknowledgement's own trip over the bus. Canary is off
(``canary_share=0``) so "serving" means answering every request.

    python bench/model_propagation.py --json out.json [--workers 4 --publishes 25]

Target (DESIGN.md section 8): p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.unit.inference

from agents.inference.rollout import RolloutWatcher
from bench._cluster import add_bootstrap_option, cluster
from streams.kafka.admin import create_topics
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import MODEL_UPDATES
from tests.kit.components import component_env, spawn
from tests.kit.inference.model_factory import sizer_update


def start_workers(settings: Settings, count: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    env = component_env(settings, TRADELOOP_LOG_LEVEL="WARNING", TRADELOOP_INFERENCE__CANARY_SHARE="0")
    return [spawn(["infer"], env, log_dir / f"worker-{i}.log") for i in range(count)]


def run(settings: Settings, workers: int, publishes: int, gap: float, console: Console) -> dict[str, Any]:
    create_topics(settings)
    key = settings.signing_key()
    records = [sizer_update(f"p{i:03d}", key, seed=i % 3) for i in range(publishes + 1)]
    producer = EventProducer(settings, "bench-trainer", config={"linger.ms": 0})
    producer.send(MODEL_UPDATES, "sizer", records[0])
    producer.flush()
    with tempfile.TemporaryDirectory() as tmp:
        procs = start_workers(settings, workers, Path(tmp))
        try:
            with RolloutWatcher(settings) as watcher:
                if not watcher.wait_for("sizer", "p000", workers=workers, timeout=60.0):
                    logs = (Path(tmp) / "worker-0.log").read_text()[-2000:]
                    raise SystemExit(f"only {len(watcher.serving())} of {workers} workers came up: {logs}")
                seconds: list[float] = []
                with Progress(console=console) as progress:
                    task = progress.add_task("publish -> all serving", total=publishes)
                    for record in records[1:]:
                        start = time.perf_counter()
                        producer.send(MODEL_UPDATES, "sizer", record)
                        producer.poll(0)
                        if not watcher.wait_for("sizer", record["version"], workers=workers, timeout=30.0):
                            raise SystemExit(
                                f"{record['version']} not acknowledged by {workers} workers in 30 s"
                            )
                        seconds.append(time.perf_counter() - start)
                        progress.advance(task)
                        time.sleep(gap)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
    values = np.array(seconds)
    return {
        "propagation_p50_s": float(np.percentile(values, 50)),
        "propagation_p99_s": float(np.percentile(values, 99)),
        "propagation_max_s": float(values.max()),
        "workers": workers,
        "publishes": publishes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--publishes", type=int, default=25)
    parser.add_argument(
        "--gap", type=float, default=0.3, help="seconds between an acknowledged swap and the next"
    )
    add_bootstrap_option(parser)
    args = parser.parse_args()
    console = Console()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    with cluster(args.bootstrap) as (bootstrap, _):
        settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
        results = run(settings, args.workers, args.publishes, args.gap, console)
    table = Table("measure", "value", "target", title=f"model propagation to {args.workers} workers")
    table.add_row("p50 (s)", f"{results['propagation_p50_s']:.3f}", "")
    table.add_row("p99 (s)", f"{results['propagation_p99_s']:.3f}", "<= 1")
    table.add_row("max (s)", f"{results['propagation_max_s']:.3f}", "")
    table.add_row("publishes", str(results["publishes"]), ">= 20")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

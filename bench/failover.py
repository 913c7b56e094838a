"""Failover of the stream worker: two workers share the partitions and one is killed with SIGKILL.

The join table's changelog is first filled with ``--keys`` finished join entries (default 240,000,
spread over the partitions, many entries to a changelog record as the join writes them,
:mod:`agents.entrylog`), so that the survivor's takeover restores at least 100,000 entries from
changelogs on top of its own share. The entries are what a long-running join keeps for duplicate
detection; their event times lie far ahead, so no purge touches them during the run. Then:

1. two workers (one consumer group) start and split the partitions; each restores its share;
2. the simulated engine streams trades, signals and outcomes;
3. one worker is killed with SIGKILL; the survivor's rebalance, changelog restore and first new
   experience for a symbol of the victim's partitions are timed.

Figures: kill -> survivor holds every partition (failure detection by the session timeout plus
the rebalance), assignment -> state loaded (the changelog restore), kill -> first experience of a
victim partition, and restore rates at start-up and at takeover (keys/s, a ratio within one run).

Usage: ``python bench/failover.py [--keys 200000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/failover.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.progress import Progress

from agents.entrylog import EntryLog
from agents.join_state import Entry
from bench._report import report
from streams.config.agents import AgentSettings
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.config import admin_config, producer_config
from streams.kafka.consumer import EventConsumer
from streams.kafka.partitioning import partition_for
from streams.settings import Settings
from tests.kit.agents.worker import WorkerProcess
from tradeloop.ops.supervisor import settings_env

console = Console()
LOADED = re.compile(
    r"state loaded ([\d.]+)s after the assignment of partitions \[([\d, ]*)\]: \d+ table keys, "
    r"\d+ symbols, (\d+) join entries"
)
FAR_FUTURE_US = 4_102_444_800_000_000  # 2100-01-01: prefilled entries are never purged in the run


@dataclass(frozen=True)
class Load:
    seen: float  # monotonic time the bench saw the log line
    seconds: float  # assignment -> state loaded, as the worker measured it
    partitions: tuple[int, ...]
    keys: int  # join entries restored


class Worker:
    """A stream worker child (the test kit's :class:`WorkerProcess`) whose log the bench follows."""

    def __init__(self, name: str, settings: Settings, workdir: Path) -> None:
        self.name = name
        self.process = WorkerProcess(settings, workdir / f"{name}.log").start()
        self.loads: list[Load] = []

    def poll(self) -> list[Load]:
        text = self.process.log()
        for match in list(LOADED.finditer(text))[len(self.loads) :]:
            parts = tuple(int(p) for p in match.group(2).split(",") if p.strip())
            self.loads.append(Load(time.monotonic(), float(match.group(1)), parts, int(match.group(3))))
        if not self.process.alive() and self.name != "victim":
            raise SystemExit(f"{self.name} exited:\n{text[-3000:]}")
        return self.loads

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop(30)


def wait_until(what: str, condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with console.status(what):
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout:.0f}s: {what}")


def prefill(settings: Settings, keys: int) -> float:
    """Write ``keys`` final join entries to the join table's changelog as the join would; returns seconds."""
    topic = f"{settings.agents.app_id}-join-changelog"
    admin = AdminClient(admin_config(settings))
    spec = NewTopic(
        topic, settings.partitions, settings.replication_factor, config={"cleanup.policy": "compact"}
    )
    admin.create_topics([spec])[topic].result(30)
    producer = Producer(producer_config(settings, "bench-prefill", **{"linger.ms": 50}))
    log = EntryLog("e")
    start = time.perf_counter()
    with Progress(console=console) as progress:
        task = progress.add_task(f"prefilling {keys:,} join entries", total=keys)
        for first in range(0, keys, 5000):
            by_route: dict[int, list[tuple[str, bytes]]] = {}
            for i in range(first, min(keys, first + 5000)):
                signal_id = f"prefill-{i:07d}"
                symbol = f"OLD{i % 64}"
                route = partition_for(symbol.encode(), settings.partitions)
                entry = Entry(  # a finished join entry, as the join keeps it for duplicate detection
                    signal_id, route, route=route, final=True, emitted=0, status0="COMPLETE",
                    signal={"ts": FAR_FUTURE_US, "horizon_seconds": 60.0, "symbol": symbol},
                    sig_src=(route, i, 0), sig_event=f"e-{signal_id}", out_src=(route, i, 0),
                    out_event=f"o-{signal_id}",
                )  # fmt: skip
                by_route.setdefault(route, []).append((signal_id, entry.to_bytes()))
            for route, changed in by_route.items():
                for partition, key, value in log.writes(route, changed, []):
                    producer.produce(topic, value, key, partition=partition)
                    producer.poll(0)
            progress.update(task, completed=min(keys, first + 5000))
    if producer.flush(60):
        raise SystemExit("the prefill did not complete")
    return time.perf_counter() - start


def drain(consumer: EventConsumer) -> None:
    """Read everything already on the topic (the reader is caught up within a fetch wait)."""
    while consumer.poll_batch(5000, timeout=0.5):
        pass


def victim_experience(consumer: EventConsumer, victim: set[int], partitions: int) -> bool:
    """True once an experience for a symbol of the victim's partitions is read."""
    return any(
        partition_for(consumer.decode(message)["symbol"].encode(), partitions) in victim
        for message in consumer.poll_batch(5000, timeout=0.2)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=240_000, help="join entries in the changelog")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--speed", default="x20", help="simulated engine speed (tradeloop simulate --speed)")
    parser.add_argument("--warm-seconds", type=float, default=30.0, help="live stream before the kill")
    parser.add_argument(
        "--bootstrap", default="", help="an existing Kafka; default starts the embedded broker"
    )
    parser.add_argument(
        "--standby-replicas", type=int, default=0, help="agents.standby_replicas of both workers"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    broker = None if args.bootstrap else EmbeddedBroker(port=free_port()).start()
    bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
    run = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix=f"tradeloop-failover-{run}-"))
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=f"fo{run}.", partitions=args.partitions,
        data_dir=workdir / "data", agents=AgentSettings(app_id=f"failover-{run}", standby_replicas=args.standby_replicas),
    )  # fmt: skip
    workers: list[Worker] = []
    simulator = None
    try:
        create_topics(settings)
        prefill_s = prefill(settings, args.keys)
        console.print(f"prefill: {args.keys:,} keys in {prefill_s:.1f}s")
        base = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
        base.update(settings_env(settings))  # the simulator's environment
        for name in ("victim", "survivor"):
            own = settings.model_copy(update={"log_level": "INFO", "metrics_port": free_port()})
            workers.append(Worker(name, own, workdir))
        victim, survivor = workers

        def shared() -> bool:
            a, b = victim.poll(), survivor.poll()
            held = sorted(a[-1].partitions + b[-1].partitions) if a and b else []
            return held == list(range(args.partitions)) and bool(a[-1].partitions and b[-1].partitions)

        wait_until("both workers restore their share and split the partitions", shared, 300)
        start_loads = {w.name: w.loads[-1] for w in workers}
        simulator = subprocess.Popen(
            [sys.executable, "-m", "tradeloop", "simulate", "--speed", args.speed, "--no-progress"],
            env=base, stdout=open(workdir / "simulator.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )  # fmt: skip
        consumer = EventConsumer(settings, f"failover-reader-{run}")
        consumer.assign_all(["experiences"])
        deadline = time.monotonic() + args.warm_seconds
        with console.status(f"{args.warm_seconds:.0f}s of live stream"):
            while time.monotonic() < deadline:
                consumer.poll_batch(5000, timeout=0.2)
                survivor.poll()
        victim_parts = set(start_loads["victim"].partitions)
        count_before = len(survivor.poll())
        victim.kill()  # SIGKILL
        killed = time.monotonic()
        drain(consumer)  # what the victim wrote before it died; anything later is the survivor's

        def took_over() -> bool:
            loads = survivor.poll()
            return len(loads) > count_before and loads[-1].partitions == tuple(range(args.partitions))

        wait_until("the survivor takes every partition over", took_over, 180)
        takeover = survivor.loads[-1]
        wait_until(
            "the first experience of a victim partition after the kill",
            lambda: victim_experience(consumer, victim_parts, args.partitions),
            240,
        )
        first_output_s = time.monotonic() - killed
        consumer.close()
    finally:
        if simulator is not None:
            simulator.send_signal(signal.SIGTERM)
            simulator.wait(30)
        for worker in workers:
            worker.stop()
        if broker is not None:
            broker.stop()

    startup = start_loads["survivor"]
    startup_rate = startup.keys / startup.seconds if startup.seconds > 0 else 0.0
    taken_over = takeover.keys - startup.keys
    takeover_rate = taken_over / takeover.seconds if takeover.seconds > 0 else 0.0
    result = {
        "keys_prefilled": args.keys,
        "partitions": args.partitions,
        "victim_partitions": sorted(victim_parts),
        "survivor_keys_at_start": startup.keys,
        "survivor_restore_at_start_s": round(startup.seconds, 3),
        "survivor_keys_after_takeover": takeover.keys,
        "keys_taken_over": taken_over,
        "kill_to_takeover_s": round(takeover.seen - killed, 2),
        "takeover_restore_s": round(takeover.seconds, 3),
        "kill_to_first_victim_experience_s": round(first_output_s, 2),
        "restore_keys_per_s_at_start": round(startup_rate),
        "restore_keys_per_s_at_takeover": round(takeover_rate),
        "takeover_to_start_rate_ratio": round(takeover_rate / startup_rate, 3) if startup_rate else None,
        "session_timeout_ms": settings.session_timeout_ms,
        "standby_replicas": args.standby_replicas,
    }
    rows = [
        ("join entries in the changelog (prefilled)", f"{args.keys:,}", ""),
        ("join entries the survivor held before / after", f"{startup.keys:,} / {takeover.keys:,}", ""),
        ("join entries restored from the victim's partitions", f"{taken_over:,}", ">= 100,000"),
        ("kill -> survivor holds every partition, state loaded", f"{result['kill_to_takeover_s']:.1f} s",
         f"<= 15 s (session timeout {settings.session_timeout_ms / 1000:.0f} s + rebalance + restore)"),
        ("assignment -> state restored (changelogs)", f"{takeover.seconds:.2f} s", ""),
        ("kill -> first experience of a victim partition", f"{first_output_s:.1f} s", ""),
        ("restore rate at start-up / at takeover", f"{startup_rate:,.0f} / {takeover_rate:,.0f} entries/s", ""),
    ]  # fmt: skip
    report("stream worker failover (two workers, one SIGKILLed)", rows, result, args.json)


if __name__ == "__main__":
    main()

"""Load: the simulated engine at a sustained ~10,000 events/s through the whole loop, memory sampled.

    python bench/load.py --json bench/results/load.json [--seconds 120] [--market busy|sparse]

Starts the embedded broker on a free port (or uses ``--bootstrap``), creates the topics under a
fresh prefix, and starts every registered component as its own process through
:class:`tradeloop.ops.supervisor.Supervisor`: the Faust stream worker (when ``tradeloop worker`` is
registered), the trainer and an inference worker. Once they publish heartbeats, the simulator runs
paced for ``--seconds``, producing through the engine SDK's batching. The worker turns the events
into features and experiences, the trainer ingests (and trains on) them, the inference worker reads
the features and outcomes.

The market shape matters as much as the rate: the worker evaluates the features once per symbol
per second of *event time*, whatever the trade count. ``--market busy`` (the default) is a market
that trades: 8 symbols at 25 prints per simulated second each, a signal per 16 prints, paced x47
(~10,500 events/s, ~380 feature evaluations/s). ``--market sparse`` is the simulator's default
market (4 symbols at 2 prints/s) paced x1100 for the same event rate: 1,100 seconds of market per
second, a feature evaluation per two prints, which no real feed looks like. ``--size-via-bus`` also makes the simulator wait for an inference decision per signal,
as a live engine would; that synchronous round trip caps the simulator's rate (see docs/reliability.md).

Every second the resident memory (VmRSS from /proc, summed over each component's process tree, so
the trainer's Ray processes count) of every process is sampled. The report gives the achieved
event rate (events the simulator produced over its paced run, and events the stream worker
consumed over the same time, from its heartbeats: records carry many events, so broker offsets
count records), each component's peak RSS, whether its RSS plateaued (the peak of the last
``--window`` seconds against the peak of the window before it: state that is retained for a while
of event time, such as the join's finished entries, fills during the first part of the run and
must stop growing by its end), and each consumer group's lag when the
simulator stops and again after ``--drain`` seconds, in records and in seconds of input (the lag
over the rate its topics grew at during the run).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/load.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import report
from streams.config.simulator import SimulatorSettings
from streams.errors import BrokerError
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.settings import Settings
from tradeloop.commands import COMMAND_MODULES
from tradeloop.ops.status_collect import BusReader
from tradeloop.ops.status_model import INPUT_TOPICS
from tradeloop.ops.supervisor import Supervisor

TARGET_EVENTS_PER_S = 10_000.0
# (simulator settings, pace) of each market shape, ~10,500 events/s.
MARKETS: dict[str, tuple[dict[str, Any], str]] = {
    "busy": ({"symbols": 8, "trades_per_second": 25.0, "trades_per_signal": 16}, "x47"),
    "sparse": ({}, "x1100"),
}
TARGET_LAG_SECONDS = 5.0
# Growth of the last window's peak over the previous window's that still counts as a plateau.
PLATEAU_MB, PLATEAU_SHARE = 10.0, 0.10
# (name, command, heartbeat component) of the long-running components, when their command exists.
COMPONENTS = (
    ("worker", "worker", "worker"),
    ("trainer", "trainer", "trainer"),
    ("inference", "infer", "inference"),
)

log = logging.getLogger("bench.load")


# -- memory -------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree[ppid].append(int(stat.parent.name))
    return tree


def _rss_mb(pid: int) -> float:
    """VmRSS of one process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int, tree: dict[int, list[int]]) -> float:
    """RSS of ``pid`` and all its descendants (the trainer's Ray processes belong to it)."""
    total, stack, seen = 0.0, [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _rss_mb(current)
        stack.extend(tree.get(current, ()))
    return total


class MemorySampler:
    """Samples the tree RSS of named processes every ``interval`` seconds on a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 1.0) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []  # (monotonic time, name -> MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = _children()
            self.samples.append((time.monotonic(), {n: tree_rss_mb(p, tree) for n, p in self.pids.items()}))
            self._stop.wait(self.interval)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def peak(self, name: str, start: float = float("-inf"), end: float = float("inf")) -> float:
        values = [s[name] for t, s in self.samples if start <= t <= end and name in s]
        return max(values, default=0.0)


# -- the run ------------------------------------------------------------------------------------


def registered_commands() -> set[str]:
    """Command names the CLI registers (``tradeloop worker`` may not exist yet)."""
    import typer

    app = typer.Typer()
    for module in COMMAND_MODULES:
        module.register(app)
    return {c.name or c.callback.__name__ for c in app.registered_commands if c.callback is not None}


def wait_for_heartbeats(reader: BusReader, components: set[str], timeout: float) -> set[str]:
    """Components among ``components`` that published a heartbeat within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline and seen != components:
        seen = {b.component for b in reader.read_state(deadline_seconds=3.0).beats.values()} & components
        time.sleep(1.0)
    return seen


def input_total(reader: BusReader) -> tuple[float, int]:
    """(monotonic time, records on trades + signals + outcomes) now."""
    totals = reader.sample().totals
    return time.monotonic(), sum(totals.get(t, 0) for t in INPUT_TOPICS)


def worker_events(reader: BusReader) -> float:
    """Events the stream workers consumed so far, from their newest heartbeats."""
    beats = reader.read_state(deadline_seconds=1.0).beats.values()
    return sum(b.gauges.get("events_in_total", 0.0) for b in beats if b.component == "worker")


def group_lag(reader: BusReader) -> dict[str, dict[str, int]]:
    """Lag per topic of each component's consumer group (group -> topic -> records behind)."""
    sample = reader.sample()
    return {
        f"{g.component} ({g.name})": dict(sample.groups[g.name].lag)
        for g in reader.groups
        if g.name in sample.groups
    }


def lag_seconds(lag: dict[str, dict[str, int]], rates: dict[str, float]) -> dict[str, float]:
    """Each group's lag in seconds of input: per topic, records behind over the topic's record rate."""
    return {
        group: round(max((n / rates[t] for t, n in topics.items() if n and rates.get(t)), default=0.0), 2)
        for group, topics in lag.items()
    }


def per_10s(points: list[tuple[float, int]]) -> list[int]:
    """Events/s over successive ~10 s spans of (time, total) points."""
    rates, (t_a, n_a) = [], points[0]
    for t, n in points[1:]:
        if t - t_a >= 10.0:
            rates.append(round((n - n_a) / (t - t_a)))
            t_a, n_a = t, n
    return rates


def simulator_said(path: Path) -> str:
    """The simulator's own summary line ("produced N events in T s (R events/s) ...")."""
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    said = [line.strip() for line in lines if line.strip().startswith("produced")]
    return said[-1] if said else "no summary (see its log)"


def run(settings: Settings, args: argparse.Namespace, broker: EmbeddedBroker | None) -> dict[str, Any]:
    create_topics(settings)
    commands = registered_commands()
    supervisor = Supervisor(settings, args.log_dir or settings.data_dir / "logs")
    # Extra stream workers join the first one's consumer group and share the partitions.
    components = [*COMPONENTS, *((f"worker-{i}", "worker", "worker") for i in range(2, args.workers + 1))]
    started = [(name, beat) for name, command, beat in components if command in commands]
    missing = [name for name, command, _ in components if command not in commands]
    reader = BusReader(settings)
    sampler: MemorySampler | None = None
    try:
        for name, command, _ in components:
            if command in commands:
                extra = {"TRADELOOP_METRICS_PORT": str(free_port())} if name.startswith("worker-") else None
                supervisor.start(name, [command], extra)
        log.info("started %s; waiting for their heartbeats", ", ".join(n for n, _ in started))
        ready = wait_for_heartbeats(reader, {beat for _, beat in started}, args.ready_timeout)
        if not_ready := {beat for _, beat in started} - ready:
            log.warning(
                "no heartbeat from %s after %.0fs; loading anyway", sorted(not_ready), args.ready_timeout
            )
        speed = args.speed or MARKETS[args.market][1]
        simulate = ["simulate", "--speed", speed, "--duration", str(args.seconds), "--no-progress"]
        if args.size_via_bus and "infer" in commands:
            simulate.append("--size-via-bus")
        simulator = supervisor.start("simulator", simulate)
        pids = {c.name: c.process.pid for c in supervisor.children if c.process is not None}
        if broker is not None and broker.pid is not None:
            pids["broker"] = broker.pid
        sampler = MemorySampler(pids).start()
        t0, n0 = input_total(reader)
        totals0, consumed0 = reader.sample().totals, worker_events(reader)
        points = [(t0, n0)]  # (time, input records) every second while the simulator runs
        next_log = t0 + 10.0
        while simulator.alive and time.monotonic() - t0 < args.seconds + 60:
            time.sleep(1.0)
            points.append(input_total(reader))
            if points[-1][0] >= next_log:
                next_log += 10.0
                t_b, n_b = points[-1]
                t_a, n_a = next(point for point in points if point[0] >= t_b - 10.5)
                rss = sampler.samples[-1][1] if sampler.samples else {}
                log.info(
                    "%5.0fs  %6.0f input records/s  rss %s", t_b - t0, (n_b - n_a) / (t_b - t_a),
                    " ".join(f"{n}={mb:.0f}MB" for n, mb in rss.items()),
                )  # fmt: skip
        points.append(input_total(reader))
        load_end = time.monotonic()
        totals1, consumed1 = reader.sample().totals, worker_events(reader)
        rates = {t: (totals1.get(t, 0) - totals0.get(t, 0)) / max(load_end - t0, 1e-9) for t in totals1}
        lag_at_end = group_lag(reader)
        time.sleep(args.drain)
        lag_after_drain = group_lag(reader)
        sampler.stop()
        exited = {
            c.name: c.process.returncode for c in supervisor.exited() if c.process and c.name != "simulator"
        }
    finally:
        if sampler is not None:
            sampler.stop()
        codes = supervisor.stop(timeout=30.0)
        reader.close()
    # The rate runs from the first record to the last one the simulator produced.
    moving = [(t, n) for (t, n), (_, before) in zip(points[1:], points, strict=False) if n != before]
    (start_t, start_n), (end_t, end_n) = (
        (moving[0], moving[-1]) if len(moving) > 1 else (points[0], points[-1])
    )
    seconds = max(end_t - start_t, 1e-9)
    window = min(args.window, seconds / 3)
    names = list(sampler.pids)
    first = {n: sampler.peak(n, t0, t0 + window) for n in names}
    previous = {n: sampler.peak(n, load_end - 2 * window, load_end - window) for n in names}
    last = {n: sampler.peak(n, load_end - window, load_end) for n in names}
    growth = {n: round(last[n] - first[n], 1) for n in names}
    growth_at_end = {n: round(last[n] - previous[n], 1) for n in names}
    said = simulator_said(supervisor.log_dir / "simulator.log")
    produced = re.search(r"produced ([\d,]+) events in ([\d.]+) s", said)
    events, sim_seconds = (
        (int(produced.group(1).replace(",", "")), float(produced.group(2))) if produced else (0, 1.0)
    )
    drained = lag_seconds(lag_after_drain, rates)
    return {
        "events_per_s": round(events / sim_seconds, 1),
        # Over the simulator's paced run, as the produced rate: what the worker kept up with.
        "worker_events_per_s": round((consumed1 - consumed0) / sim_seconds, 1),
        "records_per_s": round((end_n - start_n) / seconds, 1),
        "seconds": round(sim_seconds, 1),
        "events": events,
        "simulator_said": said,
        "speed": args.speed or MARKETS[args.market][1],
        "market": args.market,
        "simulator": settings.simulator.model_dump(),
        "size_via_bus": args.size_via_bus,
        "rate_per_10s": per_10s(points),
        "peak_rss_mb": {n: round(sampler.peak(n), 1) for n in names},
        "rss_window_s": round(window, 1),
        "rss_first_window_peak_mb": {n: round(v, 1) for n, v in first.items()},
        "rss_last_window_peak_mb": {n: round(v, 1) for n, v in last.items()},
        "rss_previous_window_peak_mb": {n: round(v, 1) for n, v in previous.items()},
        "rss_growth_mb": growth,
        "rss_growth_last_window_mb": growth_at_end,
        "rss_plateaued": {n: growth_at_end[n] <= max(PLATEAU_MB, PLATEAU_SHARE * previous[n]) for n in names},
        # tradeloop's own processes: the embedded broker keeps every record in memory (docs/inference.md).
        "components_still_growing": sum(
            1
            for n in names
            if n != "broker" and growth_at_end[n] > max(PLATEAU_MB, PLATEAU_SHARE * previous[n])
        ),
        "final_lag": {g: sum(t.values()) for g, t in lag_at_end.items()},
        "lag_after_drain": {g: sum(t.values()) for g, t in lag_after_drain.items()},
        "lag_seconds_at_end": lag_seconds(lag_at_end, rates),
        "lag_seconds_after_drain": drained,
        "max_lag_seconds_after_drain": max(drained.values(), default=0.0),
        "drain_seconds": args.drain,
        "components": [n for n, _ in started],
        "stream_workers": args.workers,
        "components_missing": missing,
        "components_ready": sorted(ready),
        "exited_during_load": exited,
        "exit_codes": codes,
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "target_lag_seconds": TARGET_LAG_SECONDS,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=120.0, help="paced simulator run (default 120)")
    parser.add_argument("--market", choices=sorted(MARKETS), default="busy", help="market shape (see above)")
    parser.add_argument("--speed", default="", help="simulator pace; default: the market shape's")
    parser.add_argument(
        "--window", type=float, default=30.0, help="window of the RSS plateau check (last against previous)"
    )
    parser.add_argument("--workers", type=int, default=1, help="stream workers sharing the partitions")
    parser.add_argument("--drain", type=float, default=15.0, help="seconds after the load before lag again")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="wait for components' heartbeats")
    parser.add_argument("--size-via-bus", action="store_true",
                        help="the simulator waits for a sizing decision per signal (caps its rate)")  # fmt: skip
    parser.add_argument("--bootstrap", default="", help="existing Kafka; default starts the embedded broker")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the components' logs here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="tradeloop-load-") as tmp:
        logs = args.log_dir or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        broker = None if args.bootstrap else EmbeddedBroker(port=free_port(), log_path=logs / "tansu.log")
        try:
            if broker is not None:
                broker.start()
            settings = Settings(
                kafka_bootstrap=args.bootstrap or (broker.bootstrap if broker else ""),
                topic_prefix=f"load{uuid.uuid4().hex[:6]}.", data_dir=Path(tmp) / "data",
                metrics_enabled=False,  # no fixed /metrics ports: other tradeloops may run here
                simulator=SimulatorSettings(**MARKETS[args.market][0]),
            )  # fmt: skip
            result = run(settings, args, broker)
        except BrokerError as exc:
            raise SystemExit(f"load run failed: {exc}") from None
        finally:
            if broker is not None:
                broker.stop()
    rows = [
        ("events/s produced (trades + signals + outcomes)", f"{result['events_per_s']:,.0f}", f">= {TARGET_EVENTS_PER_S:,.0f}"),
        ("events/s consumed by the stream worker", f"{result['worker_events_per_s']:,.0f}", ""),
        ("paced run", f"{result['seconds']:.0f} s at {result['speed']}", "120 s"),
    ]  # fmt: skip
    for name, peak in result["peak_rss_mb"].items():
        plateau = "plateaued" if result["rss_plateaued"][name] else "still growing"
        growth, at_end = result["rss_growth_mb"][name], result["rss_growth_last_window_mb"][name]
        rows.append((f"peak RSS {name}", f"{peak:,.0f} MB ({growth:+.0f} MB over the run, {at_end:+.0f} MB in "
                     f"the last {result['rss_window_s']:.0f} s: {plateau})", "plateaus"))  # fmt: skip
    for group, lag in result["final_lag"].items():
        drained = result["lag_after_drain"].get(group, lag)
        behind = result["lag_seconds_after_drain"].get(group, 0.0)
        rows.append((f"lag {group}", f"{lag:,} records at end, {drained:,} ({behind:.1f} s of input) "
                     f"after {result['drain_seconds']:.0f} s", f"< {TARGET_LAG_SECONDS:.0f} s"))  # fmt: skip
    if result["components_missing"]:
        rows.append(("not registered (not run)", ", ".join(result["components_missing"]), ""))
    report("load: the whole loop at ~10,000 events/s", rows, result, args.json)


if __name__ == "__main__":
    main()

"""``tradeloop up``: the whole loop on one machine, with a live panel."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from streams.admin import create_topics
from streams.broker import EmbeddedBroker
from streams.health import run_health_monitor
from streams.metrics import serve_metrics
from streams.settings import Settings
from streams.status_collect import BusReader
from tradeloop.commands.health import default_actions
from tradeloop.supervisor import Supervisor

__all__ = ["register"]

log = logging.getLogger(__name__)


class _Rates:
    """Events per second per topic from successive end-offset totals."""

    def __init__(self, reader: BusReader) -> None:
        self.reader = reader
        self.last: dict[str, int] = {}
        self.last_time = time.monotonic()
        self.rates: dict[str, float] = {}

    def update(self) -> dict[str, int]:
        totals = dict(self.reader.sample().totals)
        now = time.monotonic()
        elapsed = max(now - self.last_time, 1e-6)
        if self.last:
            self.rates = {t: (totals[t] - self.last.get(t, 0)) / elapsed for t in totals}
        self.last, self.last_time = totals, now
        return totals


def _panel(totals: dict[str, int], rates: dict[str, float], supervisor: Supervisor, started: float) -> Group:
    topics = Table("topic", "records", "events/s", title=f"tradeloop up - {time.monotonic() - started:,.0f}s")
    for name, total in totals.items():
        topics.add_row(name, f"{total:,}", f"{rates.get(name, 0.0):,.0f}")
    components = Table("component", "state", "pid", "restarts", "log")
    for child in supervisor.children:
        state = "[green]running[/green]" if child.alive else "[red]exited[/red]"
        pid = str(child.process.pid) if child.process else "-"
        components.add_row(child.name, state, pid, str(child.restarts), str(child.log_path))
    return Group(topics, components)


def up(
    ctx: typer.Context,
    duration: Annotated[float | None, typer.Option(help="Stop by itself after this many seconds.")] = None,
    speed: Annotated[str, typer.Option(help="Simulator pace: realtime, xK (e.g. x20) or max.")] = "x20",
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
    summary_json: Annotated[
        Path | None, typer.Option(help="Write a JSON summary here when stopping.")
    ] = None,
) -> None:
    """Start everything: the broker (unless TRADELOOP_KAFKA_BOOTSTRAP is set), the topics and the
    simulated engine, and show a live panel of events per second per topic. Ctrl-C stops all."""
    settings: Settings = ctx.obj
    console = Console()
    broker = None
    if settings.embedded_broker:
        broker = EmbeddedBroker(port=settings.broker_port, binary=settings.tansu_bin).start()
        console.print(f"embedded broker at {broker.bootstrap}")
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    supervisor = Supervisor(settings, settings.data_dir / "logs")
    summary: dict[str, Any] = {"bootstrap": settings.bootstrap}
    started = time.monotonic()
    monitor_stop = threading.Event()
    monitor = threading.Thread(
        target=run_health_monitor,
        args=(settings, default_actions(settings, supervisor), monitor_stop),
        name="health-monitor",
        daemon=True,
    )
    try:
        create_topics(settings)
        serve_metrics(settings, "up", "up")
        supervisor.start("simulator", ["simulate", "--speed", speed, "--seed", str(seed)])
        monitor.start()
        reader = BusReader(settings)
        with Live(console=console, refresh_per_second=2) as live:
            rates = _Rates(reader)
            while not stop["requested"]:
                if duration is not None and time.monotonic() - started >= duration:
                    break
                totals = rates.update()
                live.update(_panel(totals, rates.rates, supervisor, started))
                for child in supervisor.exited():
                    log.warning("%s exited with %s; see %s", child.name, child.process.returncode,  # type: ignore[union-attr]
                                child.log_path)  # fmt: skip
                    if child.restarts < 3:
                        supervisor.restart(child)
                time.sleep(1.0)
            summary["records"] = rates.update()
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        monitor_stop.set()
        if monitor.is_alive():
            monitor.join(10)
        summary["exit_codes"] = supervisor.stop()
        summary["seconds"] = round(time.monotonic() - started, 1)
        if broker is not None:
            broker.stop()
    if summary_json is not None:
        summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    console.print_json(json.dumps(summary))


def register(app: typer.Typer) -> None:
    app.command()(up)

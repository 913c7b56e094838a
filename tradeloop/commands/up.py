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
from rich.console import Console
from rich.live import Live

from streams.admin import create_topics
from streams.broker import EmbeddedBroker
from streams.errors import TradeloopError
from streams.health import run_health_monitor
from streams.metrics import serve_metrics
from streams.settings import Settings
from streams.status_collect import BusReader, BusState, settings_warnings
from tradeloop.commands.health import default_actions
from tradeloop.supervisor import Supervisor
from tradeloop.ui.panel import BeatRow, ModelRow, PanelData, ProcessRow, SizerView, TopicRow, render_panel
from tradeloop.uplift import UpliftTracker

__all__ = ["register"]

log = logging.getLogger(__name__)

# (name, command) of each long-running component, in start order; the simulator comes last.
COMPONENTS = (("worker", ["worker"]), ("trainer", ["trainer"]), ("inference", ["infer"]))


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


def _panel_data(
    settings: Settings,
    totals: dict[str, int],
    rates: dict[str, float],
    supervisor: Supervisor,
    state: BusState | None,
    uplift: dict[str, Any],
    started: float,
) -> PanelData:
    now = time.time()
    processes = [
        ProcessRow(
            c.name, c.process.pid if c.process else None, "running" if c.alive else "exited", c.restarts
        )
        for c in supervisor.children
    ]
    beats = [
        BeatRow(b.component, b.component_id, b.status, max(0.0, now - b.ts), dict(b.gauges), dict(b.info))
        for b in (state.beats.values() if state else ())
    ]
    serving: dict[str, str] = {}
    for beat in beats:
        if beat.component == "inference":
            serving.update({k: v for k, v in beat.info.items() if k in ("sizer", "allocator")})
    return PanelData(
        elapsed_seconds=time.monotonic() - started,
        bootstrap=settings.bootstrap,
        log_dir=str(supervisor.log_dir),
        topics=[TopicRow(name, total, rates.get(name, 0.0)) for name, total in totals.items()],
        processes=processes,
        beats=beats,
        published=[ModelRow(m[2].model, m[2].version, m[2].reason) for m in (state.models if state else [])],
        serving=serving,
        sizer=SizerView(
            int(uplift["decisions_with_model"]),
            float(uplift["live_uplift"]),
            float(uplift["model_pnl_units"]),
            float(uplift["fixed_size_pnl_units"]),
        ),
    )


def up(
    ctx: typer.Context,
    duration: Annotated[float | None, typer.Option(help="Stop by itself after this many seconds.")] = None,
    speed: Annotated[
        str, typer.Option(help="Simulator pace after warm-up: realtime, xK (e.g. x20) or max.")
    ] = "x20",
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
    warmup: Annotated[int, typer.Option(help="Signal/outcome pairs written first as bootstrap data.")] = 2500,
    summary_json: Annotated[
        Path | None, typer.Option(help="Write a JSON summary here when stopping.")
    ] = None,
) -> None:
    """Start everything on one machine: the broker (unless TRADELOOP_KAFKA_BOOTSTRAP is set), the
    topics, the stream worker, the trainer, an inference worker, the health monitor and the
    simulated engine (a warm-up backfill, then live signals sized by the inference worker), with a
    live panel. --duration ends it by itself; Ctrl-C stops every process cleanly."""
    settings: Settings = ctx.obj
    for warning in settings_warnings(settings):  # e.g. the development signing key
        log.warning(warning)
    console = Console()
    group = ctx.parent.command if ctx.parent is not None else None
    registered: set[str] = set(getattr(group, "commands", {}))  # typer vendors its own click
    broker = None
    if settings.embedded_broker:
        broker = EmbeddedBroker(port=settings.broker_port, binary=settings.tansu_bin).start()
        console.print(f"embedded broker at {broker.bootstrap}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    supervisor = Supervisor(settings, settings.data_dir / "logs")
    summary: dict[str, Any] = {"bootstrap": settings.bootstrap}
    started = time.monotonic()
    monitor = threading.Thread(
        target=run_health_monitor,
        args=(settings, default_actions(settings, supervisor), stop),
        name="health-monitor",
        daemon=True,
    )
    tracker: UpliftTracker | None = None
    reader: BusReader | None = None
    state: BusState | None = None
    try:
        create_topics(settings)
        serve_metrics(settings, "up", "up")
        for name, args in COMPONENTS:
            if args[0] in registered:
                supervisor.start(name, args)
        simulate = [
            "simulate",
            "--speed",
            speed,
            "--seed",
            str(seed),
            "--warmup",
            str(warmup),
            "--no-progress",
        ]
        if "infer" in registered:
            simulate.append("--size-via-bus")
        supervisor.start("simulator", simulate)
        monitor.start()
        reader = BusReader(settings)
        tracker = UpliftTracker(settings)
        rates = _Rates(reader)
        next_state = 0.0
        with Live(console=console, refresh_per_second=1, vertical_overflow="crop") as live:
            while not stop.is_set():
                if duration is not None and time.monotonic() - started >= duration:
                    break
                totals = rates.update()
                tracker.poll()
                if time.monotonic() >= next_state:
                    state = reader.read_state(deadline_seconds=3.0)
                    next_state = time.monotonic() + 3.0
                live.update(
                    render_panel(
                        _panel_data(
                            settings, totals, rates.rates, supervisor, state, tracker.state.summary(), started
                        )
                    )
                )
                for child in supervisor.exited():
                    code = child.process.returncode if child.process else None
                    log.warning("%s exited with %s; see %s", child.name, code, child.log_path)
                    if child.restarts < 3 and child.name != "simulator":
                        supervisor.restart(child)
                stop.wait(1.0)
        summary["records"] = rates.update()
        tracker.poll()
        state = reader.read_state(deadline_seconds=5.0)
    except KeyboardInterrupt:
        console.print("stopping...")
    except TradeloopError as exc:
        console.print(f"[red]error:[/red] {exc}")
    finally:
        stop.set()
        summary["exit_codes"] = supervisor.stop()
        if monitor.is_alive():
            monitor.join(10)
        summary["seconds"] = round(time.monotonic() - started, 1)
        if tracker is not None:
            summary.update(tracker.state.summary())
            tracker.close()
        if state is not None:
            published = [m[2] for m in state.models]
            summary["models_published"] = len(published)
            summary["model_versions"] = [f"{m.model}:{m.version}" for m in published]
            summary["serving"] = {
                beat.component_id: dict(beat.info)
                for beat in state.beats.values()
                if beat.component == "inference"
            }
        if reader is not None:
            reader.close()
        if broker is not None:
            broker.stop()
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    console.print_json(json.dumps(summary, default=str))


def register(app: typer.Typer) -> None:
    app.command()(up)

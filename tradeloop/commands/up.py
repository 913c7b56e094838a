"""``tradeloop up``: the whole loop on one machine, with a live panel.

The run itself is :class:`tradeloop.ops.up.UpRun`; the panel is :func:`tradeloop.ui.panel.render_panel`.
This module parses the options, turns the run's state into the panel's data each second, and
exits 1 when the run failed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from streams.lifetime import StopDeadline, on_stop_signals
from streams.settings import Settings
from tradeloop.ops.up import UpOptions, UpRun
from tradeloop.ops.uplift import LiveUplift, WeightsUplift
from tradeloop.ui.panel import (
    AllocatorView,
    BeatRow,
    ModelRow,
    PanelData,
    ProcessRow,
    SizerView,
    TopicRow,
    render_panel,
)

__all__ = ["panel_data", "register"]


def panel_data(run: UpRun) -> PanelData:
    """What the panel shows of ``run`` right now."""
    now, clock = time.time(), time.monotonic()
    processes = [ProcessRow(c.name, c.pid, c.describe(clock), c.restarts) for c in run.supervisor.children]
    if run.broker is not None:
        processes.insert(
            0, ProcessRow("broker", run.broker.pid, "running" if run.broker.running() else "exited")
        )
    processes.append(ProcessRow("health", os.getpid(), "thread of up"))
    state = run.state
    beats = [
        BeatRow(b.component, b.component_id, b.status, max(0.0, now - b.ts), dict(b.gauges), dict(b.info))
        for b in (state.beats.values() if state is not None else ())
    ]
    serving: dict[str, str] = {}
    for beat in beats:
        if beat.component == "inference" and beat.status != "STOPPING":
            serving.update({k: v for k, v in beat.info.items() if k in ("sizer", "allocator")})
    rates, tracker = run.rates, run.tracker
    return PanelData(
        elapsed_seconds=run.elapsed,
        bootstrap=run.settings.bootstrap,
        log_dir=str(run.layout.logs),
        topics=[TopicRow(t, n, rates.rates.get(t, 0.0)) for t, n in rates.totals.items()] if rates else [],
        processes=processes,
        beats=beats,
        published=[ModelRow(m.model, m.version, m.reason) for _, _, m in (state.models if state else [])],
        serving=serving,
        sizer=_sizer(tracker.state) if tracker is not None else SizerView(),
        allocator=_allocator(tracker.weights) if tracker is not None else AllocatorView(),
        events=run.events,
    )


def _sizer(live: LiveUplift) -> SizerView:
    return SizerView(live.decisions_with_model, live.uplift, live.model_pnl, live.fixed_pnl)


def _allocator(live: WeightsUplift) -> AllocatorView:
    return AllocatorView(
        weights_updates=live.updates, model_version=live.model_version, weights=live.latest,
        fallback_reason=live.fallback_reason, periods=live.periods, uplift_vs_equal=live.uplift,
    )  # fmt: skip


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
    """Start everything on one machine, with a live panel: the broker (unless
    TRADELOOP_KAFKA_BOOTSTRAP is set), the topics, the stream worker, the trainer, an inference
    worker, the health monitor and the simulated engine (a warm-up backfill, then live signals
    sized by the inference worker). --duration ends it by itself; SIGINT (Ctrl-C), SIGTERM and
    SIGHUP stop every process, the broker last. Exits 1 when a component failed for good, the
    broker died or the run could not start."""
    settings: Settings = ctx.obj
    group = ctx.parent.command if ctx.parent is not None else None
    commands = frozenset(getattr(group, "commands", {}))  # typer vendors its own click
    stop = threading.Event()
    # Children get their stop grace, then the supervisor's kill; past that up itself gives up.
    budget = 2 * (settings.stop_grace_seconds + settings.supervisor.kill_after_seconds) + 10
    on_stop_signals(stop.set, StopDeadline(budget))
    run = UpRun(settings, UpOptions(duration, speed, seed, warmup, commands), stop)
    console = Console()
    with Live(console=console, refresh_per_second=1, vertical_overflow="crop", transient=False) as live:
        result = run.run(lambda current: live.update(render_panel(panel_data(current))))
    summary = result.summary
    console.line()  # the panel's last frame stays above the summary
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    console.print_json(json.dumps(summary, default=str))
    for failure in result.failures:
        console.print(f"[red]failed:[/red] {failure}")
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.command()(up)

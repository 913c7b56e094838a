"""``tradeloop health``: the health monitor with its recovery actions.

The monitor lives in :mod:`tradeloop.ops.health`, its actions in :mod:`tradeloop.ops.actions`;
``tradeloop up`` runs the same monitor in a thread.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated

import typer
from rich.console import Console

from streams.heartbeat import component_id
from streams.lifetime import StopDeadline, on_stop_signals
from streams.metrics import DEFAULT_PORTS, serve_metrics
from streams.settings import Settings
from tradeloop.ops.actions import default_actions
from tradeloop.ops.health import HealthMonitor, run_health_monitor
from tradeloop.ops.status_model import HEALTH_COMPONENT
from tradeloop.ui.status_view import render

__all__ = ["HEALTH_PORT", "register"]

HEALTH_PORT = DEFAULT_PORTS.get(HEALTH_COMPONENT, 9305)


def health(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run one check, print it, exit 1 if unhealthy.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print JSON.")] = False,
    actions: Annotated[
        bool, typer.Option("--actions/--no-actions", help="Run recovery actions for failing checks.")
    ] = True,
) -> None:
    """Run the health monitor: every TRADELOOP_HEALTH__CHECK_INTERVAL_SECONDS (10 s) it checks
    data freshness, model freshness and integrity, training activity, stalled consumers and disk
    space, exports each check as tradeloop_health_* metrics, and runs the recovery action of a
    failing check (restore the last good model, retry training, clean old models and replay rows)
    with backoff."""
    settings: Settings = ctx.obj
    registered = default_actions(settings) if actions else {}
    if once:
        monitor = HealthMonitor(settings, registered)
        try:
            result = monitor.check_once()
        finally:
            monitor.close()
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        else:
            Console().print(render(result, settings.bootstrap))
        if not result.healthy:
            raise typer.Exit(1)
        return
    stop = threading.Event()
    on_stop_signals(stop.set, StopDeadline(settings.stop_grace_seconds))
    port = settings.metrics_port if settings.metrics_port is not None else HEALTH_PORT
    serve_metrics(settings, HEALTH_COMPONENT, component_id(HEALTH_COMPONENT), port)
    run_health_monitor(settings, registered, stop)


def register(app: typer.Typer) -> None:
    app.command()(health)

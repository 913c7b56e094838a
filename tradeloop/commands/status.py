"""``tradeloop status [--json] [--window S]``: the whole loop on one screen; non-zero exit when unhealthy.

When the broker cannot be reached, both print one line on stderr and exit 1; ``--json`` also prints
one JSON document on stdout (``healthy: false``, ``broker.reachable: false`` and the reason).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from confluent_kafka import KafkaException
from rich.console import Console

from streams.errors import BrokerError
from streams.settings import Settings
from tradeloop.ops.status import evaluate, unreachable_document
from tradeloop.ops.status_collect import BusReader, health_settings, settings_warnings
from tradeloop.ops.status_model import Status, broker_document
from tradeloop.ui.status_view import render

__all__ = ["register", "take_status"]


def take_status(settings: Settings, window: float | None = None) -> Status:
    """Observe the bus for ``window`` seconds (default from the settings) and evaluate it.

    Raises:
        BrokerError: the broker cannot be reached.
    """
    limits = health_settings(settings)
    try:
        with BusReader(settings, limits=limits) as bus:
            return evaluate(bus.observe(window), limits)
    except KafkaException as exc:  # a client call the reader does not wrap itself
        raise BrokerError(f"{settings.bootstrap}: {exc.args[0]}") from exc


def _unreachable(settings: Settings, exc: BrokerError, as_json: bool) -> None:
    """Report a broker that cannot be reached: one line on stderr, and with ``--json`` the document
    on stdout (scripts parse stdout, people read stderr). The caller exits 1."""
    error = " ".join(str(exc).split())  # one line: librdkafka's messages may carry newlines
    if as_json:
        document = unreachable_document(settings.bootstrap, error, time.time(), settings_warnings(settings))
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    typer.echo(f"tradeloop status: broker unreachable at {settings.bootstrap}: {error}", err=True)


def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for machines instead of tables.")
    ] = False,
    window: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds to sample offsets for rates and stalls (default 3, "
            "TRADELOOP_HEALTH__STATUS_WINDOW_SECONDS); stalls need 10 s of samples or a health monitor.",
        ),
    ] = None,
) -> None:
    """Show each process up or down, consumer lag, event rates, dead letters, models serving, replay
    size, the last training and data freshness. Exits 1 when anything is unhealthy, so it can serve
    as a probe."""
    settings: Settings = ctx.obj
    try:
        result = take_status(settings, window)
    except BrokerError as exc:
        _unreachable(settings, exc, as_json)
        raise typer.Exit(1) from None
    if as_json:
        document: dict[str, Any] = {**result.to_dict(), "broker": broker_document(settings.bootstrap)}
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        Console().print(render(result, settings.bootstrap))
    if not result.healthy:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(status)

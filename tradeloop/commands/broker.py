"""``tradeloop broker``: run the embedded Tansu broker in the foreground."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from rich.console import Console

from streams.kafka.broker import CLIENT_NOTE, EmbeddedBroker
from streams.lifetime import StopDeadline, on_stop_signals
from streams.settings import Settings

__all__ = ["register"]


def broker(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="Port on 127.0.0.1 (default TRADELOOP_BROKER_PORT, 19092).")
    ] = None,
) -> None:
    """Start the embedded Kafka-compatible broker (Tansu, in-memory) and wait until Ctrl-C or SIGTERM.

    Other commands find it with the default settings; from another shell, clients use the printed
    bootstrap address. Data lives in memory: stopping the broker discards it. When the port is
    taken, it says which process holds it.
    """
    settings: Settings = ctx.obj
    chosen = port if port is not None else settings.broker_port
    stop = threading.Event()
    on_stop_signals(stop.set, StopDeadline(settings.stop_grace_seconds))
    with EmbeddedBroker(port=chosen, binary=settings.tansu_bin) as running:
        Console().print(f"broker ready: bootstrap [bold]{running.bootstrap}[/bold]  (Ctrl-C stops it)")
        Console().print(CLIENT_NOTE, highlight=False, soft_wrap=True)
        while not stop.wait(0.5):
            if not running.running():
                raise typer.Exit(1)
    Console().print("broker stopped")


def register(app: typer.Typer) -> None:
    app.command()(broker)

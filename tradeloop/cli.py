"""The ``tradeloop`` command line. Builds the one Settings object and hands it to each command.

Global flags override ``TRADELOOP_*`` environment variables; each command module under
``tradeloop.commands`` registers its own commands.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from streams.errors import TradeloopError
from streams.lifetime import dump_stacks_on, exit_within, watch_parent
from streams.settings import Settings
from tradeloop.commands import COMMAND_MODULES

__all__ = ["app", "main"]

app = typer.Typer(
    name="tradeloop",
    help="A continuous-learning loop for trading systems on Kafka. Start with `tradeloop up`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


@app.callback()
def _global(
    ctx: typer.Context,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers; unset starts/uses the embedded broker.")
    ] = None,
    prefix: Annotated[str | None, typer.Option(help="Topic prefix (default 'tradeloop.').")] = None,
    partitions: Annotated[int | None, typer.Option(help="Partitions per topic when creating topics.")] = None,
    registry_url: Annotated[
        str | None, typer.Option(help="Confluent Schema Registry URL; unset uses Avro single-object framing.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory for replay store, models, checkpoints.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus /metrics port of this process.")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = None,
    parent_pid: Annotated[
        int | None, typer.Option(hidden=True, help="Supervised: stop when this parent process is gone.")
    ] = None,
) -> None:
    """Global options; every one can also be set as a TRADELOOP_* environment variable."""
    flags: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "topic_prefix": prefix,
        "partitions": partitions,
        "schema_registry_url": registry_url,
        "data_dir": data_dir,
        "metrics_port": metrics_port,
        "log_level": log_level,
    }
    try:
        settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    except (ValidationError, TradeloopError) as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
    )
    # librdkafka and Faust's dependencies are chatty at INFO; their warnings still show.
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Connection retries are expected (broker starting, restarting); errors reach us through callbacks.
    logging.getLogger("librdkafka").setLevel(
        logging.DEBUG if settings.log_level.upper() == "DEBUG" else logging.CRITICAL
    )
    if parent_pid is not None:  # started by a supervisor (`tradeloop up`): never outlive it
        watch_parent(parent_pid)
    ctx.obj = settings


for module in COMMAND_MODULES:
    module.register(app)


EXIT_SECONDS = 10.0
"""How long a finished command's exit (atexit hooks, clients' destructors) may take before SIGALRM ends it."""


def main() -> None:
    """Console-script entry point: known errors print one line and exit 1, not a traceback.

    ``kill -USR1`` dumps the stacks of every thread to stderr (in the stream worker Faust's own
    SIGUSR1 handler does). Once the command has finished, stop signals are ignored (a late one must
    not replace its exit code) and the exit is bounded by :data:`EXIT_SECONDS`.
    """
    dump_stacks_on()
    try:
        app()
    except TradeloopError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise SystemExit(1) from None
    finally:
        exit_within(EXIT_SECONDS)

"""``tradeloop infer`` (run an inference worker) and ``tradeloop control`` (operator switches)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agents.inference.rollout import serving_versions
from agents.inference.worker import InferenceWorker
from streams.kafka.admin import create_topics
from streams.kafka.producer import EventProducer
from streams.serving.control import (
    ALL,
    FORCE_FALLBACK,
    FREEZE_UPDATES,
    RELEASE_FALLBACK,
    UNFREEZE_UPDATES,
    control_record,
)
from streams.settings import Settings
from streams.topics import CONTROL
from tradeloop.ui.output import echo_json

__all__ = ["register"]

control_app = typer.Typer(
    help="Operator switches of the inference workers (the control topic).", no_args_is_help=True
)

Scope = Annotated[str, typer.Option(help="'all' or one worker id.")]
Reason = Annotated[str, typer.Option(help="Why; shown in worker logs and heartbeats.")]


def infer(
    ctx: typer.Context,
    worker_id: Annotated[
        str | None, typer.Option(help="Worker id (default inference-<host>-<pid>-<rand>).")
    ] = None,
    create: Annotated[bool, typer.Option(help="Create missing topics first.")] = True,
) -> None:
    """Run an inference worker until Ctrl-C or SIGTERM.

    It loads every signed model from the model-updates topic (verified, hot-swapped), answers sizing
    requests as a member of the inference consumer group, publishes strategy weights, and obeys the
    control topic. Start more to scale out.
    """
    settings: Settings = ctx.obj
    if create:
        create_topics(settings)
    worker = InferenceWorker(settings, worker_id)
    Console(stderr=True).print(f"inference worker [bold]{worker.worker_id}[/bold] on {settings.bootstrap}")
    worker.run_forever()


def _send(settings: Settings, command: str, scope: str, reason: str) -> None:
    with EventProducer(settings, "tradeloop-control", config={"linger.ms": 0}) as producer:
        producer.send(CONTROL, scope, control_record(command, scope, reason, issued_by="tradeloop-cli"))
    Console().print(f"{command} sent to {scope}")


@control_app.command("freeze")
def freeze(ctx: typer.Context, scope: Scope = ALL, reason: Reason = "operator") -> None:
    """Hold new model updates (workers keep serving what they serve)."""
    _send(ctx.obj, FREEZE_UPDATES, scope, reason)


@control_app.command("unfreeze")
def unfreeze(ctx: typer.Context, scope: Scope = ALL, reason: Reason = "operator") -> None:
    """Apply held model updates and accept new ones again."""
    _send(ctx.obj, UNFREEZE_UPDATES, scope, reason)


@control_app.command("kill")
def kill(ctx: typer.Context, scope: Scope = ALL, reason: Reason = "operator") -> None:
    """Kill switch: answer every request with the fallback rule (takes effect within a second)."""
    _send(ctx.obj, FORCE_FALLBACK, scope, reason)


@control_app.command("release")
def release(ctx: typer.Context, scope: Scope = ALL, reason: Reason = "operator") -> None:
    """Lift the kill switch: models answer again."""
    _send(ctx.obj, RELEASE_FALLBACK, scope, reason)


@control_app.command("versions")
def versions(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Seconds to read heartbeats.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the model versions each live inference worker acknowledges serving."""
    serving = serving_versions(ctx.obj, timeout)
    if as_json:
        echo_json(
            {"workers": {worker: dict(sorted(models.items())) for worker, models in sorted(serving.items())}}
        )
        return
    table = Table("worker", "model", "version")
    for worker, models in sorted(serving.items()):
        for model, version in sorted(models.items()) or [("-", "no model yet")]:
            table.add_row(worker, model, version)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(infer)
    app.add_typer(control_app, name="control")

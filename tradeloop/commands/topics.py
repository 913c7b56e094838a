"""``tradeloop topics create|list``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from streams.kafka.admin import create_topics, list_topics
from streams.settings import Settings
from tradeloop.ui.output import echo_json

__all__ = ["register"]

topics_app = typer.Typer(help="Create and list tradeloop's topics.", no_args_is_help=True)


@topics_app.command("create")
def create(ctx: typer.Context) -> None:
    """Create every tradeloop topic (idempotent: existing topics are left alone)."""
    settings: Settings = ctx.obj
    states = create_topics(settings)
    created = sum(s.created for s in states)
    Console().print(f"{created} created, {len(states) - created} already existed at {settings.bootstrap}")


@topics_app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every tradeloop topic, its partitions and whether it exists; exits 1 if one is missing."""
    settings: Settings = ctx.obj
    states = list_topics(settings)
    if as_json:
        echo_json({
            "bootstrap": settings.bootstrap,
            "topics": [{"name": s.name, "partitions": s.partitions, "exists": s.exists} for s in states],
        })  # fmt: skip
    else:
        table = Table("topic", "partitions", "exists")
        for state in states:
            table.add_row(state.name, str(state.partitions), "yes" if state.exists else "[red]no[/red]")
        Console().print(table)
    if not all(s.exists for s in states):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")

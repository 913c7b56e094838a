"""``tradeloop topics create|list``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from streams.admin import create_topics, list_topics
from streams.settings import Settings

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
def list_(ctx: typer.Context) -> None:
    """Show every tradeloop topic, its partitions and whether it exists."""
    settings: Settings = ctx.obj
    table = Table("topic", "partitions", "exists")
    for state in list_topics(settings):
        table.add_row(state.name, str(state.partitions), "yes" if state.exists else "[red]no[/red]")
    Console().print(table)
    if not all(s.exists for s in list_topics(settings)):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")

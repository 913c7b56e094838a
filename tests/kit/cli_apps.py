"""Typer apps that run real ``tradeloop`` commands with a test's settings as the global options."""

from __future__ import annotations

from types import ModuleType

import typer

from streams.settings import Settings
from tradeloop.commands import status as status_command

__all__ = ["cli_app", "status_app"]


def cli_app(settings: Settings, *commands: ModuleType) -> typer.Typer:
    """An app with the commands of each ``tradeloop.commands`` module in ``commands`` registered."""
    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = settings

    for command in commands:
        command.register(app)
    return app


def status_app(settings: Settings) -> typer.Typer:
    """The real ``tradeloop status`` command on an app whose global options are ``settings``."""
    return cli_app(settings, status_command)

"""Typer apps that run one real ``tradeloop`` command with a test's settings as the global options."""

from __future__ import annotations

import typer

from streams.settings import Settings
from tradeloop.commands import status as status_command

__all__ = ["status_app"]


def status_app(settings: Settings) -> typer.Typer:
    """The real ``tradeloop status`` command on an app whose global options are ``settings``."""
    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = settings

    status_command.register(app)
    return app

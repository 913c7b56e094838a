"""``tradeloop worker``: run the Faust stream worker (features, price moves, join, allocation periods)."""

from __future__ import annotations

import typer

from streams.settings import Settings

__all__ = ["register"]


def worker(ctx: typer.Context) -> None:
    """Run the stream worker until Ctrl-C or SIGTERM.

    Reads trades, signals and outcomes; writes features, price-moves, experiences, allocation
    periods and dead letters. Tune it with TRADELOOP_AGENTS__* (e.g. TRADELOOP_AGENTS__STORE=rocksdb).
    It exits within TRADELOOP_STOP_GRACE_SECONDS of SIGTERM, finished or not.
    """
    from agents.worker import run  # imported here: Faust is heavy and other commands do not need it

    settings: Settings = ctx.obj
    code = run(settings)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(worker)

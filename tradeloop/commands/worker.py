"""``tradeloop worker``: run the Faust stream worker (features, price moves, join, allocation periods)."""

from __future__ import annotations

import asyncio

import typer

from streams.lifetime import StopDeadline, deadline_event_loop
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
    _deadline_loop(settings)
    code = run(settings)
    if code:
        raise typer.Exit(code)


def _deadline_loop(settings: Settings) -> None:
    """Make the worker's event loop (``agents.event_loop``) one that bounds its shutdown.

    Faust installs its own signal handlers on the event loop; this loop arms a stop deadline when
    they fire, so a shutdown that waits on an unreachable broker (Faust's consumer waits on its
    requests) ends within ``stop_grace_seconds``. For uvloop, ``mode.loop.uvloop`` is imported
    first, as ``agents.worker.run`` does to select uvloop: importing it sets uvloop's policy, once,
    so that the loop set here is the one the worker runs on.
    """
    base: type[asyncio.AbstractEventLoop] = asyncio.SelectorEventLoop
    if settings.agents.event_loop == "uvloop":
        import mode.loop.uvloop  # noqa: F401  (sets uvloop's event loop policy)
        import uvloop

        base = uvloop.Loop
    asyncio.set_event_loop(deadline_event_loop(StopDeadline(settings.stop_grace_seconds), base))


def register(app: typer.Typer) -> None:
    app.command()(worker)

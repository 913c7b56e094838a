"""``tradeloop simulate``: play a simulated trading engine into the trades/signals/outcomes topics."""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated

import typer
from rich.console import Console

from streams.lifetime import STOP_SIGNALS, StopDeadline, outside_handler
from streams.settings import Settings
from streams.simulator.bus_sizer import BusSizer
from streams.simulator.runner import SIM_TOPICS, run_simulation

__all__ = ["register"]


def simulate(
    ctx: typer.Context,
    events: Annotated[
        int | None, typer.Option("--events", "-n", min=0, help="Stop after this many events (all topics).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed gives identical records.")] = 1,
    speed: Annotated[
        str,
        typer.Option(help="max (as fast as possible), realtime (event time = wall time) or xK (e.g. x10)."),
    ] = "max",
    backfill: Annotated[
        int | None,
        typer.Option(
            min=0, help="Write N signal/outcome pairs with their trades as fast as possible, then exit."
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many wall-clock seconds.")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar, or a log line every 5 s.")
    ] = True,
    warmup: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="First write N signal/outcome pairs as fast as possible (bootstrap data), then "
            "continue the same simulation paced at --speed.",
        ),
    ] = None,
    size_via_bus: Annotated[
        bool,
        typer.Option(
            "--size-via-bus",
            help="Ask the inference workers for each signal's size (sizing-requests/decisions), "
            "as a live engine does; 1.0 when no decision arrives within 0.5 s.",
        ),
    ] = False,
) -> None:
    """Simulate a trading engine: regime-switching prices on several symbols, strategies in 4
    families (8 by default) emitting signals with features and scores, and outcomes after a holding time.

    Needs the topics: run `tradeloop topics create` first. Without --events, --duration or
    --backfill it runs until Ctrl-C; Ctrl-C, SIGTERM and SIGHUP flush what was produced (for at
    most TRADELOOP_STOP_GRACE_SECONDS) and print the counts.
    """
    settings: Settings = ctx.obj
    stop = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if in_main else {}
    deadline = StopDeadline(settings.stop_grace_seconds)

    def on_signal(signum: int, _frame: object) -> None:
        # Stop at the next event and flush, within the stop grace (an unreachable broker never
        # acknowledges). A KeyboardInterrupt raised inside confluent-kafka's poll surfaces as a
        # SystemError, so Ctrl-C sets a flag instead; a second one aborts.
        deadline.arm(signum)
        outside_handler(stop.set)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    for sig in previous:
        signal.signal(sig, on_signal)
    started = time.monotonic()
    sizer = BusSizer(settings) if size_via_bus else None
    try:
        counts = run_simulation(
            settings,
            events=events,
            seed=seed,
            speed=speed,
            backfill=backfill,
            duration=duration,
            progress=progress,
            stop=stop,
            sizer=sizer,
            warmup=warmup,
        )
    finally:
        if sizer is not None:
            sizer.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    elapsed = max(time.monotonic() - started, 1e-9)
    total = sum(counts.values())
    per_topic = " ".join(f"{settings.topic(t)}={counts[t]:,}" for t in SIM_TOPICS)
    console = Console()
    if backfill is not None:
        pairs = counts["outcomes"]
        console.print(
            f"backfill: {pairs:,} signal/outcome pairs, {total:,} events in {elapsed:.1f} s "
            f"({pairs / elapsed:,.0f} pairs/s, {total / elapsed:,.0f} events/s): {per_topic}"
        )
    else:
        rate = total / elapsed
        console.print(f"produced {total:,} events in {elapsed:.1f} s ({rate:,.0f} events/s): {per_topic}")


def register(app: typer.Typer) -> None:
    app.command()(simulate)

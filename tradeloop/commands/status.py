"""``tradeloop status [--json] [--window S]``: the whole loop on one screen; non-zero exit when unhealthy.

When the broker cannot be reached, both print one line on stderr and exit 1; ``--json`` also prints
one JSON document on stdout (``healthy: false``, ``broker.reachable: false`` and the reason).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from confluent_kafka import KafkaException
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from streams.errors import BrokerError
from streams.settings import Settings
from streams.status import Status, broker_document, evaluate, format_age, unreachable_document
from streams.status_collect import BusReader, health_settings, settings_warnings

__all__ = ["register", "render", "take_status"]

_STATE_STYLE = {"UP": "green", "DEGRADED": "yellow", "STOPPED": "dim", "DOWN": "bold red"}
_SHOWN_GAUGES = 3  # per component row; the JSON has them all


def take_status(settings: Settings, window: float | None = None) -> Status:
    """Observe the bus for ``window`` seconds (default from the settings) and evaluate it.

    Raises:
        BrokerError: the broker cannot be reached.
    """
    limits = health_settings(settings)
    try:
        with BusReader(settings, limits=limits) as bus:
            return evaluate(bus.observe(window), limits)
    except KafkaException as exc:  # a client call the reader does not wrap itself
        raise BrokerError(f"{settings.bootstrap}: {exc.args[0]}") from exc


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.3g}"


def _table(title: str, *columns: str) -> Table:
    return Table(
        *columns, title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False
    )


def _components(status: Status) -> Table:
    table = _table("processes", "component", "id", "state", "beat", "gauges")
    for c in status.components:
        style = _STATE_STYLE.get(c.state, "")
        shown = [(k, v) for k, v in sorted(c.gauges.items()) if not k.endswith("_ts")][:_SHOWN_GAUGES]
        gauges = ", ".join(f"{k}={_number(v)}" for k, v in shown)
        table.add_row(c.component, c.component_id, Text(c.state, style), format_age(c.seconds_since), gauges)
    return table


def _topics(status: Status) -> Table:
    rates = status.rates
    table = _table("topics", "topic", "records", "per s")
    for topic, total in status.totals.items():
        rate = rates.get(topic)
        table.add_row(topic, f"{total:,}", "-" if rate is None else f"{rate:,.1f}")
    return table


def _groups(status: Status) -> Table:
    table = _table("consumer lag", "group", "lag", "growth", "commits")
    for g in status.groups:
        lag = ", ".join(f"{t} {n:,}" for t, n in g.lag.items())
        growth = "-" if g.lag_growth is None else f"{g.lag_growth:+,}"
        if not g.ever_committed:
            commits = "none yet"
        else:
            commits = "-" if g.commits_moved is None else ("moving" if g.commits_moved else "still")
        style = "bold red" if g.stalled else ""
        table.add_row(Text(f"{g.group} ({g.component})", style), lag, growth, commits)
    return table


def _models(status: Status) -> Table:
    table = _table("models serving", "worker", "model", "role", "version", "age")
    for s in status.serving:
        table.add_row(s.worker, s.model, s.role, s.version, format_age(s.age_seconds))
    if not status.serving:
        table.add_row("-", "-", "-", "none reported", "-")
    return table


def _facts(status: Status) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    training = status.training
    if training is not None:
        result = training.result or "no run yet"
        since = format_age(training.seconds_since)
        table.add_row("last training", f"{result}, {since} ago, {training.failures} failed in a row")
    replay = "-" if status.replay_rows is None else f"{status.replay_rows:,.0f} rows"
    table.add_row("replay store", replay)
    table.add_row("data freshness", f"newest input {format_age(status.data_age_seconds)} ago")
    dead = status.dead_letters
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(dead.by_reason.items(), key=lambda x: -x[1]))
    table.add_row(
        "dead letters", f"{dead.total:,} total" + (f"; newest {dead.window:,}: {reasons}" if reasons else "")
    )
    if status.unreadable:
        table.add_row("unreadable", ", ".join(f"{t} {n:,}" for t, n in status.unreadable.items()))
    if status.disk_free_ratio is not None:
        table.add_row("disk", f"{status.disk_free_ratio:.0%} free")
    return table


def _checks(status: Status) -> Table:
    table = _table("checks", "check", "result", "detail")
    for check in status.checks:
        if not check.ok:
            result, detail = Text("FAILING", "bold red"), "; ".join(p.message for p in check.problems)
        elif not check.evaluated:
            result, detail = Text("n/a", "dim"), check.note
        else:
            result, detail = Text("ok", "green"), check.note
        table.add_row(check.name, result, detail)
    return table


def render(status: Status, bootstrap: str) -> RenderableType:
    """The one-screen view of ``status``: processes, then topics beside lag, models and facts."""
    verdict = Text("HEALTHY", "bold green") if status.healthy else Text("UNHEALTHY", "bold red")
    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.taken_at))
    header = Text.assemble(
        "tradeloop ", verdict, f"  {bootstrap}  {taken}, sampled {status.window_seconds:.1f}s"
    )
    right = Group(_groups(status), _models(status), _facts(status))
    middle = Table.grid(padding=(0, 3))
    middle.add_row(_topics(status), right)
    warnings = [Text.assemble(("warning: ", "bold yellow"), w) for w in status.warnings]
    return Group(header, *warnings, _components(status), middle, _checks(status))


def _unreachable(settings: Settings, exc: BrokerError, as_json: bool) -> None:
    """Report a broker that cannot be reached: one line on stderr, and with ``--json`` the document
    on stdout (scripts parse stdout, people read stderr). The caller exits 1."""
    error = " ".join(str(exc).split())  # one line: librdkafka's messages may carry newlines
    if as_json:
        document = unreachable_document(settings.bootstrap, error, time.time(), settings_warnings(settings))
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    typer.echo(f"tradeloop status: broker unreachable at {settings.bootstrap}: {error}", err=True)


def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for machines instead of tables.")
    ] = False,
    window: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds to sample offsets for rates and stalls (default 3, "
            "TRADELOOP_HEALTH__STATUS_WINDOW_SECONDS); stalls need 10 s of samples or a health monitor.",
        ),
    ] = None,
) -> None:
    """Show each process up or down, consumer lag, event rates, dead letters, models serving, replay
    size, the last training and data freshness. Exits 1 when anything is unhealthy, so it can serve
    as a probe."""
    settings: Settings = ctx.obj
    try:
        result = take_status(settings, window)
    except BrokerError as exc:
        _unreachable(settings, exc, as_json)
        raise typer.Exit(1) from None
    if as_json:
        document: dict[str, Any] = {**result.to_dict(), "broker": broker_document(settings.bootstrap)}
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        Console().print(render(result, settings.bootstrap))
    if not result.healthy:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(status)

"""The one-screen view of ``tradeloop status`` (and ``tradeloop health --once``): a pure renderable.

Example:
    >>> import io
    >>> from rich.console import Console
    >>> from tradeloop.ops.status import evaluate
    >>> from tradeloop.ops.status_model import Observation
    >>> from streams.config.health import HealthSettings
    >>> console = Console(width=120, file=io.StringIO(), record=True)
    >>> console.print(render(evaluate(Observation(now=100.0), HealthSettings()), "127.0.0.1:19092"))
    >>> "UNHEALTHY" in console.export_text()
    True
"""

from __future__ import annotations

import time

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tradeloop.ops.status_model import Status, format_age
from tradeloop.ui.humanize import gauge, gauge_label

__all__ = ["render"]

_STATE_STYLE = {"UP": "green", "DEGRADED": "yellow", "STOPPED": "dim", "DOWN": "bold red"}
_SHOWN_GAUGES = 3  # per component row; the JSON has them all


def _table(title: str, *columns: str) -> Table:
    return Table(
        *columns, title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False
    )


def _components(status: Status) -> Table:
    table = _table("processes", "component", "id", "state", "beat", "gauges")
    for c in status.components:
        style = _STATE_STYLE.get(c.state, "")
        shown = [(k, v) for k, v in sorted(c.gauges.items()) if not k.endswith("_ts")][:_SHOWN_GAUGES]
        gauges = ", ".join(f"{gauge_label(k)} {gauge(k, v)}" for k, v in shown)
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

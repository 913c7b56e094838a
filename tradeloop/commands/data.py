"""``tradeloop data stats|export``: the trainer's replay store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from streams.settings import Settings
from tradeloop.ui.output import echo_json
from trainers.store.replay import ReplayStore

__all__ = ["register"]

data_app = typer.Typer(help="Inspect and export the replay store.", no_args_is_help=True)


def _time(us: int | None) -> str:
    return "-" if us is None else datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")


@data_app.command("stats")
def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Rows by status, trainable and censored rows, event-time range and ingest counters."""
    settings: Settings = ctx.obj
    with ReplayStore.open(settings.data_dir) as store:
        found = store.stats()
    if as_json:
        echo_json(found)
        return
    table = Table("replay store", "value", title=found["path"])
    table.add_row("rows", f"{found['rows']:,}")
    table.add_row("trainable (complete + corrected)", f"{found['trainable']:,}")
    table.add_row("censored (stored, never trained on)", f"{found['censored']:,}")
    for status, n in sorted(found["by_status"].items()):
        table.add_row(f"  status {status}", f"{n:,}")
    table.add_row("premium", f"{found['premium']:,}")
    table.add_row("event time", f"{_time(found['first_ts'])} .. {_time(found['last_ts'])}")
    if found["mean_return_unit"] is not None:
        table.add_row(
            "mean / rms unit return", f"{found['mean_return_unit']:.3g} / {found['rms_return_unit']:.3g}"
        )
    for family, n in sorted(found["families"].items()):
        table.add_row(f"  family {family}", f"{n:,}")
    for name, n in sorted(found["counters"].items()):
        table.add_row(f"  counter {name}", f"{n:,}")
    Console().print(table)


@data_app.command("export")
def export(
    ctx: typer.Context,
    fmt: Annotated[Literal["csv", "parquet"], typer.Option("--format", help="csv or parquet.")] = "parquet",
    out: Annotated[Path | None, typer.Option(help="Output file (default experiences.<format>).")] = None,
) -> None:
    """Write every stored experience (censored ones included) as CSV or Parquet."""
    from trainers.store.data_export import export_store  # pyarrow loads only when exporting

    settings: Settings = ctx.obj
    path = out or Path(f"experiences.{fmt}")
    with ReplayStore.open(settings.data_dir) as store:
        rows = export_store(store, path, fmt)
    Console().print(f"{rows:,} rows written to {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")

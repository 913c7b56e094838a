"""``tradeloop models list|show|promote|rollback|export``: the local model registry."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from streams.settings import Settings
from trainers.registry import ModelRegistry, promote, rollback

__all__ = ["register"]

models_app = typer.Typer(
    help="List, inspect, promote, roll back and export trained models.", no_args_is_help=True
)

Name = Annotated[str, typer.Option(help="Model name.")]


def _registry(settings: Settings, name: str) -> ModelRegistry:
    return ModelRegistry(settings.data_dir, name=name, keep_versions=settings.trainer.keep_versions)


@models_app.command("list")
def list_(ctx: typer.Context, name: Name = "sizer") -> None:
    """Every version in the registry, newest first; the serving one is marked."""
    registry = _registry(ctx.obj, name)
    table = Table("version", "status", "mode", "created", "hold-out sharpe", "gate lower bound", "parent")
    for row in registry.versions():
        created = datetime.fromtimestamp(row["created_us"] / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")
        status = f"[bold green]{row['status']}[/bold green]" if row["status"] == "serving" else row["status"]
        m = row.get("metrics", {})
        sharpe, lower = m.get("holdout_sharpe", float("nan")), m.get("gate_lower_bound", float("nan"))
        table.add_row(
            row["version"], status, row.get("mode") or "-", created, f"{sharpe:.4g}", f"{lower:.4g}",
            row.get("parent") or "-",
        )  # fmt: skip
    Console().print(table)


@models_app.command("show")
def show(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version; 'serving' for the serving one.")] = "serving",
    name: Name = "sizer",
    report: Annotated[bool, typer.Option(help="Print the full evaluation report too.")] = False,
) -> None:
    """A version's manifest (signature verified) and its gate decision."""
    settings: Settings = ctx.obj
    registry = _registry(settings, name)
    chosen = registry.serving_version if version == "serving" else version
    if chosen is None:
        Console().print("nothing serves yet")
        raise typer.Exit(1)
    model = registry.load(chosen, settings.signing_key())
    console = Console()
    console.print_json(model.manifest_json)
    stored = model.report()
    if report:
        console.print_json(json.dumps(stored, default=float))
    elif stored:
        console.print(f"gate: {json.dumps(stored.get('gate'))}")
        console.print(
            f"mode: {stored.get('mode')} ({stored.get('mode_reason')}); reason: {stored.get('reason')}"
        )


@models_app.command("promote")
def promote_(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version to serve.")],
    name: Name = "sizer",
    reason: Annotated[str, typer.Option(help="Reason recorded in the model update.")] = "operator promote",
) -> None:
    """Publish a stored version as the serving model (even one the gate rejected: operator's call)."""
    settings: Settings = ctx.obj
    model = promote(settings, _registry(settings, name), version, reason=reason)
    Console().print(f"published {model.manifest.name} {model.version} ({reason})")


@models_app.command("rollback")
def rollback_(ctx: typer.Context, name: Name = "sizer") -> None:
    """Republish the version that served before the current one."""
    settings: Settings = ctx.obj
    model = rollback(settings, _registry(settings, name))
    Console().print(f"rolled back: published {model.manifest.name} {model.version}")


@models_app.command("export")
def export(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version; 'serving' for the serving one.")],
    out: Annotated[Path, typer.Option(help="Directory to write model.onnx, manifest.json, signature.")],
    name: Name = "sizer",
) -> None:
    """Copy a version's ONNX model, manifest, signature and report to a directory."""
    settings: Settings = ctx.obj
    registry = _registry(settings, name)
    chosen = registry.serving_version if version == "serving" else version
    if chosen is None:
        Console().print("nothing serves yet")
        raise typer.Exit(1)
    model = registry.load(chosen, settings.signing_key())
    out.mkdir(parents=True, exist_ok=True)
    for item in sorted(model.path.iterdir()):
        if item.is_file():
            shutil.copy2(item, out / item.name)
    Console().print(f"exported {model.version} to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")

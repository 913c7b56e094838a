"""``tradeloop models list|show|promote|rollback|export``: the local model registry.

``tradeloop models show allocator`` shows the allocator's current weights (the newest
StrategyWeights per portfolio on the strategy-weights topic, and the serving version's hold-out
weights) and how the allocation evolved (the trainer's weight history of every evaluated version,
and the newest weights published on the topic); see docs/allocator.md.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka import KafkaException
from rich import box
from rich.console import Console
from rich.table import Table

from streams.errors import TradeloopError
from streams.settings import Settings
from tradeloop.ui.output import echo_json
from trainers.allocator.history import latest_per_portfolio, read_history, read_published_weights
from trainers.registry import ModelRegistry, StoredModel, promote, rollback

__all__ = ["register"]

models_app = typer.Typer(
    help="List, inspect, promote, roll back and export trained models.", no_args_is_help=True
)

Name = Annotated[str, typer.Option(help="Model name.")]
ALLOCATOR = "allocator"


def _registry(settings: Settings, name: str) -> ModelRegistry:
    return ModelRegistry(settings.data_dir, name=name, keep_versions=settings.trainer.keep_versions)


def _load_chosen(settings: Settings, name: str, version: str) -> StoredModel:
    """Version ``version`` of model ``name`` (``serving``: the one that serves), verified; exit 1 if none serves."""
    registry = _registry(settings, name)
    chosen = registry.serving_version if version == "serving" else version
    if chosen is None:
        Console().print("nothing serves yet")
        raise typer.Exit(1)
    return registry.load(chosen, settings.signing_key())


def _list_rows(registry: ModelRegistry) -> list[dict[str, Any]]:
    """The registry's versions, newest first, as plain data (what ``models list --json`` prints)."""
    rows = []
    for row in registry.versions():
        metrics = row.get("metrics", {})
        rows.append({
            "version": row["version"], "status": row["status"], "mode": row.get("mode"),
            "created_us": row["created_us"], "created": _time(row["created_us"]),
            "holdout_sharpe": metrics.get("holdout_sharpe"), "gate_lower_bound": metrics.get("gate_lower_bound"),
            "parent": row.get("parent"),
        })  # fmt: skip
    return rows


def _figure(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _short_version(version: str | None) -> str:
    """``v0007-20260101T120000`` -> ``v0007``: the sequence number names a version in its registry."""
    return "-" if not version else version.split("-", 1)[0]


@models_app.command("list")
def list_(
    ctx: typer.Context,
    name: Name = "sizer",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every version in the registry, newest first; the serving one is marked."""
    rows = _list_rows(_registry(ctx.obj, name))
    if as_json:
        echo_json({"model": name, "versions": rows})
        return
    # Fits 80 columns: the version is never wrapped or cut, the parent is its sequence number.
    table = Table(
        box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True,
        title=f"{name} versions (created in UTC; sharpe and gate lower bound on the hold-out)",
        title_justify="left",
    )  # fmt: skip
    table.add_column("version", no_wrap=True, min_width=max((len(r["version"]) for r in rows), default=7))
    for column in ("status", "mode", "created", "sharpe", "gate lb", "parent"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        status = f"[bold green]{row['status']}[/bold green]" if row["status"] == "serving" else row["status"]
        table.add_row(
            row["version"], status, row["mode"] or "-", row["created"][5:16], _figure(row["holdout_sharpe"]),
            _figure(row["gate_lower_bound"]), _short_version(row["parent"]),
        )  # fmt: skip
    Console().print(table)


@models_app.command("show")
def show(
    ctx: typer.Context,
    version: Annotated[
        str,
        typer.Argument(help="Version; 'serving' for the serving one; 'allocator' for the allocator view."),
    ] = "serving",
    name: Name = "sizer",
    report: Annotated[bool, typer.Option(help="Print the full evaluation report too.")] = False,
    topic: Annotated[bool, typer.Option(help="Allocator: read the strategy-weights topic.")] = True,
    last: Annotated[int, typer.Option(help="Allocator: history rows to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Allocator: print JSON instead of tables.")] = False,
) -> None:
    """A version's manifest (signature verified) and its gate decision; ``show allocator``: weights."""
    settings: Settings = ctx.obj
    if version == ALLOCATOR and name == "sizer":
        name, version = ALLOCATOR, "serving"
    if name == ALLOCATOR and not report:
        _show_allocator(settings, version, topic, last, as_json)
        return
    model = _load_chosen(settings, name, version)
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


def _time(us: int | None) -> str:
    return "-" if us is None else datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _allocator_state(settings: Settings, version: str, topic: bool, last: int) -> dict[str, Any]:
    """Everything ``models show allocator`` prints, as plain data."""
    registry = _registry(settings, ALLOCATOR)
    chosen = registry.serving_version if version == "serving" else version
    state: dict[str, Any] = {"version": chosen, "serving": registry.serving_version, "holdout": None}
    if chosen is not None:
        model = registry.load(chosen, settings.signing_key())
        stored = model.report()
        path = stored.get("weight_history", {})
        candidate = path.get("weights", {}).get("candidate") or []
        state["holdout"] = {
            "strategies": model.manifest.strategies,
            "mean": stored.get("mean_weights", {}).get("candidate", {}),
            "last": dict(zip(model.manifest.strategies, candidate[-1], strict=True)) if candidate else {},
            "last_period_start": path.get("period_start", [None])[-1],
            "sharpe": {k: v["sharpe"] for k, v in stored.get("policies", {}).items()},
        }
    state["history"] = read_history(registry.root)[-last:]
    state["published"], state["topic_error"] = [], None
    if topic:
        try:
            state["published"] = read_published_weights(settings)
        except (KafkaException, TradeloopError) as exc:
            state["topic_error"] = str(exc)
    state["current"] = latest_per_portfolio(state["published"])
    return state


def _weights_row(strategies: Sequence[str], weights: Mapping[str, float]) -> list[str]:
    return [f"{weights[s]:.3f}" if s in weights else "-" for s in strategies]


def _show_allocator(settings: Settings, version: str, topic: bool, last: int, as_json: bool) -> None:
    state = _allocator_state(settings, version, topic, last)
    console = Console()
    if as_json:
        console.print_json(json.dumps(state, default=float))
        return
    hold, current, entries = state["holdout"], state["current"], state["history"]
    names = (
        list(hold["strategies"]) if hold
        else sorted({s for r in current.values() for s in r["strategies"]}) or
        (list(entries[-1]["strategies"]) if entries else [])
    )  # fmt: skip
    table = Table("source", "as of", "model", *names, title=f"allocator weights (serving {state['serving']})")
    for portfolio, record in sorted(current.items()):
        weights = dict(zip(record["strategies"], record["weights"], strict=True))
        model = (
            "fallback: " + str(record["fallback_reason"]) if record["fallback"] else record["model_version"]
        )
        table.add_row(f"published {portfolio}", _time(record["ts"]), model, *_weights_row(names, weights))
    if hold:
        table.add_row("hold-out mean", "-", state["version"], *_weights_row(names, hold["mean"]))
        table.add_row("hold-out last", _time(hold["last_period_start"]), state["version"],
                      *_weights_row(names, hold["last"]))  # fmt: skip
    if table.rows:
        console.print(table)
    else:
        console.print("no allocator serves and no StrategyWeights were read")
    if state["topic_error"]:
        console.print(f"[yellow]strategy-weights topic not read:[/yellow] {state['topic_error']}")
    history = Table("evaluated", "version", "result", "sharpe cand/equal", *names,
                    title="weight history: mean hold-out weights per evaluated version")  # fmt: skip
    for entry in entries:
        result = "published" if entry["published"] else ("passed" if entry["passed"] else "rejected")
        sharpe = entry["holdout_sharpe"]
        history.add_row(_time(entry["ts_us"]), entry["version"], result,
                        f"{sharpe.get('candidate', float('nan')):.3f}/{sharpe.get('equal', float('nan')):.3f}",
                        *_weights_row(names, entry["mean_weights"]))  # fmt: skip
    if history.rows:
        console.print(history)
    served = Table("published", "portfolio", "model", *names, title="weights published on the topic (newest)")
    for record in state["published"][-last:]:
        weights = dict(zip(record["strategies"], record["weights"], strict=True))
        model = "fallback" if record["fallback"] else record["model_version"]
        served.add_row(_time(record["ts"]), record["portfolio"], model, *_weights_row(names, weights))
    if served.rows:
        console.print(served)


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
    model = _load_chosen(settings, name, version)
    out.mkdir(parents=True, exist_ok=True)
    for item in sorted(model.path.iterdir()):
        if item.is_file():
            shutil.copy2(item, out / item.name)
    Console().print(f"exported {model.version} to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")

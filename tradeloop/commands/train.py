"""``tradeloop trainer`` (the learning loop), ``tradeloop train --once`` and ``tradeloop train log``."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from streams.lifetime import StopDeadline, kill_group_leftovers, on_stop_signals
from streams.settings import Settings
from tradeloop.ui.output import echo_json

__all__ = ["register"]

train_app = typer.Typer(
    help="Train the sizer (or the allocator) once, or read the training log.", invoke_without_command=True
)

RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address", envvar="RAY_ADDRESS", help="Ray cluster address; unset starts a local Ray."
    ),
]


def _with_ray(settings: Settings, address: str | None) -> Settings:
    if not address:
        return settings
    return settings.model_copy(
        update={"trainer": settings.trainer.model_copy(update={"ray_address": address})}
    )


def trainer(
    ctx: typer.Context,
    ray_address: RayAddress = None,
    max_runs: Annotated[int | None, typer.Option(help="Exit after this many finished runs.")] = None,
) -> None:
    """Run the learning loop: ingest experiences, retrain on triggers, gate and publish models.

    Ctrl-C, SIGTERM or SIGHUP stops it (within TRADELOOP_STOP_GRACE_SECONDS); a run in progress
    resumes from its checkpoint next time.
    """
    from trainers.rl.ppo import ensure_ray, shutdown_ray
    from trainers.run.loop import TrainerLoop

    settings = _with_ray(ctx.obj, ray_address)
    stop = threading.Event()
    deadline = StopDeadline(settings.stop_grace_seconds)
    on_stop_signals(stop.set, deadline)
    # Ray's C++ failure-signal handler stays off (trainers.rl sets that before ray is imported);
    # its Python handler of a stop signal during ray.init raises SystemExit, caught below.
    try:
        try:
            ensure_ray(settings.trainer)
        except SystemExit:  # Ray's handler of a stop signal while it started: a stop like any other
            stop.set()
        # Take the stop signals back from Ray, so that they only ask the loop to stop: it finishes
        # its iteration, flushes and says goodbye within stop_grace_seconds, or the deadline exits
        # the process (Ray's processes die with it).
        on_stop_signals(stop.set, deadline)
        if not stop.is_set():
            TrainerLoop(settings).run(stop, max_runs=max_runs)
    finally:
        shutdown_ray()
        kill_group_leftovers()  # Ray's agents whose raylet went first (when this process leads its group)


@train_app.callback()
def train(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Ingest what is on the topic, then train one run.")
    ] = False,
    full: Annotated[bool, typer.Option(help="Train from scratch instead of warm-starting.")] = False,
    publish: Annotated[bool, typer.Option(help="Publish the model if it passes the gate.")] = True,
    no_ingest: Annotated[
        bool, typer.Option("--no-ingest", help="Train on the replay store as it is.")
    ] = False,
    report_json: Annotated[Path | None, typer.Option(help="Also write the run's report here.")] = None,
    ray_address: RayAddress = None,
    model: Annotated[
        str,
        typer.Option(help="Which model: sizer (from experiences) or allocator (from allocation periods)."),
    ] = "sizer",
) -> None:
    """``tradeloop train --once`` trains one run; ``tradeloop train log`` shows the training log."""
    if ctx.invoked_subcommand is not None:
        return
    if not once:
        Console().print(ctx.get_help())
        raise typer.Exit(0)
    if model not in ("sizer", "allocator"):
        raise typer.BadParameter("sizer or allocator", param_hint="--model")
    from trainers.allocator.track import train_allocator_once
    from trainers.sizer.track import train_sizer_once

    settings = _with_ray(ctx.obj, ray_address)
    once_fn = train_allocator_once if model == "allocator" else train_sizer_once
    outcome = once_fn(
        settings, full=full, publish=publish, ingest=not no_ingest, console=Console(stderr=True)
    )
    gate = outcome.report["gate"]
    table = Table(
        "candidate", "mode", "gate", f"{gate['metric']} lower bound vs {gate['reference']}", "published"
    )
    table.add_row(
        outcome.version,
        outcome.mode,
        "[green]passed[/green]" if outcome.gate_passed else "[red]rejected[/red]",
        f"{gate['lower_bound']:.4g} (margin {gate['margin']:g})",
        "yes" if outcome.published else "no",
    )
    policies = Table("policy", *next(iter(outcome.report["policies"].values())).keys(), title="hold-out")
    for name, values in outcome.report["policies"].items():
        policies.add_row(name, *(f"{v:.4g}" for v in values.values()))
    console = Console()
    console.print(table, policies)
    if report_json is not None:
        report_json.write_text(json.dumps(outcome.report, indent=2, default=float))
    if not outcome.gate_passed:
        raise typer.Exit(3)


_ITERATION_NUMBERS = ("return_mean", "policy_loss", "vf_loss", "entropy", "kl", "grad_norm", "explained_var",
                      "dead_units", "mean_multiplier")  # fmt: skip


@train_app.command("log")
def log(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option(help="Only this run id.")] = None,
    export: Annotated[str | None, typer.Option(help="Export format: csv.")] = None,
    out: Annotated[Path, typer.Option(help="Export path.")] = Path("trainlog.csv"),
    last: Annotated[int, typer.Option(help="Runs to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show the training log (runs and their iterations), or export it with ``--export csv``."""
    from trainers.store.trainlog import TrainLog

    settings: Settings = ctx.obj
    trainlog = TrainLog.open(settings.data_dir)
    console = Console()
    if export is not None:
        if export != "csv":
            raise typer.BadParameter("only csv is supported", param_hint="--export")
        rows = trainlog.export_csv(out, run)
        console.print(f"{rows} iterations written to {out}")
        return
    runs = trainlog.runs(last)
    chosen = run or next((r["run_id"] for r in trainlog.runs(1)), None)
    iterations = [] if chosen is None else trainlog.iterations(chosen)
    if as_json:
        for it in iterations:
            it["checks"] = json.loads(it["checks"])
        echo_json({"runs": runs, "iterations_of": chosen, "iterations": iterations})
        return
    table = Table("run", "status", "mode", "reason", "rows", "version", "gate", "published", title="runs")
    for r in runs:
        gate = "-" if r["gate_passed"] is None else ("passed" if r["gate_passed"] else "rejected")
        table.add_row(r["run_id"], r["status"], r["mode"], (r["reason"] or "")[:50], str(r["rows"]),
                      r["version"] or "-", gate, "yes" if r["published"] else "no")  # fmt: skip
    console.print(table)
    if chosen is None:
        return
    iters = Table("it", *_ITERATION_NUMBERS, "checks", title=f"iterations of {chosen}")
    for i in iterations:
        values = ["-" if i[k] is None else f"{i[k]:.4g}" for k in _ITERATION_NUMBERS]
        iters.add_row(str(i["iteration"]), *values, ", ".join(json.loads(i["checks"])) or "ok")
    console.print(iters)


def register(app: typer.Typer) -> None:
    app.command()(trainer)
    app.add_typer(train_app, name="train")

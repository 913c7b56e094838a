"""The PPO iteration loop shared by the sizer's and the allocator's runs.

Each iteration trains, adds the caller's probe statistics (dead units, mean action), runs the
health checks, logs to the training log, checkpoints the algorithm and records progress in the
run directory, so an interrupted run resumes at the next iteration. A non-finite loss fails the
run; a set ``stop`` event interrupts it between iterations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trainers.errors import TrainingError, TrainingInterrupted
from trainers.rl.ppo import PPORunner
from trainers.run.state import RunDir
from trainers.store.trainlog import TrainLog, iteration_checks

__all__ = ["Probe", "run_iterations"]

log = logging.getLogger(__name__)

# Statistics of the current weights on probe observations, added to each iteration's stats.
Probe = Callable[[dict[str, np.ndarray]], dict[str, float]]


def run_iterations(
    runner: PPORunner,
    run: RunDir,
    *,
    trainlog: TrainLog,
    probe: Probe,
    console: Console,
    progress: bool,
    stop: threading.Event | None,
    on_iteration: Callable[[dict[str, float]], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Train the run's remaining iterations; returns the final weights and the last statistics.

    Raises:
        TrainingInterrupted: ``stop`` was set (the run resumes from its checkpoint).
        TrainingError: an iteration produced a non-finite loss.
    """
    info: dict[str, Any] = run.info()
    last: dict[str, float] = {}
    start = int(info["iterations_done"])
    total = int(info["iterations"])
    columns = (
        TextColumn("[bold]train[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("return {task.fields[ret]}  loss {task.fields[loss]}"), TimeElapsedColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task(info["run_id"], total=total, completed=start, ret="-", loss="-")
        for iteration in range(start + 1, total + 1):
            if stop is not None and stop.is_set():
                raise TrainingInterrupted(f"run {info['run_id']} stopped after iteration {iteration - 1}")
            stats = runner.train()
            stats.update(probe(runner.weights()))
            checks = iteration_checks(stats)
            trainlog.log_iteration(info["run_id"], iteration, stats, checks)
            if on_iteration is not None:
                on_iteration(stats)
            log.info(
                "run %s iteration %d/%d: return %.4g, loss %.4g, grad %.3g, ev %.3f%s",
                info["run_id"], iteration, total, stats["return_mean"], stats["total_loss"],
                stats["grad_norm"], stats["explained_var"], f" checks {checks}" if checks else "",
            )  # fmt: skip
            if "non_finite_loss" in checks:
                raise TrainingError(f"iteration {iteration}: non-finite loss {stats}")
            runner.save(run.checkpoint)
            run.update(iterations_done=iteration, env_steps=stats["env_steps"])
            bar.update(
                task,
                completed=iteration,
                ret=f"{stats['return_mean']:.4g}",
                loss=f"{stats['total_loss']:.4g}",
            )
            last = stats
    return runner.weights(), last

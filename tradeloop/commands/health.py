"""``tradeloop health``: the health monitor with its recovery actions wired to the trainer's registry.

The monitor itself lives in :mod:`streams.health` and knows nothing of trainers or agents; this
module registers the actions that need them (restore a model, retry training, free disk space).
``tradeloop up`` can run the same monitor in a thread with :func:`streams.health.run_health_monitor`
and :func:`default_actions`.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
from typing import Annotated

import typer
from rich.console import Console

from streams.errors import TradeloopError
from streams.health import (
    CLEAN_DISK,
    RESTORE_MODEL,
    RETRY_TRAINING,
    Action,
    HealthMonitor,
    run_health_monitor,
)
from streams.heartbeat import component_id
from streams.metrics import DEFAULT_PORTS, serve_metrics
from streams.settings import Settings
from streams.status import Problem
from streams.status_model import HEALTH_COMPONENT, MODEL_NAMES
from tradeloop.commands.status import render
from tradeloop.supervisor import Supervisor

__all__ = ["HEALTH_PORT", "default_actions", "register", "restart_child"]

log = logging.getLogger(__name__)

HEALTH_PORT = DEFAULT_PORTS.get(HEALTH_COMPONENT, 9305)


def _restore_model(settings: Settings) -> Action:
    def restore(problem: Problem) -> str:
        """Republish the registry's serving version, or roll back when that is the rejected one."""
        from trainers.registry import ModelRegistry, promote, rollback

        registry = ModelRegistry(settings.data_dir, problem.subject, settings.trainer.keep_versions)
        rejected = problem.facts.get("version")
        serving = registry.serving_version
        if serving is not None and serving != rejected:
            model = promote(settings, registry, serving, reason="restore")
        else:
            model = rollback(settings, registry)
        return (
            f"republished {problem.subject} {model.version} in place of {rejected or 'the rejected version'}"
        )

    return restore


def restart_child(supervisor: Supervisor, name: str, timeout: float = 30.0) -> Action:
    """An action that restarts the supervised child ``name`` (``tradeloop up`` registers it for the
    trainer): a trainer that keeps failing or stopped training gets a fresh process, which resumes an
    interrupted run from its checkpoint. Its own loop already retries single failures with backoff."""

    def restart(problem: Problem) -> str:
        child = next((c for c in supervisor.children if c.name == name), None)
        if child is None or child.process is None:
            raise TradeloopError(f"no supervised {name} to restart")
        old = child.process
        if child.alive:
            old.terminate()
            try:
                old.wait(timeout)
            except subprocess.TimeoutExpired:
                old.kill()
                old.wait()
        supervisor.restart(child)
        new = child.process.pid if child.process is not None else "?"
        return f"restarted {name} (pid {old.pid} -> {new}, restart {child.restarts}) for: {problem.message}"

    return restart


def _clean_disk(settings: Settings) -> Action:
    def clean(problem: Problem) -> str:
        """Prune old model versions (sparing serving and rollback target) and trim the replay store."""
        from trainers.registry import ModelRegistry
        from trainers.store.replay import ReplayStore

        pruned: list[str] = []
        for name in MODEL_NAMES:
            if (settings.data_dir / "models" / name).is_dir():
                registry = ModelRegistry(settings.data_dir, name, settings.trainer.keep_versions)
                pruned += [f"{name} {v}" for v in registry.prune()]
        deleted = 0
        replay = settings.data_dir / "replay" / "experiences.sqlite"
        if replay.exists():
            cfg = settings.trainer
            with ReplayStore(replay) as store:
                # Low disk: keep half the configured rows, the newest ones.
                keep = max(cfg.min_train_rows, cfg.replay_max_rows // 2)
                deleted = store.enforce_retention(keep, int(cfg.replay_max_age_days * 86_400e6))
        return f"pruned {len(pruned)} model versions ({', '.join(pruned) or 'none'}), {deleted:,} replay rows"

    return clean


def default_actions(settings: Settings, supervisor: Supervisor | None = None) -> dict[str, Action]:
    """The recovery actions of a monitor that runs beside the trainer's data directory.

    With the ``supervisor`` of ``tradeloop up``, a failing or idle trainer is restarted; without one
    (the compose stack, where Docker restarts exited containers) training retries stay the trainer
    loop's own, and the monitor reports the problem (``result="unregistered"``) for the alert.
    """
    actions = {RESTORE_MODEL: _restore_model(settings), CLEAN_DISK: _clean_disk(settings)}
    if supervisor is not None:
        actions[RETRY_TRAINING] = restart_child(supervisor, "trainer")
    return actions


def health(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run one check, print it, exit 1 if unhealthy.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print JSON.")] = False,
    actions: Annotated[
        bool, typer.Option("--actions/--no-actions", help="Run recovery actions for failing checks.")
    ] = True,
) -> None:
    """Run the health monitor: every TRADELOOP_HEALTH__CHECK_INTERVAL_SECONDS (10 s) it checks data
    freshness, model freshness and integrity, training activity, stalled consumers and disk space,
    exports each check as tradeloop_health_* metrics, and runs the recovery action of a failing check
    (restore the last good model, retry training, clean old models and replay rows) with backoff."""
    settings: Settings = ctx.obj
    registered = default_actions(settings) if actions else {}
    if once:
        monitor = HealthMonitor(settings, registered)
        try:
            result = monitor.check_once()
        finally:
            monitor.close()
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        else:
            Console().print(render(result, settings.bootstrap))
        if not result.healthy:
            raise typer.Exit(1)
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    port = settings.metrics_port if settings.metrics_port is not None else HEALTH_PORT
    serve_metrics(settings, HEALTH_COMPONENT, component_id(HEALTH_COMPONENT), port)
    run_health_monitor(settings, registered, stop)


def register(app: typer.Typer) -> None:
    app.command()(health)

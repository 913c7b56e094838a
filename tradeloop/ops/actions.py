"""The health monitor's recovery actions, wired to the trainer's registry and stores.

The monitor (:mod:`tradeloop.ops.health`) knows checks and actions by name only; these are the
actions it runs: restore the last good model, clean old models and replay rows when the disk runs
low, and, under a supervisor (``tradeloop up``), restart a trainer that keeps failing. Paths come
from :class:`streams.datadir.DataDir`, the same layout the trainer writes.

Example:
    >>> actions = default_actions(settings, supervisor)               # doctest: +SKIP
    >>> sorted(actions)                                               # doctest: +SKIP
    ['clean_disk', 'restore_model', 'retry_training']
"""

from __future__ import annotations

from streams.datadir import DataDir
from streams.errors import TradeloopError
from streams.settings import Settings
from tradeloop.ops.health import CLEAN_DISK, RESTORE_MODEL, RETRY_TRAINING, Action
from tradeloop.ops.status_model import MODEL_NAMES, Problem
from tradeloop.ops.supervisor import Supervisor

__all__ = ["clean_disk", "default_actions", "restart_child", "restore_model"]


def restore_model(settings: Settings) -> Action:
    """Republish the registry's serving version, or roll back when that is the rejected one."""

    def restore(problem: Problem) -> str:
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


def clean_disk(settings: Settings) -> Action:
    """Prune old model versions (sparing serving and rollback target) and trim the replay store."""

    def clean(problem: Problem) -> str:
        from trainers.registry import ModelRegistry
        from trainers.store.replay import ReplayStore

        layout = DataDir(settings.data_dir)
        pruned: list[str] = []
        for name in MODEL_NAMES:
            if layout.model(name).is_dir():
                registry = ModelRegistry(settings.data_dir, name, settings.trainer.keep_versions)
                pruned += [f"{name} {v}" for v in registry.prune()]
        deleted = 0
        if layout.experiences_db.exists():
            cfg = settings.trainer
            with ReplayStore(layout.experiences_db) as store:
                # Low disk: keep half the configured rows, the newest ones.
                keep = max(cfg.min_train_rows, cfg.replay_max_rows // 2)
                deleted = store.enforce_retention(keep, int(cfg.replay_max_age_days * 86_400e6))
        return f"pruned {len(pruned)} model versions ({', '.join(pruned) or 'none'}), {deleted:,} replay rows"

    return clean


def restart_child(supervisor: Supervisor, name: str) -> Action:
    """Ask the supervisor to restart child ``name`` (``tradeloop up`` registers it for the trainer).

    A trainer that keeps failing or stopped training gets a fresh process, which resumes an
    interrupted run from its checkpoint; its own loop already retries single failures with backoff.
    The supervisor stops the old process at once and starts the new one from its own thread, under
    its restart policy (a restart counts towards ``max_restarts``).
    """

    def restart(problem: Problem) -> str:
        try:
            child = supervisor.request_restart(name, problem.message)
        except KeyError:
            raise TradeloopError(f"no supervised {name} to restart") from None
        return f"asked the supervisor to restart {name} (pid {child.pid}) for: {problem.message}"

    return restart


def default_actions(settings: Settings, supervisor: Supervisor | None = None) -> dict[str, Action]:
    """The recovery actions of a monitor that runs beside the trainer's data directory.

    With the ``supervisor`` of ``tradeloop up``, a failing or idle trainer is restarted; without one
    (the compose stack, where Docker restarts exited containers) training retries stay the trainer
    loop's own, and the monitor reports the problem (``result="unregistered"``) for the alert.
    """
    actions = {RESTORE_MODEL: restore_model(settings), CLEAN_DISK: clean_disk(settings)}
    if supervisor is not None:
        actions[RETRY_TRAINING] = restart_child(supervisor, "trainer")
    return actions

"""Settings of the trainer: replay store, triggers, PPO, evaluation gate and registry."""

from __future__ import annotations

from streams.config.base import Section

__all__ = ["TrainerSettings"]


class TrainerSettings(Section):
    """Knobs of the learning loop. Defaults suit one 2-core machine."""

    num_cpus: int = 2
    seed: int = 7
    min_new_experiences: int = 100
    retrain_interval_seconds: float = 3600.0
    full_retrain_every: int = 5
    replay_max_rows: int = 1_000_000
    holdout_fraction: float = 0.25
    gate_metric: str = "sharpe"
    gate_margin: float = 0.0
    keep_versions: int = 10

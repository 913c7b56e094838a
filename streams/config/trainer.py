"""Settings of the trainer: replay store, triggers, PPO, evaluation gate and registry.

Every field can be set as ``TRADELOOP_TRAINER__<FIELD>``, e.g.
``TRADELOOP_TRAINER__MIN_NEW_EXPERIENCES=500``. ``docs/trainer.md`` explains what each group does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streams.config.base import Section

__all__ = ["AllocatorTrainerSettings", "TrainerSettings"]


class AllocatorTrainerSettings(Section):
    """The allocator's knobs (``TRADELOOP_TRAINER__ALLOCATOR__<FIELD>``); docs/allocator.md explains them.

    The gate (metric, margin, confidence, bootstrap), Ray, seed, parity tolerance, registry size
    and publishing are shared with the sizer's fields of :class:`TrainerSettings`.
    """

    enabled: bool = Field(default=True, description="ingest allocation periods and train the allocator")
    # Reward: weights of the Sharpe, P&L and drawdown terms of each period (docs/allocator.md).
    reward_sharpe_weight: float = Field(default=0.6, ge=0)
    reward_pnl_weight: float = Field(default=0.3, ge=0)
    reward_drawdown_weight: float = Field(default=0.1, ge=0)
    logit_bound: float = Field(
        default=4.0,
        gt=0,
        description="logits = bound x the policy's action in [-1, 1] (weight ratio <= e^(2 bound))",
    )
    obs_noise: float = Field(
        default=2.0, ge=0, description="std of noise on the normalised observations in training (regulariser)"
    )
    # PPO
    iterations: int = Field(default=12, ge=1, description="PPO iterations of a full retrain")
    warm_iterations: int = Field(default=4, ge=1, description="PPO iterations of a warm-started run")
    train_batch_size: int = Field(default=2048, ge=64)
    minibatch_size: int = Field(default=512, ge=16)
    num_epochs: int = Field(default=6, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    entropy_coeff: float = Field(default=0.0, ge=0)
    hidden: tuple[int, ...] = Field(default=(16,), description="hidden layer widths of the MLPs")
    init_log_std: float = Field(default=-1.0, description="initial log std of the Gaussian over logits/bound")
    num_envs: int = Field(default=16, ge=1)
    episode_len: int = Field(default=32, ge=4, description="periods per episode")
    # Data, hold-out and triggers
    window_periods: int = Field(default=50_000, ge=20, description="newest periods a run uses")
    min_train_periods: int = Field(default=100, ge=10, description="fewest training periods to train on")
    holdout_fraction: float = Field(default=0.25, gt=0, lt=1)
    inverse_vol_window: int = Field(
        default=24, ge=2, description="trailing periods of the inverse-volatility baseline"
    )
    min_new_periods: int = Field(default=24, ge=1, description="retrain after this many new periods")
    retrain_interval_seconds: float = Field(default=3600.0, gt=0)
    drift_threshold: float = Field(default=0.25, gt=0)
    drift_min_periods: int = Field(default=50, ge=10)
    bootstrap_block: int = Field(
        default=5, ge=1, description="moving-block length (periods) of the bootstrap"
    )
    replay_max_periods: int = Field(default=500_000, ge=100)


class TrainerSettings(Section):
    """Knobs of the learning loop. Defaults suit one 2-core machine."""

    # Ray and PPO
    num_cpus: int = Field(default=2, ge=1, description="CPUs of the local Ray instance")
    ray_address: str = Field(
        default="", description="Ray cluster address; empty starts a local Ray (the CLI maps RAY_ADDRESS)"
    )
    torch_threads: int = Field(
        default=1, ge=1, description="torch intra-op threads of the trainer (1 is fastest for its tiny MLPs)"
    )
    seed: int = 7
    iterations: int = Field(default=16, ge=1, description="PPO iterations of a full retrain")
    warm_iterations: int = Field(default=6, ge=1, description="PPO iterations of a warm-started run")
    train_batch_size: int = Field(default=4096, ge=64, description="env steps per PPO iteration")
    minibatch_size: int = Field(default=1024, ge=16)
    num_epochs: int = Field(default=8, ge=1)
    lr: float = Field(default=5e-3, gt=0)
    entropy_coeff: float = Field(default=0.0, ge=0)
    clip_param: float = Field(default=0.5, gt=0)
    grad_clip: float = Field(default=10.0, gt=0, description="global-norm gradient clip")
    hidden: tuple[int, ...] = Field(default=(32, 32), description="hidden layer widths of the MLPs")
    init_log_std: float = Field(default=0.0, description="initial log std of the Gaussian policy")
    num_envs: int = Field(default=64, ge=1, description="vectorised sizer envs in the env runner")
    episode_len: int = Field(default=64, ge=8, description="signals per episode")

    # Reward and risk
    risk: Literal["cvar", "variance", "none"] = "cvar"
    risk_weight: float = Field(default=0.1, ge=0, description="weight of the risk term in the reward")
    risk_alpha: float = Field(default=0.05, gt=0, lt=1, description="tail share of the CVaR risk term")

    # Replay store and sampling
    group_id: str = "tradeloop-trainer"
    replay_max_rows: int = Field(default=1_000_000, ge=100)
    replay_max_age_days: float = Field(default=90.0, gt=0, description="event-time age limit of rows")
    sampling: Literal["priority", "uniform"] = "priority"
    priority_alpha: float = Field(default=0.6, ge=0, description="exponent on |profitability|")
    priority_beta: float = Field(default=1.0, ge=0, le=1, description="importance-weight correction")
    priority_epsilon: float = Field(default=0.05, gt=0)
    premium_boost: float = Field(default=2.0, ge=1, description="priority factor of premium signals")
    window_rows: int = Field(default=200_000, ge=100, description="newest trainable rows a run uses")
    min_train_rows: int = Field(default=400, ge=50, description="fewest trainable rows to train on")

    # Triggers and retries
    min_new_experiences: int = 100
    retrain_interval_seconds: float = 3600.0
    check_interval_seconds: float = Field(default=1.0, gt=0)
    full_retrain_every: int = Field(default=5, ge=1, description="every K-th run trains from scratch")
    drift_threshold: float = Field(default=0.25, gt=0, description="max per-feature PSI before retraining")
    drift_min_rows: int = Field(default=200, ge=10)
    uplift_min_rows: int = Field(default=200, ge=10, description="live rows needed to judge uplift")
    uplift_decay_tolerance: float = Field(
        default=0.5, ge=0, description="retrain when live uplift < (1 - tolerance) x hold-out uplift"
    )
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=600.0, gt=0)

    # Evaluation gate and registry
    holdout_fraction: float = Field(default=0.25, gt=0, lt=1)
    gate_metric: Literal["sharpe", "mean_return", "cvar", "max_drawdown", "win_rate", "profit_factor"] = (
        "sharpe"
    )
    gate_margin: float = 0.0
    gate_confidence: float = Field(default=0.9, gt=0.5, lt=1, description="one-sided bootstrap level")
    bootstrap_samples: int = Field(default=1000, ge=100)
    bootstrap_block: int = Field(default=10, ge=1, description="moving-block length of the bootstrap")
    parity_atol: float = Field(default=1e-5, gt=0)
    publish: bool = Field(default=True, description="publish promoted models to the model-updates topic")
    keep_versions: int = Field(default=10, ge=2)

    allocator: AllocatorTrainerSettings = Field(default_factory=AllocatorTrainerSettings)

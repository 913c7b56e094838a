"""Every Ray RLlib call of tradeloop lives here (Ray 2.60, new API stack), since RLlib's API moves.

PPO on :class:`trainers.sizer.env.SizerEnv` (or :class:`trainers.allocator.env.AllocatorEnv`)
with :class:`trainers.rl.module.PolicyTorchModule`, configured from
:class:`streams.config.trainer.TrainerSettings` through a :class:`PPOSpec`. Each sizer step is an
independent signal and each allocator step an independent period (the weights do not change the
next state), contextual bandits both, so ``gamma = 0`` and the advantage is the reward minus the
learned value of the state.

Ray runs locally (``num_cpus`` from the settings) unless ``ray_address`` names a cluster. The
sampling env runner and the learner run in the driver process (``num_env_runners=0``,
``num_learners=0``), which is fastest on 2 cores; with more runners on a cluster, the run's data
file must be on storage every node can read.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import gymnasium as gym
import numpy as np
import ray
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from streams.config.trainer import TrainerSettings
from streams.lifetime import STOP_SIGNALS
from trainers.allocator.env import AllocatorEnv
from trainers.errors import TrainingError
from trainers.rl.module import PolicyTorchModule
from trainers.sizer.env import SizerEnv

__all__ = ["MODULE_ID", "PPORunner", "PPOSpec", "build_config", "ensure_ray", "shutdown_ray"]

log = logging.getLogger(__name__)

MODULE_ID: Final = "default_policy"

# Result keys of Algorithm.train() on the new API stack, mapped to tradeloop's names.
_LEARNER_KEYS: Final = {
    "policy_loss": "policy_loss",
    "vf_loss": "vf_loss",
    "entropy": "entropy",
    "mean_kl_loss": "kl",
    "total_loss": "total_loss",
    "vf_explained_var": "explained_var",
    "gradients_default_optimizer_global_norm": "grad_norm",
}


def ensure_ray(cfg: TrainerSettings) -> None:
    """Start (or connect to) Ray once per process, and set the driver's torch threads."""
    # The learner and env runner run in this process; with tiny MLPs more threads only contend
    # (measured: 1 thread ran a PPO iteration 4x faster than 2 on a busy 2-core machine).
    torch.set_num_threads(cfg.torch_threads)
    if ray.is_initialized():
        return
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "ignore_reinit_error": True,
    }
    if cfg.ray_address:
        log.info("connecting to the Ray cluster at %s", cfg.ray_address)
        ray.init(address=cfg.ray_address, **common)
    else:
        # "local" always starts a private instance, whatever the environment says.
        ray.init(address="local", num_cpus=cfg.num_cpus, **common)


def shutdown_ray() -> None:
    """Stop this process's Ray instance (or its connection to a cluster), if one is running.

    The process's stop-signal handlers outlive it: when Ray's C++ failure-signal handler is on
    (``RAY_DISABLE_FAILURE_SIGNAL_HANDLER=0``, or ray imported before :mod:`trainers.rl`), the
    shutdown sets SIGTERM back to the default action beneath Python's handler, and a second stop
    signal would kill the process instead of reaching it. They are installed again afterwards.
    """
    if not ray.is_initialized():
        return
    main = threading.current_thread() is threading.main_thread()
    kept = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if main else {}
    try:
        ray.shutdown()
    finally:
        for sig, handler in kept.items():
            if handler is not None:
                signal.signal(sig, handler)


@dataclass(frozen=True, slots=True)
class PPOSpec:
    """The env and PPO hyperparameters of one learning problem."""

    env: type[gym.Env[Any, Any]]
    train_batch_size: int
    minibatch_size: int
    num_epochs: int
    lr: float
    entropy_coeff: float
    hidden: tuple[int, ...]
    init_log_std: float
    num_envs: int
    init_mean: float | None = None  # None: the sizer's multiplier 1.0

    @classmethod
    def sizer(cls, cfg: TrainerSettings) -> PPOSpec:
        return cls(
            SizerEnv, cfg.train_batch_size, cfg.minibatch_size, cfg.num_epochs, cfg.lr, cfg.entropy_coeff,
            cfg.hidden, cfg.init_log_std, cfg.num_envs,
        )  # fmt: skip

    @classmethod
    def allocator(cls, cfg: TrainerSettings) -> PPOSpec:
        """The allocator's spec; its mean starts at 0, i.e. logits 0 and equal weights."""
        a = cfg.allocator
        return cls(
            AllocatorEnv, a.train_batch_size, a.minibatch_size, a.num_epochs, a.lr, a.entropy_coeff,
            a.hidden, a.init_log_std, a.num_envs, init_mean=0.0,
        )  # fmt: skip


def build_config(
    cfg: TrainerSettings, env_config: Mapping[str, Any], seed: int, spec: PPOSpec | None = None
) -> PPOConfig:
    """The PPO config of one run, built from the trainer settings (the sizer's unless ``spec``)."""
    spec = spec or PPOSpec.sizer(cfg)
    minibatch = min(spec.minibatch_size, spec.train_batch_size)
    model_config: dict[str, Any] = {"hidden": list(spec.hidden), "init_log_std": spec.init_log_std}
    if spec.init_mean is not None:
        model_config["init_mean"] = spec.init_mean
    return (
        PPOConfig()
        .environment(env=spec.env, env_config=dict(env_config), disable_env_checking=True)
        .env_runners(
            num_env_runners=0,
            num_envs_per_env_runner=spec.num_envs,
            rollout_fragment_length="auto",
        )
        .learners(num_learners=0)
        .training(
            train_batch_size_per_learner=spec.train_batch_size,
            minibatch_size=minibatch,
            num_epochs=spec.num_epochs,
            lr=spec.lr,
            gamma=0.0,
            lambda_=0.0,
            clip_param=cfg.clip_param,
            entropy_coeff=spec.entropy_coeff,
            vf_loss_coeff=1.0,
            grad_clip=cfg.grad_clip,
            grad_clip_by="global_norm",
            use_kl_loss=True,
        )
        .rl_module(rl_module_spec=RLModuleSpec(module_class=PolicyTorchModule, model_config=model_config))
        .reporting(metrics_num_episodes_for_smoothing=20)
        .debugging(seed=seed, log_level="WARN")
    )


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class PPORunner:
    """One RLlib PPO algorithm: train iterations, checkpoint, read and write module weights."""

    def __init__(self, algo: Algorithm) -> None:
        self._algo = algo

    @classmethod
    def create(
        cls, cfg: TrainerSettings, env_config: Mapping[str, Any], seed: int, spec: PPOSpec | None = None
    ) -> PPORunner:
        ensure_ray(cfg)
        return cls(build_config(cfg, env_config, seed, spec).build_algo())

    @classmethod
    def restore(cls, cfg: TrainerSettings, checkpoint: Path) -> PPORunner:
        """The algorithm saved at ``checkpoint`` (an interrupted run resumes from it).

        Raises:
            TrainingError: the checkpoint is missing or unreadable.
        """
        ensure_ray(cfg)
        if not checkpoint.is_dir():
            raise TrainingError(f"no checkpoint at {checkpoint}")
        try:
            algo = Algorithm.from_checkpoint(str(Path(checkpoint).resolve()))  # RLlib needs absolute paths
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise TrainingError(f"cannot restore checkpoint {checkpoint}: {exc}") from exc
        return cls(algo)

    @property
    def iteration(self) -> int:
        return int(self._algo.iteration)

    def train(self) -> dict[str, float]:
        """One PPO iteration; returns tradeloop's names for RLlib's results."""
        result = self._algo.train()
        learner = result.get("learners", {}).get(MODULE_ID, {})
        runners = result.get("env_runners", {})
        stats = {name: _as_float(learner.get(key)) for key, name in _LEARNER_KEYS.items()}
        stats["return_mean"] = _as_float(runners.get("episode_return_mean"))
        stats["env_steps"] = _as_float(runners.get("num_env_steps_sampled_lifetime"))
        stats["seconds"] = _as_float(result.get("time_this_iter_s"))
        return stats

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._algo.save_to_path(str(Path(path).resolve()))  # a relative path is read as a bad URI

    def weights(self) -> dict[str, np.ndarray]:
        """The learner's module state dict as numpy arrays."""
        assert self._algo.learner_group is not None
        state = self._algo.learner_group.get_weights(module_ids=[MODULE_ID])[MODULE_ID]
        return {k: np.asarray(v) for k, v in state.items()}

    def set_weights(self, state: Mapping[str, np.ndarray]) -> None:
        """Load module weights into the learner and push them to the env runner (warm start)."""
        assert self._algo.learner_group is not None and self._algo.env_runner_group is not None
        self._algo.learner_group.set_weights({MODULE_ID: dict(state)})
        self._algo.env_runner_group.sync_weights(
            from_worker_or_learner_group=self._algo.learner_group, inference_only=True
        )

    def stop(self) -> None:
        self._algo.stop()

"""One training run: replay window -> PPO -> ONNX + parity -> hold-out gate -> signed registry entry
-> (if it passes) published ``ModelUpdate``.

A run is *full* (fresh weights) when nothing serves yet, every ``full_retrain_every``-th run, on
feature drift or on request; otherwise it is *warm*: it starts from the serving model's weights,
re-expressed for the new window's normalisation (:func:`trainers.policy.renormalise_first_layers`),
and trains ``warm_iterations`` on the newest data. The report says which, and why.

Runs checkpoint after every iteration; :meth:`TrainingPipeline.run` first resumes an interrupted
run (same data, same mode) before starting a new one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.console import Console

from streams.clock import now_us
from streams.features import SIZER_SPEC
from streams.manifest import Manifest, onnx_digest, sign_manifest
from streams.producer import EventProducer
from streams.settings import Settings
from trainers import metrics
from trainers.dataset import NormStats, chronological_split, data_hash, prepare, window_info
from trainers.errors import NotEnoughDataError, TrainingInterrupted
from trainers.evaluate import evaluate_policies, score_rule
from trainers.export import OnnxSizer, check_parity, export_onnx
from trainers.iterations import run_iterations
from trainers.policy import (
    DeterministicSizer,
    SizerPolicyNet,
    dead_unit_share,
    policy_from_state,
    renormalise_first_layers,
)
from trainers.registry import ModelRegistry, promote
from trainers.replay import ReplayStore
from trainers.rllib_ppo import PPORunner
from trainers.runstate import RunDir, TrainerState
from trainers.sizer_env import ACTION_HIGH, ACTION_LOW
from trainers.trainlog import TrainLog

__all__ = ["RunOutcome", "TrainingPipeline"]

log = logging.getLogger(__name__)

_DRIFT_REFERENCE_ROWS = 5000
_PROBE_ROWS = 512
_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a run produced."""

    run_id: str
    version: str
    mode: str
    reason: str
    gate_passed: bool
    published: bool
    report: dict[str, Any]
    seconds: float


class TrainingPipeline:
    """Runs training runs against one replay store, registry and training log."""

    def __init__(
        self,
        settings: Settings,
        store: ReplayStore,
        registry: ModelRegistry,
        trainlog: TrainLog,
        producer: EventProducer | None = None,
        console: Console | None = None,
        progress: bool = True,
    ) -> None:
        self.settings = settings
        self.cfg = settings.trainer
        self.store = store
        self.registry = registry
        self.trainlog = trainlog
        self.producer = producer
        self.console = console or Console(stderr=True)
        self.progress = progress

    # -- preparing ---------------------------------------------------------------------------

    def _choose_mode(self, state: TrainerState, force_full: bool, reason: str) -> tuple[str, str | None, str]:
        serving = self.registry.serving_version
        if serving is None:
            return "full", None, "nothing serves yet"
        if force_full:
            return "full", serving, f"full retrain requested ({reason})"
        if state.runs_since_full + 1 >= self.cfg.full_retrain_every:
            return "full", serving, f"every {self.cfg.full_retrain_every} runs"
        return "warm", serving, f"warm start from {serving}"

    def _prepare(self, reason: str, force_full: bool) -> RunDir:
        state = TrainerState.load(self.settings.data_dir)
        seq = self.store.max_seq()
        rows = self.store.trainable(limit=self.cfg.window_rows)
        needed = int(np.ceil(self.cfg.min_train_rows / (1.0 - self.cfg.holdout_fraction)))
        if len(rows) < needed:
            raise NotEnoughDataError(f"{len(rows)} trainable experiences, need {needed}")
        train, hold = chronological_split(rows, self.cfg.holdout_fraction)
        norm = NormStats.fit(train.state)
        mode, parent, why = self._choose_mode(state, force_full, reason)
        run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        iterations = self.cfg.iterations if mode == "full" else self.cfg.warm_iterations
        run = RunDir.create(
            self.settings.data_dir,
            run_id,
            {
                "reason": reason, "mode": mode, "mode_reason": why, "parent": parent,
                "iterations": iterations, "seq": seq, "data_hash": data_hash(rows),
                "data_window": window_info(rows, train, hold),
            },
        )  # fmt: skip
        prepare(train, norm, self.cfg).save(run.data_path)
        drift_rows = train.state[-_DRIFT_REFERENCE_ROWS:]
        run.save_holdout(
            norm, state=hold.state, return_unit=hold.return_unit, score=hold.score, ts=hold.ts,
            probe=norm.apply(train.state[-_PROBE_ROWS:]), drift=drift_rows,
        )  # fmt: skip
        run.update(status="running")
        return run

    def _env_config(self, run: RunDir) -> dict[str, Any]:
        return {
            "data_path": str(run.data_path),
            "episode_len": self.cfg.episode_len,
            "risk": self.cfg.risk,
            "risk_weight": self.cfg.risk_weight,
            "risk_alpha": self.cfg.risk_alpha,
            "reward_baseline": 1.0,
        }

    def _warm_weights(self, parent: str, norm: NormStats) -> dict[str, np.ndarray]:
        model = self.registry.load(parent, self.settings.signing_key())
        old_mean = np.asarray(model.manifest.obs_mean)
        old_std = np.asarray(model.manifest.obs_std)
        return renormalise_first_layers(model.module_state(), old_mean, old_std, norm.mean, norm.std)

    # -- training ----------------------------------------------------------------------------

    def _runner(self, run: RunDir, info: dict[str, Any], norm: NormStats) -> PPORunner:
        if info["iterations_done"] > 0 and run.checkpoint.is_dir():
            log.info("resuming run %s at iteration %d", info["run_id"], info["iterations_done"])
            return PPORunner.restore(self.cfg, run.checkpoint)
        runner = PPORunner.create(self.cfg, self._env_config(run), seed=self.cfg.seed)
        if info["mode"] == "warm" and info.get("parent"):
            try:
                runner.set_weights(self._warm_weights(info["parent"], norm))
            except (ValueError, RuntimeError, KeyError) as exc:
                # Another network shape (settings changed): train this run from scratch instead.
                log.warning("warm start from %s impossible (%s); training from scratch", info["parent"], exc)
                run.update(
                    mode="full", mode_reason=f"warm start impossible: {exc}", iterations=self.cfg.iterations
                )
        return runner

    def _train(
        self, run: RunDir, norm: NormStats, probe: np.ndarray, stop: threading.Event | None
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        runner = self._runner(run, run.info(), norm)

        def probe_stats(weights: dict[str, np.ndarray]) -> dict[str, float]:
            policy = policy_from_state(weights, probe.shape[1], self.cfg.hidden)
            return {
                "dead_units": dead_unit_share(policy, probe),
                "mean_multiplier": _mean_multiplier(policy, probe),
            }

        try:
            return run_iterations(
                runner, run, trainlog=self.trainlog, probe=probe_stats, console=self.console,
                progress=self.progress, stop=stop, on_iteration=metrics.record_iteration,
            )  # fmt: skip
        finally:
            runner.stop()

    # -- evaluating and publishing -------------------------------------------------------------

    def _serving_multipliers(self, serving: str | None, states: np.ndarray) -> tuple[np.ndarray | None, str]:
        if serving is None:
            return None, "nothing serves"
        model = self.registry.load(serving, self.settings.signing_key())
        if model.manifest.feature_spec_digest != SIZER_SPEC.digest:
            return None, f"serving {serving} uses another feature spec"
        mean, std = np.asarray(model.manifest.obs_mean), np.asarray(model.manifest.obs_std)
        obs = ((states - mean) / std).astype(np.float32)
        return np.clip(OnnxSizer(model.onnx).predict(obs), ACTION_LOW, ACTION_HIGH), serving

    def _finalize(
        self,
        run: RunDir,
        weights: dict[str, np.ndarray],
        last: dict[str, float],
        started: float,
        publish: bool,
    ) -> RunOutcome:
        info = run.info()
        norm, hold = run.load_holdout()
        policy = policy_from_state(weights, SIZER_SPEC.size, self.cfg.hidden)
        onnx = export_onnx(policy, SIZER_SPEC.size)
        obs = norm.apply(hold["state"])
        parity = check_parity(onnx, policy, obs, self.cfg.parity_atol)
        multipliers = {
            "candidate": OnnxSizer(onnx).predict(obs),
            "fixed": np.ones(len(obs)),
            "score_rule": score_rule(hold["score"]),
        }
        serving_version = self.registry.serving_version
        serving, serving_note = self._serving_multipliers(serving_version, hold["state"])
        if serving is not None:
            multipliers["serving"] = serving
        gate = evaluate_policies(
            multipliers, hold["return_unit"], candidate="candidate",
            reference="serving" if serving is not None else "fixed",
            metric=self.cfg.gate_metric, margin=self.cfg.gate_margin, confidence=self.cfg.gate_confidence,
            samples=self.cfg.bootstrap_samples, block=self.cfg.bootstrap_block, seed=self.cfg.seed,
            alpha=self.cfg.risk_alpha,
        )  # fmt: skip
        metrics.record_evaluation(gate.policies, gate.lower_bound)
        version = self.registry.new_version()
        training = {
            "run_id": info["run_id"], "mode": info["mode"], "mode_reason": info["mode_reason"],
            "reason": info["reason"], "iterations": info["iterations"], "env_steps": last.get("env_steps"),
            "seed": self.cfg.seed, "algorithm": "PPO (Ray RLlib 2.60, new API stack)", "gamma": 0.0,
            "hidden": list(self.cfg.hidden), "risk": self.cfg.risk, "risk_weight": self.cfg.risk_weight,
            "risk_alpha": self.cfg.risk_alpha, "sampling": self.cfg.sampling,
            "resumed": info.get("resumed", False),
        }  # fmt: skip
        cand = gate.policies["candidate"]
        manifest = Manifest(
            name=self.registry.name, version=version, parent=info.get("parent"), created_us=now_us(),
            feature_spec_version=SIZER_SPEC.version, feature_spec_digest=SIZER_SPEC.digest,
            feature_names=list(SIZER_SPEC.names), obs_mean=norm.mean.tolist(), obs_std=norm.std.tolist(),
            onnx_sha256=onnx_digest(onnx), action_low=ACTION_LOW, action_high=ACTION_HIGH,
            metrics={
                **{f"holdout_{k}": v for k, v in cand.items()},
                "holdout_uplift_vs_fixed": cand["mean_return"] - gate.policies["fixed"]["mean_return"],
                "gate_lower_bound": gate.lower_bound, "parity_max_abs_diff": parity,
            },
            data_window=info["data_window"], data_hash=info["data_hash"], training=training,
        )  # fmt: skip
        text, signature = sign_manifest(manifest, self.settings.signing_key())
        report = {
            "version": version, "run_id": info["run_id"], "mode": info["mode"],
            "mode_reason": info["mode_reason"], "reason": info["reason"],
            "serving_before": serving_version, "serving_note": serving_note,
            "parity_max_abs_diff": parity, "censored_excluded": self.store.stats()["censored"],
            "training": training, "last_iteration": last, **gate.to_dict(),
        }  # fmt: skip
        status = "candidate" if gate.passed else "rejected"
        drift = hold["drift"]
        self.registry.save(text, signature, onnx, report, weights, drift, status)
        published = False
        if gate.passed and publish:
            promote(self.settings, self.registry, version, reason="promote", producer=self.producer)
            metrics.MODELS_PUBLISHED.labels(reason="promote").inc()
            published = True
        seconds = time.monotonic() - started
        self._record(run, info, version, gate.passed, published)
        return RunOutcome(
            info["run_id"], version, info["mode"], info["reason"], gate.passed, published, report, seconds
        )

    def _record(self, run: RunDir, info: dict[str, Any], version: str, passed: bool, published: bool) -> None:
        state = TrainerState.load(self.settings.data_dir)
        state.last_seq = max(state.last_seq, int(info["seq"]))
        state.last_finished_us = now_us()
        state.runs += 1
        state.runs_since_full = 0 if info["mode"] == "full" else state.runs_since_full + 1
        state.failures = 0
        state.last_result = f"{version} {'published' if published else ('passed' if passed else 'rejected')}"
        state.save(self.settings.data_dir)
        run.finish("finished", version=version, gate_passed=passed, published=published)
        self.trainlog.finish_run(info["run_id"], "finished", version, passed, published)
        RunDir.prune(self.settings.data_dir, keep=5)

    # -- entry point -------------------------------------------------------------------------

    def run(
        self,
        reason: str = "manual",
        force_full: bool = False,
        publish: bool | None = None,
        stop: threading.Event | None = None,
    ) -> RunOutcome:
        """Resume an interrupted run if there is one, else prepare and train a new one.

        Raises:
            NotEnoughDataError: too few trainable experiences.
            TrainingError, ExportError: the run failed; it stays resumable when it has a checkpoint.
        """
        started = time.monotonic()
        publish = self.cfg.publish if publish is None else publish
        run = RunDir.interrupted(self.settings.data_dir)
        if run is not None and run.info().get("attempts", 0) >= _MAX_ATTEMPTS:
            log.warning("abandoning run %s after %d failed attempts", run.path.name, _MAX_ATTEMPTS)
            run.finish("abandoned")
            run = None
        if run is not None:
            info = run.update(resumed=True, attempts=run.info().get("attempts", 0) + 1)
            log.info("resuming interrupted run %s (%s)", info["run_id"], info["reason"])
        else:
            run = self._prepare(reason, force_full)
            info = run.update(attempts=1)
        self.trainlog.start_run(info["run_id"], info["mode"], info["reason"], info["data_window"]["rows"])
        try:
            norm, hold = run.load_holdout()
            weights, last = self._train(run, norm, hold["probe"], stop)
            outcome = self._finalize(run, weights, last, started, publish)
        except TrainingInterrupted:
            self.trainlog.finish_run(info["run_id"], "interrupted")
            raise
        except Exception as exc:
            self.trainlog.finish_run(info["run_id"], "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        metrics.RUNS.labels(
            result="published" if outcome.published else ("passed" if outcome.gate_passed else "rejected")
        ).inc()
        metrics.LAST_TRAINING.set(time.time())
        metrics.TRAINING_SECONDS.set(outcome.seconds)
        return outcome


def _mean_multiplier(policy: SizerPolicyNet, probe: np.ndarray) -> float:
    with torch.no_grad():
        return float(DeterministicSizer(policy)(torch.as_tensor(probe)).mean())

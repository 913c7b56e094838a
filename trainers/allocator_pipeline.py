"""One allocator training run: allocation periods -> PPO -> ONNX + parity -> hold-out gate -> signed
registry entry (model name ``allocator``) -> (if it passes) published ``ModelUpdate``.

The same machinery as the sizer (:mod:`trainers.pipeline`): run directories that resume after an
interruption (under ``<data_dir>/trainer/allocator/``), warm starts from the serving allocator
(full retrains when nothing serves, every ``full_retrain_every``-th run, on request or when the
strategy list changed), the shared PPO iteration loop, training log, gate, signing and registry.
Every evaluation is appended to the allocator's weight history (:mod:`trainers.allocator_history`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Final

import numpy as np
from rich.console import Console

from streams.clock import now_us
from streams.manifest import sign_manifest
from streams.producer import EventProducer
from streams.settings import Settings
from trainers import metrics
from trainers.allocator_data import AllocationStore, PeriodPairs, build_pairs, choose_strategies
from trainers.allocator_env import AllocatorRunData
from trainers.allocator_eval import (
    CANDIDATE,
    EQUAL,
    INVERSE_VOL,
    SERVING,
    equal_weights,
    evaluate_allocator,
    inverse_vol_weights,
)
from trainers.allocator_export import OnnxAllocator, allocator_manifest, allocator_parity, export_allocator
from trainers.allocator_history import append_history
from trainers.dataset import NormStats
from trainers.errors import NotEnoughDataError, TrainingInterrupted
from trainers.iterations import run_iterations
from trainers.pipeline import RunOutcome
from trainers.policy import dead_unit_share, policy_from_state, renormalise_first_layers
from trainers.registry import ModelRegistry, promote
from trainers.rllib_ppo import PPORunner, PPOSpec
from trainers.runstate import RunDir, TrainerState
from trainers.trainlog import TrainLog

__all__ = ["MODEL", "AllocatorPipeline"]

log = logging.getLogger(__name__)

MODEL: Final = "allocator"
_PROBE_ROWS: Final = 512
_DRIFT_ROWS: Final = 5000
_MAX_ATTEMPTS: Final = 3


def _holdout_pairs(hold: dict[str, np.ndarray], strategies: list[str]) -> PeriodPairs:
    return PeriodPairs(
        strategies, hold["obs"], hold["next_returns"], hold["trailing_std"], hold["ts"],
        hold["period_start"], [str(p) for p in hold["portfolio"]], 0,
    )  # fmt: skip


class AllocatorPipeline:
    """Runs allocator training runs against one allocation store, registry and training log."""

    def __init__(
        self,
        settings: Settings,
        store: AllocationStore,
        registry: ModelRegistry,
        trainlog: TrainLog,
        producer: EventProducer | None = None,
        console: Console | None = None,
        progress: bool = True,
    ) -> None:
        self.settings = settings
        self.cfg = settings.trainer
        self.acfg = settings.trainer.allocator
        self.store = store
        self.registry = registry
        self.trainlog = trainlog
        self.producer = producer
        self.console = console or Console(stderr=True)
        self.progress = progress

    # -- preparing ---------------------------------------------------------------------------

    def _serving_strategies(self, serving: str) -> list[str]:
        return list(self.registry.load(serving, self.settings.signing_key()).manifest.strategies)

    def _choose_mode(
        self, state: TrainerState, force_full: bool, reason: str, strategies: list[str]
    ) -> tuple[str, str | None, str]:
        serving = self.registry.serving_version
        if serving is None:
            return "full", None, "nothing serves yet"
        if self._serving_strategies(serving) != strategies:
            return "full", serving, f"strategies changed since {serving}"
        if force_full:
            return "full", serving, f"full retrain requested ({reason})"
        if state.runs_since_full + 1 >= self.cfg.full_retrain_every:
            return "full", serving, f"every {self.cfg.full_retrain_every} runs"
        return "warm", serving, f"warm start from {serving}"

    def _prepare(self, reason: str, force_full: bool) -> RunDir:
        state = TrainerState.load(self.settings.data_dir, MODEL)
        seq = self.store.max_seq()
        records = self.store.periods(limit=self.acfg.window_periods)
        strategies = choose_strategies(records)
        pairs = build_pairs(records, strategies, self.acfg.inverse_vol_window)
        needed = int(np.ceil(self.acfg.min_train_periods / (1.0 - self.acfg.holdout_fraction)))
        if len(pairs) < needed:
            raise NotEnoughDataError(f"{len(pairs)} allocation period pairs, need {needed}")
        cut = len(pairs) - max(1, round(len(pairs) * self.acfg.holdout_fraction))
        train, hold = pairs.take(slice(0, cut)), pairs.take(slice(cut, None))
        norm = NormStats.fit(train.obs)
        data = AllocatorRunData.build(norm.apply(train.obs), train.next_returns, train.ts)
        mode, parent, why = self._choose_mode(state, force_full, reason, strategies)
        run_id = f"alloc-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        window = {
            "first_ts": int(pairs.ts[0]), "last_ts": int(pairs.ts[-1]), "rows": len(pairs),
            "train_rows": len(train), "holdout_rows": len(hold), "holdout_first_ts": int(hold.ts[0]),
            "skipped_periods": pairs.skipped, "portfolios": sorted(set(pairs.portfolio)),
        }  # fmt: skip
        run = RunDir.create(
            self.settings.data_dir, run_id,
            {
                "reason": reason, "mode": mode, "mode_reason": why, "parent": parent, "seq": seq,
                "iterations": self.acfg.iterations if mode == "full" else self.acfg.warm_iterations,
                "data_hash": pairs.data_hash(), "data_window": window, "strategies": strategies,
            },
            model=MODEL,
        )  # fmt: skip
        data.save(run.data_path)
        run.save_holdout(
            norm, obs=hold.obs, next_returns=hold.next_returns, trailing_std=hold.trailing_std,
            ts=hold.ts, period_start=hold.period_start, portfolio=np.array(hold.portfolio),
            probe=norm.apply(train.obs[-_PROBE_ROWS:]), drift=train.obs[-_DRIFT_ROWS:],
        )  # fmt: skip
        run.update(status="running")
        return run

    def _env_config(self, run: RunDir) -> dict[str, Any]:
        a = self.acfg
        return {
            "data_path": str(run.data_path), "episode_len": a.episode_len, "logit_bound": a.logit_bound,
            "reward_sharpe_weight": a.reward_sharpe_weight, "reward_pnl_weight": a.reward_pnl_weight,
            "reward_drawdown_weight": a.reward_drawdown_weight, "baseline": "equal", "obs_noise": a.obs_noise,
        }  # fmt: skip

    # -- training ----------------------------------------------------------------------------

    def _runner(self, run: RunDir, info: dict[str, Any], norm: NormStats) -> PPORunner:
        if info["iterations_done"] > 0 and run.checkpoint.is_dir():
            log.info("resuming allocator run %s at iteration %d", info["run_id"], info["iterations_done"])
            return PPORunner.restore(self.cfg, run.checkpoint)
        runner = PPORunner.create(self.cfg, self._env_config(run), self.cfg.seed, PPOSpec.allocator(self.cfg))
        if info["mode"] == "warm" and info.get("parent"):
            try:
                model = self.registry.load(info["parent"], self.settings.signing_key())
                old_mean, old_std = np.asarray(model.manifest.obs_mean), np.asarray(model.manifest.obs_std)
                state = renormalise_first_layers(model.module_state(), old_mean, old_std, norm.mean, norm.std)
                runner.set_weights(state)
            except (ValueError, RuntimeError, KeyError) as exc:
                log.warning("warm start from %s impossible (%s); training from scratch", info["parent"], exc)
                run.update(
                    mode="full", mode_reason=f"warm start impossible: {exc}", iterations=self.acfg.iterations
                )
        return runner

    def _train(
        self, run: RunDir, norm: NormStats, probe: np.ndarray, stop: threading.Event | None
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        info = run.info()
        runner = self._runner(run, info, norm)
        n_strategies = len(info["strategies"])

        def probe_stats(weights: dict[str, np.ndarray]) -> dict[str, float]:
            policy = policy_from_state(weights, probe.shape[1], self.acfg.hidden, n_strategies)
            return {"dead_units": dead_unit_share(policy, probe)}

        try:
            return run_iterations(
                runner, run, trainlog=self.trainlog, probe=probe_stats, console=self.console,
                progress=self.progress, stop=stop,
            )  # fmt: skip
        finally:
            runner.stop()

    # -- evaluating and publishing -------------------------------------------------------------

    def _serving_weights(self, serving: str | None, hold: PeriodPairs) -> tuple[np.ndarray | None, str]:
        if serving is None:
            return None, "nothing serves"
        model = self.registry.load(serving, self.settings.signing_key())
        if model.manifest.strategies != hold.strategies:
            return None, f"serving {serving} allocates over other strategies"
        mean, std = np.asarray(model.manifest.obs_mean), np.asarray(model.manifest.obs_std)
        return OnnxAllocator(model.onnx).weights(((hold.obs - mean) / std).astype(np.float32)), serving

    def _finalize(
        self,
        run: RunDir,
        weights: dict[str, np.ndarray],
        last: dict[str, float],
        started: float,
        publish: bool,
    ) -> RunOutcome:
        info = run.info()
        norm, saved = run.load_holdout()
        strategies: list[str] = list(info["strategies"])
        hold = _holdout_pairs(saved, strategies)
        a, k, n_obs = self.acfg, len(strategies), hold.obs.shape[1]
        policy = policy_from_state(weights, n_obs, a.hidden, k)
        onnx = export_allocator(policy, n_obs, a.logit_bound)
        obs = norm.apply(hold.obs)
        parity = allocator_parity(onnx, policy, a.logit_bound, obs, self.cfg.parity_atol)
        policies = {
            CANDIDATE: OnnxAllocator(onnx).weights(obs),
            EQUAL: equal_weights(len(hold), k),
            INVERSE_VOL: inverse_vol_weights(hold.trailing_std),
        }
        serving_version = self.registry.serving_version
        serving, serving_note = self._serving_weights(serving_version, hold)
        if serving is not None:
            policies[SERVING] = serving
        gate = evaluate_allocator(policies, hold, AllocatorRunData.load(run.data_path), self.cfg)
        for policy_name, values in gate.policies.items():
            for metric_name, value in values.items():
                metrics.ALLOCATOR_EVAL_METRIC.labels(policy=policy_name, metric=metric_name).set(value)
        version = self.registry.new_version()
        training = {
            "run_id": info["run_id"], "mode": info["mode"], "mode_reason": info["mode_reason"],
            "reason": info["reason"], "iterations": info["iterations"], "env_steps": last.get("env_steps"),
            "seed": self.cfg.seed, "algorithm": "PPO (Ray RLlib 2.60, new API stack)", "gamma": 0.0,
            "hidden": list(a.hidden), "logit_bound": a.logit_bound, "resumed": info.get("resumed", False),
            "reward": {"sharpe": a.reward_sharpe_weight, "pnl": a.reward_pnl_weight,
                       "drawdown": a.reward_drawdown_weight},
        }  # fmt: skip
        cand, equal = gate.policies[CANDIDATE], gate.policies[EQUAL]
        manifest = allocator_manifest(
            version, strategies, norm, onnx, a.logit_bound, parent=info.get("parent"),
            metrics={
                **{f"holdout_{m}": v for m, v in cand.items()},
                "holdout_sharpe_uplift_vs_equal": cand["sharpe"] - equal["sharpe"],
                "gate_lower_bound": gate.lower_bound, "parity_max_abs_diff": parity,
            },
            data_window=info["data_window"], data_hash=info["data_hash"], training=training,
        )  # fmt: skip
        text, signature = sign_manifest(manifest, self.settings.signing_key())
        report = {
            "version": version, "model": MODEL, "run_id": info["run_id"], "mode": info["mode"],
            "mode_reason": info["mode_reason"], "reason": info["reason"], "serving_before": serving_version,
            "serving_note": serving_note, "parity_max_abs_diff": parity, "strategies": strategies,
            "training": training, "last_iteration": last, **gate.to_dict(),
        }  # fmt: skip
        self.registry.save(
            text, signature, onnx, report, weights, saved["drift"], "candidate" if gate.passed else "rejected"
        )
        published = False
        if gate.passed and publish:
            promote(self.settings, self.registry, version, reason="promote", producer=self.producer)
            metrics.MODELS_PUBLISHED.labels(reason="promote").inc()
            for strategy, w in gate.details["mean_weights"][CANDIDATE].items():
                metrics.ALLOCATOR_WEIGHT.labels(strategy=strategy).set(w)
            published = True
        append_history(self.registry.root, version, report, published)
        self._record(run, info, version, gate.passed, published)
        seconds = time.monotonic() - started
        return RunOutcome(
            info["run_id"], version, info["mode"], info["reason"], gate.passed, published, report, seconds
        )

    def _record(self, run: RunDir, info: dict[str, Any], version: str, passed: bool, published: bool) -> None:
        data_dir = self.settings.data_dir
        state = TrainerState.load(data_dir, MODEL)
        state.last_seq = max(state.last_seq, int(info["seq"]))
        state.last_finished_us = now_us()
        state.runs += 1
        state.runs_since_full = 0 if info["mode"] == "full" else state.runs_since_full + 1
        state.failures = 0
        state.last_result = f"{version} {'published' if published else ('passed' if passed else 'rejected')}"
        state.save(data_dir, MODEL)
        run.finish("finished", version=version, gate_passed=passed, published=published)
        self.trainlog.finish_run(info["run_id"], "finished", version, passed, published)
        RunDir.prune(data_dir, keep=5, model=MODEL)

    # -- entry point -------------------------------------------------------------------------

    def run(
        self,
        reason: str = "manual",
        force_full: bool = False,
        publish: bool | None = None,
        stop: threading.Event | None = None,
    ) -> RunOutcome:
        """Resume an interrupted allocator run if there is one, else prepare and train a new one.

        Raises:
            NotEnoughDataError: too few allocation period pairs.
            TrainingError, ExportError: the run failed; it stays resumable when it has a checkpoint.
        """
        started = time.monotonic()
        publish = self.cfg.publish if publish is None else publish
        run = RunDir.interrupted(self.settings.data_dir, MODEL)
        if run is not None and run.info().get("attempts", 0) >= _MAX_ATTEMPTS:
            log.warning("abandoning allocator run %s after %d failed attempts", run.path.name, _MAX_ATTEMPTS)
            run.finish("abandoned")
            run = None
        if run is not None:
            info = run.update(resumed=True, attempts=run.info().get("attempts", 0) + 1)
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
        result = "published" if outcome.published else ("passed" if outcome.gate_passed else "rejected")
        metrics.ALLOCATOR_RUNS.labels(result=result).inc()
        metrics.ALLOCATOR_LAST_TRAINING.set(time.time())
        return outcome

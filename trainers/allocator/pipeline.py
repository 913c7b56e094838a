"""The allocator's training run (:class:`AllocatorPipeline`): allocation periods -> PPO -> ONNX +
parity -> hold-out gate -> signed registry entry (model name ``allocator``) -> (if it passes)
published ``ModelUpdate``.

The run itself is the sizer's (:class:`trainers.run.pipeline.RunPipeline`): run directories that
resume after an interruption (under ``<data_dir>/trainer/allocator/``), warm starts from the
serving allocator, the shared PPO iteration loop, training log, gate, signing and registry. What
is the allocator's own: its window is consecutive-period pairs of the allocation store for the
newest strategy list, a changed strategy list forces a full retrain, its candidate maps an
observation to strategy weights, the gate scores it against equal and inverse-volatility weights,
and every evaluation is appended to the weight history (:mod:`trainers.allocator.history`).
"""

from __future__ import annotations

import time
from typing import Any, Final

import numpy as np

from streams.manifest import Manifest
from trainers import metrics
from trainers.allocator.env import AllocatorRunData
from trainers.allocator.evaluation import (
    CANDIDATE,
    EQUAL,
    INVERSE_VOL,
    SERVING,
    equal_weights,
    evaluate_allocator,
    inverse_vol_weights,
)
from trainers.allocator.export import OnnxAllocator, allocator_manifest, allocator_parity, export_allocator
from trainers.allocator.history import append_history
from trainers.allocator.pairs import PeriodPairs, build_pairs, choose_strategies
from trainers.rl.policy import dead_unit_share, policy_from_state
from trainers.rl.ppo import PPOSpec
from trainers.run.gate import GateResult
from trainers.run.iterations import Probe
from trainers.run.norm import NormStats
from trainers.run.parts import Evaluation, RunHyper, RunOutcome, RunWindow, TrainedRun
from trainers.run.pipeline import RunPipeline, manifest_obs, require_rows
from trainers.run.state import RunDir
from trainers.store.allocation import AllocationStore

__all__ = ["MODEL", "AllocatorPipeline"]

MODEL: Final = "allocator"
_PROBE_ROWS: Final = 512
_DRIFT_ROWS: Final = 5000


def _holdout_pairs(hold: dict[str, np.ndarray], strategies: list[str]) -> PeriodPairs:
    return PeriodPairs(
        strategies, hold["obs"], hold["next_returns"], hold["trailing_std"], hold["ts"],
        hold["period_start"], [str(p) for p in hold["portfolio"]], 0,
    )  # fmt: skip


class AllocatorPipeline(RunPipeline[AllocationStore]):
    """Runs allocator training runs against one allocation store, registry and training log."""

    MODEL = MODEL
    NOUN = "allocator run"
    RUN_PREFIX = "alloc-"

    @property
    def hyper(self) -> RunHyper:
        return self.cfg.allocator

    # -- data and training ---------------------------------------------------------------------

    def _window(self) -> RunWindow:
        a = self.cfg.allocator
        records = self.store.periods(limit=a.window_periods)
        strategies = choose_strategies(records)
        pairs = build_pairs(records, strategies, a.inverse_vol_window)
        require_rows(len(pairs), a.min_train_periods, a.holdout_fraction, "allocation period pairs")
        cut = len(pairs) - max(1, round(len(pairs) * a.holdout_fraction))
        train, hold = pairs.take(slice(0, cut)), pairs.take(slice(cut, None))
        norm = NormStats.fit(train.obs)
        data = AllocatorRunData.build(norm.apply(train.obs), train.next_returns, train.ts)
        holdout = {
            "obs": hold.obs, "next_returns": hold.next_returns, "trailing_std": hold.trailing_std,
            "ts": hold.ts, "period_start": hold.period_start, "portfolio": np.array(hold.portfolio),
            "probe": norm.apply(train.obs[-_PROBE_ROWS:]), "drift": train.obs[-_DRIFT_ROWS:],
        }  # fmt: skip
        window = {
            "first_ts": int(pairs.ts[0]), "last_ts": int(pairs.ts[-1]), "rows": len(pairs),
            "train_rows": len(train), "holdout_rows": len(hold), "holdout_first_ts": int(hold.ts[0]),
            "skipped_periods": pairs.skipped, "portfolios": sorted(set(pairs.portfolio)),
        }  # fmt: skip
        info = {"data_hash": pairs.data_hash(), "data_window": window, "strategies": strategies}
        return RunWindow(norm, data, holdout, info)

    def _incompatible(self, serving: str, window: RunWindow) -> str | None:
        served = list(self.registry.load(serving, self.settings.signing_key()).manifest.strategies)
        return None if served == window.info["strategies"] else f"strategies changed since {serving}"

    def _env_config(self, run: RunDir) -> dict[str, Any]:
        a = self.cfg.allocator
        return {
            "data_path": str(run.data_path), "episode_len": a.episode_len, "logit_bound": a.logit_bound,
            "reward_sharpe_weight": a.reward_sharpe_weight, "reward_pnl_weight": a.reward_pnl_weight,
            "reward_drawdown_weight": a.reward_drawdown_weight, "baseline": "equal", "obs_noise": a.obs_noise,
        }  # fmt: skip

    def _ppo_spec(self) -> PPOSpec:
        return PPOSpec.allocator(self.cfg)

    def _probe(self, info: dict[str, Any], probe: np.ndarray) -> Probe:
        n_strategies = len(info["strategies"])

        def probe_stats(weights: dict[str, np.ndarray]) -> dict[str, float]:
            policy = policy_from_state(weights, probe.shape[1], self.cfg.allocator.hidden, n_strategies)
            return {"dead_units": dead_unit_share(policy, probe)}

        return probe_stats

    # -- evaluating ----------------------------------------------------------------------------

    def _serving_weights(self, serving: str | None, hold: PeriodPairs) -> tuple[np.ndarray | None, str]:
        if serving is None:
            return None, "nothing serves"
        model = self.registry.load(serving, self.settings.signing_key())
        if model.manifest.strategies != hold.strategies:
            return None, f"serving {serving} allocates over other strategies"
        return OnnxAllocator(model.onnx).weights(manifest_obs(model, hold.obs)), serving

    def _evaluate(self, run: TrainedRun, serving: str | None) -> Evaluation:
        strategies: list[str] = list(run.info["strategies"])
        pairs = _holdout_pairs(run.hold, strategies)
        a, k, n_obs = self.cfg.allocator, len(strategies), pairs.obs.shape[1]
        policy = policy_from_state(run.weights, n_obs, a.hidden, k)
        onnx = export_allocator(policy, n_obs, a.logit_bound)
        obs = run.norm.apply(pairs.obs)
        parity = allocator_parity(onnx, policy, a.logit_bound, obs, self.cfg.parity_atol)
        policies = {
            CANDIDATE: OnnxAllocator(onnx).weights(obs),
            EQUAL: equal_weights(len(pairs), k),
            INVERSE_VOL: inverse_vol_weights(pairs.trailing_std),
        }
        served, serving_note = self._serving_weights(serving, pairs)
        if served is not None:
            policies[SERVING] = served
        gate = evaluate_allocator(policies, pairs, AllocatorRunData.load(run.rundir.data_path), self.cfg)
        for policy_name, values in gate.policies.items():
            for metric_name, value in values.items():
                metrics.ALLOCATOR_EVAL_METRIC.labels(policy=policy_name, metric=metric_name).set(value)
        uplift = gate.policies[CANDIDATE]["sharpe"] - gate.policies[EQUAL]["sharpe"]
        return Evaluation(onnx, parity, gate, serving_note, {"holdout_sharpe_uplift_vs_equal": uplift})

    # -- manifest, report, history and metrics -------------------------------------------------

    def _training_params(self, info: dict[str, Any]) -> dict[str, Any]:
        a = self.cfg.allocator
        return {
            "hidden": list(a.hidden), "logit_bound": a.logit_bound, "resumed": info.get("resumed", False),
            "reward": {"sharpe": a.reward_sharpe_weight, "pnl": a.reward_pnl_weight,
                       "drawdown": a.reward_drawdown_weight},
        }  # fmt: skip

    def _manifest(self, version: str, run: TrainedRun, ev: Evaluation, training: dict[str, Any]) -> Manifest:
        info = run.info
        return allocator_manifest(
            version, info["strategies"], run.norm, ev.onnx, self.cfg.allocator.logit_bound,
            parent=info.get("parent"), metrics=ev.model_metrics(), data_window=info["data_window"],
            data_hash=info["data_hash"], training=training,
        )  # fmt: skip

    def _report_identity(self) -> dict[str, Any]:
        return {"model": MODEL}

    def _report_data(self, info: dict[str, Any]) -> dict[str, Any]:
        return {"strategies": list(info["strategies"])}

    def _on_saved(self, version: str, gate: GateResult, report: dict[str, Any], published: bool) -> None:
        if published:
            for strategy, w in gate.details["mean_weights"][CANDIDATE].items():
                metrics.ALLOCATOR_WEIGHT.labels(strategy=strategy).set(w)
        append_history(self.registry.root, version, report, published)

    def _count(self, outcome: RunOutcome) -> None:
        metrics.ALLOCATOR_RUNS.labels(result=outcome.result).inc()
        metrics.ALLOCATOR_LAST_TRAINING.set(time.time())

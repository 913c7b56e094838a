"""The sizer's training run (:class:`SizerPipeline`): replay window -> PPO -> ONNX + parity ->
hold-out gate -> signed registry entry -> (if it passes) published ``ModelUpdate``.

The run itself (modes, resume, checkpoints, signing, publishing) is :class:`trainers.run.pipeline.
RunPipeline`; this module says what is the sizer's own: its window is the newest trainable
experiences of the replay store (censored rows excluded), its env replays them with a risk
penalty, its candidate maps a feature vector to a size multiplier, and the gate scores it
against fixed size, the score rule and the serving sizer.
"""

from __future__ import annotations

import time
from typing import Any, Final

import numpy as np
import torch

from streams.clock import now_us
from streams.features import SIZER_SPEC
from streams.manifest import Manifest, onnx_digest
from trainers import metrics
from trainers.rl.policy import PolicyNet, dead_unit_share, policy_from_state
from trainers.rl.ppo import PPOSpec
from trainers.run.gate import CANDIDATE, GateOptions
from trainers.run.iterations import Probe
from trainers.run.norm import NormStats
from trainers.run.parts import Evaluation, RunHyper, RunOutcome, RunWindow, TrainedRun
from trainers.run.pipeline import RunPipeline, manifest_obs, require_rows
from trainers.run.state import RunDir
from trainers.sizer.data import chronological_split, data_hash, prepare, window_info
from trainers.sizer.env import ACTION_HIGH, ACTION_LOW
from trainers.sizer.evaluation import evaluate_policies, score_rule
from trainers.sizer.export import DeterministicSizer, OnnxSizer, check_parity, export_onnx
from trainers.store.replay import ReplayStore

__all__ = ["SizerPipeline"]

_DRIFT_REFERENCE_ROWS: Final = 5000
_PROBE_ROWS: Final = 512
_FIXED: Final = "fixed"
_SERVING: Final = "serving"


class SizerPipeline(RunPipeline[ReplayStore]):
    """Runs sizer training runs against one replay store, registry and training log."""

    MODEL = "sizer"
    NOUN = "run"

    @property
    def hyper(self) -> RunHyper:
        return self.cfg

    # -- data and training ---------------------------------------------------------------------

    def _window(self) -> RunWindow:
        rows = self.store.trainable(limit=self.cfg.window_rows)
        require_rows(len(rows), self.cfg.min_train_rows, self.cfg.holdout_fraction, "trainable experiences")
        train, hold = chronological_split(rows, self.cfg.holdout_fraction)
        norm = NormStats.fit(train.state)
        holdout = {
            "state": hold.state, "return_unit": hold.return_unit, "score": hold.score, "ts": hold.ts,
            "probe": norm.apply(train.state[-_PROBE_ROWS:]), "drift": train.state[-_DRIFT_REFERENCE_ROWS:],
        }  # fmt: skip
        info = {"data_hash": data_hash(rows), "data_window": window_info(rows, train, hold)}
        return RunWindow(norm, prepare(train, norm, self.cfg), holdout, info)

    def _env_config(self, run: RunDir) -> dict[str, Any]:
        return {
            "data_path": str(run.data_path),
            "episode_len": self.cfg.episode_len,
            "risk": self.cfg.risk,
            "risk_weight": self.cfg.risk_weight,
            "risk_alpha": self.cfg.risk_alpha,
            "reward_baseline": 1.0,
        }

    def _ppo_spec(self) -> PPOSpec:
        return PPOSpec.sizer(self.cfg)

    def _probe(self, info: dict[str, Any], probe: np.ndarray) -> Probe:
        def probe_stats(weights: dict[str, np.ndarray]) -> dict[str, float]:
            policy = policy_from_state(weights, probe.shape[1], self.cfg.hidden)
            return {
                "dead_units": dead_unit_share(policy, probe),
                "mean_multiplier": _mean_multiplier(policy, probe),
            }

        return probe_stats

    def _on_iteration(self, stats: dict[str, float]) -> None:
        metrics.record_iteration(stats)

    # -- evaluating ----------------------------------------------------------------------------

    def _serving_multipliers(self, serving: str | None, states: np.ndarray) -> tuple[np.ndarray | None, str]:
        if serving is None:
            return None, "nothing serves"
        model = self.registry.load(serving, self.settings.signing_key())
        if model.manifest.feature_spec_digest != SIZER_SPEC.digest:
            return None, f"serving {serving} uses another feature spec"
        multipliers = OnnxSizer(model.onnx).predict(manifest_obs(model, states))
        return np.clip(multipliers, ACTION_LOW, ACTION_HIGH), serving

    def _evaluate(self, run: TrainedRun, serving: str | None) -> Evaluation:
        hold = run.hold
        policy = policy_from_state(run.weights, SIZER_SPEC.size, self.cfg.hidden)
        onnx = export_onnx(policy, SIZER_SPEC.size)
        obs = run.norm.apply(hold["state"])
        parity = check_parity(onnx, policy, obs, self.cfg.parity_atol)
        multipliers = {
            CANDIDATE: OnnxSizer(onnx).predict(obs),
            _FIXED: np.ones(len(obs)),
            "score_rule": score_rule(hold["score"]),
        }
        served, serving_note = self._serving_multipliers(serving, hold["state"])
        if served is not None:
            multipliers[_SERVING] = served
        options: GateOptions = {
            "candidate": CANDIDATE, "reference": _SERVING if served is not None else _FIXED,
            "metric": self.cfg.gate_metric, "margin": self.cfg.gate_margin,
            "confidence": self.cfg.gate_confidence, "samples": self.cfg.bootstrap_samples,
            "block": self.cfg.bootstrap_block, "seed": self.cfg.seed, "alpha": self.cfg.risk_alpha,
        }  # fmt: skip
        gate = evaluate_policies(multipliers, hold["return_unit"], **options)
        metrics.record_evaluation(gate.policies, gate.lower_bound)
        uplift = gate.policies[CANDIDATE]["mean_return"] - gate.policies[_FIXED]["mean_return"]
        return Evaluation(onnx, parity, gate, serving_note, {"holdout_uplift_vs_fixed": uplift})

    # -- manifest, report and metrics ----------------------------------------------------------

    def _training_params(self, info: dict[str, Any]) -> dict[str, Any]:
        return {
            "hidden": list(self.cfg.hidden), "risk": self.cfg.risk, "risk_weight": self.cfg.risk_weight,
            "risk_alpha": self.cfg.risk_alpha, "sampling": self.cfg.sampling,
            "resumed": info.get("resumed", False),
        }  # fmt: skip

    def _manifest(self, version: str, run: TrainedRun, ev: Evaluation, training: dict[str, Any]) -> Manifest:
        info, norm = run.info, run.norm
        return Manifest(
            name=self.registry.name, version=version, parent=info.get("parent"), created_us=now_us(),
            feature_spec_version=SIZER_SPEC.version, feature_spec_digest=SIZER_SPEC.digest,
            feature_names=list(SIZER_SPEC.names), obs_mean=norm.mean.tolist(), obs_std=norm.std.tolist(),
            onnx_sha256=onnx_digest(ev.onnx), action_low=ACTION_LOW, action_high=ACTION_HIGH,
            metrics=ev.model_metrics(), data_window=info["data_window"], data_hash=info["data_hash"],
            training=training,
        )  # fmt: skip

    def _report_data(self, info: dict[str, Any]) -> dict[str, Any]:
        return {"censored_excluded": self.store.stats()["censored"]}

    def _count(self, outcome: RunOutcome) -> None:
        metrics.RUNS.labels(result=outcome.result).inc()
        metrics.LAST_TRAINING.set(time.time())
        metrics.TRAINING_SECONDS.set(outcome.seconds)


def _mean_multiplier(policy: PolicyNet, probe: np.ndarray) -> float:
    with torch.no_grad():
        return float(DeterministicSizer(policy)(torch.as_tensor(probe)).mean())

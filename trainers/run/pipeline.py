"""One training run of any model: data window -> PPO -> ONNX + parity -> hold-out gate -> signed
registry entry -> (if it passes) published ``ModelUpdate``.

A run is *full* (fresh weights) when nothing serves yet, every ``full_retrain_every``-th run, on
feature drift, on request, or when the kind finds the serving model incompatible; otherwise it is
*warm*: it starts from the serving model's weights, re-expressed for the new window's
normalisation (:func:`trainers.rl.policy.renormalise_first_layers`), and trains ``warm_iterations``
on the newest data. The report says which, and why.

Runs checkpoint after every iteration; :meth:`RunPipeline.run` first resumes an interrupted run
(same data, same mode) before starting a new one.

The sizer (:mod:`trainers.sizer.pipeline`) and the allocator (:mod:`trainers.allocator.pipeline`)
run this same sequence; :class:`RunPipeline` holds it once and a kind subclasses it for what really
differs: which rows form its window, its env and PPO spec, how its candidate is exported and scored
against its baselines, and what its manifest, report and metrics add. Each kind keeps its runs and
counters under its own ``MODEL`` name, so the two never resume each other's runs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Final, Generic, TypeVar

import numpy as np
from rich.console import Console

from streams.clock import now_us
from streams.kafka.producer import EventProducer
from streams.manifest import Manifest, sign_manifest
from streams.settings import Settings
from trainers import metrics
from trainers.errors import NotEnoughDataError, TrainingInterrupted
from trainers.registry import ModelRegistry, StoredModel, promote
from trainers.rl.policy import renormalise_first_layers
from trainers.rl.ppo import PPORunner, PPOSpec
from trainers.run.gate import GateResult
from trainers.run.iterations import Probe, run_iterations
from trainers.run.norm import NormStats
from trainers.run.parts import Evaluation, RunHyper, RunOutcome, RunWindow, TrainedRun
from trainers.run.state import RunDir, TrainerState
from trainers.store.sqlite import SqliteStore
from trainers.store.trainlog import TrainLog

__all__ = ["RunPipeline", "manifest_obs", "require_rows"]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS: Final = 3

StoreT = TypeVar("StoreT", bound=SqliteStore)


def require_rows(count: int, minimum: int, holdout_fraction: float, what: str) -> None:
    """Raise unless ``count`` rows leave ``minimum`` training rows after the hold-out.

    Raises:
        NotEnoughDataError: too few rows (``what`` names them in the message).
    """
    needed = int(np.ceil(minimum / (1.0 - holdout_fraction)))
    if count < needed:
        raise NotEnoughDataError(f"{count} {what}, need {needed}")


def manifest_obs(model: StoredModel, raw: np.ndarray) -> np.ndarray:
    """``raw`` observations normalised with ``model``'s own statistics (float32, its ONNX input)."""
    mean, std = np.asarray(model.manifest.obs_mean), np.asarray(model.manifest.obs_std)
    return ((raw - mean) / std).astype(np.float32)


class RunPipeline(ABC, Generic[StoreT]):
    """Runs training runs of one model kind against its store, registry and training log.

    A kind sets ``MODEL`` (its registry name and run directory), ``NOUN`` (names its runs in
    logs) and ``RUN_PREFIX`` (of its run ids), and implements the abstract hooks; the values they
    exchange are in :mod:`trainers.run.parts`.
    """

    MODEL: ClassVar[str]
    NOUN: ClassVar[str]
    RUN_PREFIX: ClassVar[str] = ""

    def __init__(
        self,
        settings: Settings,
        store: StoreT,
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

    # -- what a kind supplies ----------------------------------------------------------------

    @property
    @abstractmethod
    def hyper(self) -> RunHyper:
        """Iterations of full and warm runs, and the network's hidden widths."""

    @abstractmethod
    def _window(self) -> RunWindow:
        """The newest data split chronologically into training and hold-out.

        Raises:
            NotEnoughDataError: too few rows to train on.
        """

    def _incompatible(self, serving: str, window: RunWindow) -> str | None:
        """Why warm-starting from ``serving`` on ``window`` is impossible, or None."""
        return None

    @abstractmethod
    def _env_config(self, run: RunDir) -> dict[str, Any]:
        """The env config of the run's PPO algorithm."""

    @abstractmethod
    def _ppo_spec(self) -> PPOSpec:
        """The env class and PPO hyperparameters."""

    @abstractmethod
    def _probe(self, info: dict[str, Any], probe: np.ndarray) -> Probe:
        """Statistics of the current weights on the ``probe`` observations, logged every iteration."""

    def _on_iteration(self, stats: dict[str, float]) -> None:
        """Export one iteration's statistics (the sizer's series; other kinds export none)."""

    @abstractmethod
    def _evaluate(self, run: TrainedRun, serving: str | None) -> Evaluation:
        """Export the candidate, check parity, and gate it against the baselines and ``serving``.

        Raises:
            ExportError: the export failed or differs from torch beyond ``parity_atol``.
        """

    @abstractmethod
    def _training_params(self, info: dict[str, Any]) -> dict[str, Any]:
        """The kind's entries of the manifest's and report's ``training`` section."""

    @abstractmethod
    def _manifest(self, version: str, run: TrainedRun, ev: Evaluation, training: dict[str, Any]) -> Manifest:
        """The unsigned manifest of the candidate (its metrics: :meth:`Evaluation.model_metrics`)."""

    def _report_identity(self) -> dict[str, Any]:
        """Entries the report starts with after ``version`` (the allocator names its model)."""
        return {}

    @abstractmethod
    def _report_data(self, info: dict[str, Any]) -> dict[str, Any]:
        """The kind's report entries about its data (before ``training``)."""

    def _on_saved(self, version: str, gate: GateResult, report: dict[str, Any], published: bool) -> None:
        """Called once the version is in the registry (and published if it was)."""

    @abstractmethod
    def _count(self, outcome: RunOutcome) -> None:
        """Export the finished run's result to the kind's metrics."""

    # -- preparing ---------------------------------------------------------------------------

    def _choose_mode(
        self, state: TrainerState, force_full: bool, reason: str, window: RunWindow
    ) -> tuple[str, str | None, str]:
        serving = self.registry.serving_version
        if serving is None:
            return "full", None, "nothing serves yet"
        incompatible = self._incompatible(serving, window)
        if incompatible is not None:
            return "full", serving, incompatible
        if force_full:
            return "full", serving, f"full retrain requested ({reason})"
        if state.runs_since_full + 1 >= self.cfg.full_retrain_every:
            return "full", serving, f"every {self.cfg.full_retrain_every} runs"
        return "warm", serving, f"warm start from {serving}"

    def _prepare(self, reason: str, force_full: bool) -> RunDir:
        state = TrainerState.load(self.settings.data_dir, self.MODEL)
        seq = self.store.max_seq()
        window = self._window()
        mode, parent, why = self._choose_mode(state, force_full, reason, window)
        run_id = f"{self.RUN_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        iterations = self.hyper.iterations if mode == "full" else self.hyper.warm_iterations
        run = RunDir.create(
            self.settings.data_dir,
            run_id,
            {"reason": reason, "mode": mode, "mode_reason": why, "parent": parent,
             "iterations": iterations, "seq": seq, **window.info},
            model=self.MODEL,
        )  # fmt: skip
        window.data.save(run.data_path)
        run.save_holdout(window.norm, **window.holdout)
        run.update(status="running")
        return run

    def _warm_weights(self, parent: str, norm: NormStats) -> dict[str, np.ndarray]:
        model = self.registry.load(parent, self.settings.signing_key())
        old_mean = np.asarray(model.manifest.obs_mean)
        old_std = np.asarray(model.manifest.obs_std)
        return renormalise_first_layers(model.module_state(), old_mean, old_std, norm.mean, norm.std)

    # -- training ----------------------------------------------------------------------------

    def _runner(self, run: RunDir, info: dict[str, Any], norm: NormStats) -> PPORunner:
        if info["iterations_done"] > 0 and run.checkpoint.is_dir():
            log.info("resuming %s %s at iteration %d", self.NOUN, info["run_id"], info["iterations_done"])
            return PPORunner.restore(self.cfg, run.checkpoint)
        runner = PPORunner.create(self.cfg, self._env_config(run), self.cfg.seed, self._ppo_spec())
        if info["mode"] == "warm" and info.get("parent"):
            try:
                runner.set_weights(self._warm_weights(info["parent"], norm))
            except (ValueError, RuntimeError, KeyError) as exc:
                # Another network shape (settings changed): train this run from scratch instead.
                log.warning("warm start from %s impossible (%s); training from scratch", info["parent"], exc)
                run.update(
                    mode="full", mode_reason=f"warm start impossible: {exc}", iterations=self.hyper.iterations
                )
        return runner

    def _train(
        self, run: RunDir, norm: NormStats, probe: np.ndarray, stop: threading.Event | None
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        info = run.info()
        runner = self._runner(run, info, norm)
        try:
            return run_iterations(
                runner, run, trainlog=self.trainlog, probe=self._probe(info, probe), console=self.console,
                progress=self.progress, stop=stop, on_iteration=self._on_iteration,
            )  # fmt: skip
        finally:
            runner.stop()

    # -- evaluating and publishing -------------------------------------------------------------

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
        trained = TrainedRun(run, info, norm, hold, weights)
        serving_version = self.registry.serving_version
        ev = self._evaluate(trained, serving_version)
        version = self.registry.new_version()
        training = {
            "run_id": info["run_id"], "mode": info["mode"], "mode_reason": info["mode_reason"],
            "reason": info["reason"], "iterations": info["iterations"], "env_steps": last.get("env_steps"),
            "seed": self.cfg.seed, "algorithm": "PPO (Ray RLlib 2.60, new API stack)", "gamma": 0.0,
            **self._training_params(info),
        }  # fmt: skip
        manifest = self._manifest(version, trained, ev, training)
        text, signature = sign_manifest(manifest, self.settings.signing_key())
        report = {
            "version": version, **self._report_identity(), "run_id": info["run_id"], "mode": info["mode"],
            "mode_reason": info["mode_reason"], "reason": info["reason"], "serving_before": serving_version,
            "serving_note": ev.serving_note, "parity_max_abs_diff": ev.parity, **self._report_data(info),
            "training": training, "last_iteration": last, **ev.gate.to_dict(),
        }  # fmt: skip
        status = "candidate" if ev.gate.passed else "rejected"
        self.registry.save(text, signature, ev.onnx, report, weights, hold["drift"], status)
        published = False
        if ev.gate.passed and publish:
            promote(self.settings, self.registry, version, reason="promote", producer=self.producer)
            metrics.MODELS_PUBLISHED.labels(reason="promote").inc()
            published = True
        self._on_saved(version, ev.gate, report, published)
        seconds = time.monotonic() - started
        self._record(run, info, version, ev.gate.passed, published)
        return RunOutcome(
            info["run_id"], version, info["mode"], info["reason"], ev.gate.passed, published, report, seconds
        )

    def _record(self, run: RunDir, info: dict[str, Any], version: str, passed: bool, published: bool) -> None:
        data_dir = self.settings.data_dir
        state = TrainerState.load(data_dir, self.MODEL)
        state.last_seq = max(state.last_seq, int(info["seq"]))
        state.last_finished_us = now_us()
        state.runs += 1
        state.runs_since_full = 0 if info["mode"] == "full" else state.runs_since_full + 1
        state.failures = 0
        state.last_result = f"{version} {'published' if published else ('passed' if passed else 'rejected')}"
        state.save(data_dir, self.MODEL)
        run.finish("finished", version=version, gate_passed=passed, published=published)
        self.trainlog.finish_run(info["run_id"], "finished", version, passed, published)
        RunDir.prune(data_dir, keep=5, model=self.MODEL)

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
            NotEnoughDataError: too few rows to train on.
            TrainingError, ExportError: the run failed; it stays resumable when it has a checkpoint.
        """
        started = time.monotonic()
        publish = self.cfg.publish if publish is None else publish
        run = RunDir.interrupted(self.settings.data_dir, self.MODEL)
        if run is not None and run.info().get("attempts", 0) >= _MAX_ATTEMPTS:
            log.warning("abandoning %s %s after %d failed attempts", self.NOUN, run.path.name, _MAX_ATTEMPTS)
            run.finish("abandoned")
            run = None
        if run is not None:
            info = run.update(resumed=True, attempts=run.info().get("attempts", 0) + 1)
            log.info("resuming interrupted %s %s (%s)", self.NOUN, info["run_id"], info["reason"])
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
        self._count(outcome)
        return outcome

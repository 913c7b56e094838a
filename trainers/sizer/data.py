"""From replay rows to a sizer run's data: chronological split, sampling priorities, reward scale.

A run trains on the oldest ``1 - holdout_fraction`` of its window and evaluates on the newest
rest, so no evaluation row precedes a training row. Normalisation statistics
(:class:`trainers.run.norm.NormStats`) come from the training part only and travel in the model
manifest.

The env reads a run's data from one ``.npz`` file (:meth:`RunData.save`), which keeps Ray
checkpoints small and lets an interrupted run resume on exactly the same rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streams.config.trainer import TrainerSettings
from trainers.errors import NotEnoughDataError
from trainers.run.norm import NormStats
from trainers.sizer.sampling import importance_weights, priorities, sampling_probabilities
from trainers.store.replay import ExperienceArrays

__all__ = ["RunData", "chronological_split", "data_hash", "prepare", "window_info"]

def chronological_split(
    rows: ExperienceArrays, holdout_fraction: float
) -> tuple[ExperienceArrays, ExperienceArrays]:
    """The oldest ``1 - holdout_fraction`` of ``rows`` (already in ts order) and the newest rest."""
    n_hold = max(1, round(len(rows) * holdout_fraction))
    cut = len(rows) - n_hold
    return rows.take(slice(0, cut)), rows.take(slice(cut, None))


def data_hash(rows: ExperienceArrays) -> str:
    """sha256 over (signal_id, revision, ts) of every row: identifies a run's exact data."""
    digest = hashlib.sha256()
    for sid, rev, ts in zip(rows.signal_id, rows.revision.tolist(), rows.ts.tolist(), strict=True):
        digest.update(f"{sid}\t{rev}\t{ts}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class RunData:
    """What the env needs: normalised training observations, scaled returns, sampling weights."""

    obs: np.ndarray  # float32 [n, d], normalised
    ret: np.ndarray  # float64 [n], return_unit / ret_scale
    ts: np.ndarray
    probs: np.ndarray  # sampling probability per row
    weights: np.ndarray  # importance weight per row (1 when sampling is uniform)
    ret_scale: float
    var_level: float  # unit-size loss at the risk_alpha quantile, in scaled units

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez(
                fh, obs=self.obs, ret=self.ret, ts=self.ts, probs=self.probs, weights=self.weights,
                ret_scale=np.float64(self.ret_scale), var_level=np.float64(self.var_level),
            )  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> RunData:
        with np.load(path) as data:
            return cls(
                obs=data["obs"], ret=data["ret"], ts=data["ts"], probs=data["probs"],
                weights=data["weights"], ret_scale=float(data["ret_scale"]),
                var_level=float(data["var_level"]),
            )  # fmt: skip


def prepare(train: ExperienceArrays, norm: NormStats, cfg: TrainerSettings) -> RunData:
    """The env data of a training split: normalised states, scaled returns, sampling weights.

    Raises:
        NotEnoughDataError: fewer training rows than ``cfg.min_train_rows``.
    """
    if len(train) < cfg.min_train_rows:
        raise NotEnoughDataError(f"{len(train)} training rows, need {cfg.min_train_rows}")
    ret_scale = float(max(np.std(train.return_unit), 1e-12))
    ret = train.return_unit / ret_scale
    if cfg.sampling == "priority":
        prio = priorities(
            train.profitability, train.premium,
            alpha=cfg.priority_alpha, epsilon=cfg.priority_epsilon, premium_boost=cfg.premium_boost,
        )  # fmt: skip
        probs = sampling_probabilities(prio)
        weights = importance_weights(probs, cfg.priority_beta)
    else:
        probs = np.full(len(train), 1.0 / len(train))
        weights = np.ones(len(train))
    var_level = float(-np.quantile(ret, cfg.risk_alpha))
    return RunData(
        obs=norm.apply(train.state), ret=ret, ts=train.ts, probs=probs, weights=weights,
        ret_scale=ret_scale, var_level=var_level,
    )  # fmt: skip


def window_info(rows: ExperienceArrays, train: ExperienceArrays, hold: ExperienceArrays) -> dict[str, Any]:
    """The manifest's ``data_window``: event-time range and row counts of a run."""
    return {
        "first_ts": int(rows.ts[0]),
        "last_ts": int(rows.ts[-1]),
        "rows": len(rows),
        "train_rows": len(train),
        "holdout_rows": len(hold),
        "holdout_first_ts": int(hold.ts[0]),
        "max_seq": int(rows.seq.max()),
    }

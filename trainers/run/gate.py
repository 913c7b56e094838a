"""The evaluation gate of every model kind: policy metrics, paired block-bootstrap intervals.

Every policy is scored on the same chronological hold-out by the P&L series it would have made
(the sizer's per signal, :mod:`trainers.sizer.evaluation`; the allocator's per period,
:mod:`trainers.allocator.evaluation`). Metrics are per step, in hold-out order:

* ``mean_return``: mean P&L per step (unit-size returns);
* ``sharpe``: mean / std of the per-step P&L (not annualised);
* ``cvar``: mean P&L of the worst ``alpha`` share (5%) of steps (higher is better);
* ``max_drawdown``: largest peak-to-trough fall of the cumulative P&L (lower is better);
* ``win_rate``: share of steps with positive P&L;
* ``profit_factor``: sum of gains / sum of losses (capped at 1000).

Improvements are paired: the same bootstrap resample is applied to both policies. Resamples are
moving blocks (``bootstrap_block`` rows) to respect serial correlation in the hold-out.

Example:
    >>> r = np.array([0.01, -0.02, 0.03, -0.01, 0.02])
    >>> round(compute_metrics(r)["win_rate"], 2)
    0.6
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NotRequired, TypedDict, Unpack

import numpy as np

__all__ = [
    "CANDIDATE",
    "HIGHER_IS_BETTER",
    "METRICS",
    "GateOptions",
    "GateResult",
    "block_bootstrap_indices",
    "compute_metrics",
    "evaluate_pnl",
    "metric_values",
]

# The name every gate gives the policy it decides on (the baselines have the kinds' own names).
CANDIDATE: Final = "candidate"
METRICS: Final = ("mean_return", "sharpe", "cvar", "max_drawdown", "win_rate", "profit_factor")
HIGHER_IS_BETTER: Final = {m: m != "max_drawdown" for m in METRICS}
_PF_CAP: Final = 1000.0


def metric_values(pnl: np.ndarray, name: str, alpha: float = 0.05) -> np.ndarray:
    """Metric ``name`` of each row of ``pnl`` ([..., n] per-signal P&L in order)."""
    if name == "mean_return":
        return pnl.mean(axis=-1)
    if name == "sharpe":
        sd = pnl.std(axis=-1)
        return np.divide(pnl.mean(axis=-1), sd, out=np.zeros_like(sd), where=sd > 0)
    if name == "cvar":
        k = max(1, math.ceil(alpha * pnl.shape[-1]))
        return np.partition(pnl, k - 1, axis=-1)[..., :k].mean(axis=-1)
    if name == "max_drawdown":
        cum = np.cumsum(pnl, axis=-1)
        peak = np.maximum(np.maximum.accumulate(cum, axis=-1), 0.0)
        return (peak - cum).max(axis=-1)
    if name == "win_rate":
        return (pnl > 0).mean(axis=-1)
    if name == "profit_factor":
        gains = np.where(pnl > 0, pnl, 0.0).sum(axis=-1)
        losses = -np.where(pnl < 0, pnl, 0.0).sum(axis=-1)
        ratio = np.divide(gains, losses, out=np.full_like(gains, _PF_CAP), where=losses > 0)
        return np.minimum(ratio, _PF_CAP)
    raise ValueError(f"unknown metric {name!r}")


def compute_metrics(pnl: np.ndarray, alpha: float = 0.05) -> dict[str, float]:
    """Every metric of one P&L series."""
    return {name: float(metric_values(pnl, name, alpha)) for name in METRICS}


def block_bootstrap_indices(n: int, samples: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """``[samples, n]`` row indices of a moving-block bootstrap (``block=1``: plain i.i.d.)."""
    block = max(1, min(block, n))
    starts = rng.integers(0, n - block + 1, size=(samples, math.ceil(n / block)))
    return (starts[..., None] + np.arange(block)).reshape(samples, -1)[:, :n]


@dataclass(frozen=True, slots=True)
class GateResult:
    """The promotion decision and everything it was based on (saved as the run's report)."""

    passed: bool
    reference: str
    metric: str
    lower_bound: float
    margin: float
    policies: dict[str, dict[str, float]]
    improvements: dict[str, dict[str, dict[str, float]]]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": {
                "passed": self.passed,
                "reference": self.reference,
                "metric": self.metric,
                "lower_bound": self.lower_bound,
                "margin": self.margin,
            },
            "policies": self.policies,
            "improvements": self.improvements,
            **self.details,
        }


class GateOptions(TypedDict):
    """How the gate decides: the keyword arguments of :func:`evaluate_pnl` (and the sizer's
    :func:`trainers.sizer.evaluation.evaluate_policies`).

    One definition serves both entry points, so the sizer's and the allocator's gates cannot drift
    apart. ``candidate`` and ``reference`` name policies; ``metric`` is one of :data:`METRICS`;
    the one-sided ``confidence`` lower bound of the improvement must exceed ``margin``;
    ``samples`` moving-block resamples of ``block`` rows drawn with ``seed``; ``alpha`` is the CVaR
    tail share (default 0.05).
    """

    candidate: str
    reference: str
    metric: str
    margin: float
    confidence: float
    samples: int
    block: int
    seed: int
    alpha: NotRequired[float]


def evaluate_pnl(pnl: Mapping[str, np.ndarray], **gate: Unpack[GateOptions]) -> GateResult:
    """Score every policy's P&L series (same length, in order) and decide on ``candidate``.

    The gate passes when the one-sided ``confidence`` lower bound of the candidate's improvement
    over ``reference`` on ``metric`` exceeds ``margin`` (improvement is signed so that positive
    is better, also for ``max_drawdown``). Intervals reported are the [1 - c, c] quantiles. The
    sizer's P&L is ``multiplier x return_unit`` per signal
    (:func:`trainers.sizer.evaluation.evaluate_policies`), the allocator's
    ``weights . next-period returns`` per period.
    """
    candidate, reference, metric, margin = (
        gate["candidate"],
        gate["reference"],
        gate["metric"],
        gate["margin"],
    )
    samples, block, seed, confidence = gate["samples"], gate["block"], gate["seed"], gate["confidence"]
    alpha = gate.get("alpha", 0.05)
    pnl = {name: np.asarray(p, dtype=np.float64) for name, p in pnl.items()}
    n = len(pnl[candidate])
    policies = {name: compute_metrics(p, alpha) for name, p in pnl.items()}
    idx = block_bootstrap_indices(n, samples, block, np.random.default_rng(seed))
    lo_q, hi_q = 1.0 - confidence, confidence
    improvements: dict[str, dict[str, dict[str, float]]] = {}
    resampled_candidate = pnl[candidate][idx]
    for name, other in pnl.items():
        if name == candidate:
            continue
        resampled_other = other[idx]
        per_metric = {}
        for m in METRICS:
            sign = 1.0 if HIGHER_IS_BETTER[m] else -1.0
            diffs = sign * (
                metric_values(resampled_candidate, m, alpha) - metric_values(resampled_other, m, alpha)
            )
            point = sign * (policies[candidate][m] - policies[name][m])
            per_metric[m] = {
                "point": float(point),
                "ci_low": float(np.quantile(diffs, lo_q)),
                "ci_high": float(np.quantile(diffs, hi_q)),
                "p_better": float((diffs > 0).mean()),
            }
        improvements[name] = per_metric
    lower = improvements[reference][metric]["ci_low"]
    details = {
        "holdout_rows": n,
        "bootstrap": {"samples": samples, "block": block, "confidence": confidence, "seed": seed},
        "cvar_alpha": alpha,
    }
    return GateResult(
        passed=bool(lower > margin),
        reference=reference,
        metric=metric,
        lower_bound=float(lower),
        margin=margin,
        policies=policies,
        improvements=improvements,
        details=details,
    )

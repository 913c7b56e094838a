"""The sizer's hold-out evaluation: the score-rule baseline and the P&L of size multipliers.

Every sizer policy is scored on the same chronological hold-out rows by the P&L its multipliers
would have made, ``multiplier x return_unit`` (exact: P&L is linear in size, no market impact), so
this off-policy evaluation needs no importance weights. The metrics, the paired bootstrap and the
decision are the shared gate's (:func:`trainers.run.gate.evaluate_pnl`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

import numpy as np

from trainers.run.gate import GateOptions, GateResult, evaluate_pnl

__all__ = ["evaluate_policies", "score_rule"]


def score_rule(score: np.ndarray) -> np.ndarray:
    """The score-rule baseline (DESIGN.md section 5): >0.8 -> 1.5, <0.4 -> 0.5, else 1.0."""
    return np.where(score > 0.8, 1.5, np.where(score < 0.4, 0.5, 1.0))


def evaluate_policies(
    multipliers: Mapping[str, np.ndarray], returns: np.ndarray, **gate: Unpack[GateOptions]
) -> GateResult:
    """Score every policy on the hold-out and decide whether ``candidate`` beats ``reference``.

    The gate passes when the one-sided ``confidence`` lower bound of the candidate's improvement
    over ``reference`` on ``metric`` exceeds ``margin`` (improvement is signed so that positive
    is better, also for ``max_drawdown``). Intervals reported are the [1 - c, c] quantiles.
    """
    pnl = {name: np.asarray(m, dtype=np.float64) * returns for name, m in multipliers.items()}
    return evaluate_pnl(pnl, **gate)

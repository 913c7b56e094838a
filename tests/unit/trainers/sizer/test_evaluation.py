"""The sizer's hold-out evaluation: the score-rule baseline and the promotion gate on multipliers."""

from __future__ import annotations

import numpy as np

from trainers.sizer.evaluation import evaluate_policies, score_rule


def test_score_rule() -> None:
    np.testing.assert_array_equal(score_rule(np.array([0.9, 0.8, 0.5, 0.39])), [1.5, 1.0, 1.0, 0.5])


def _returns(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = 0.002 * rng.normal(size=n)
    return mean, mean + 0.004 * rng.normal(size=n)


def test_gate_promotes_a_clearly_better_policy() -> None:
    mean, ret = _returns()
    policies = {"candidate": np.where(mean > 0, 2.0, 0.25), "fixed": np.ones_like(ret)}
    gate = evaluate_policies(policies, ret, candidate="candidate", reference="fixed", metric="sharpe",
                             margin=0.0, confidence=0.95, samples=500, block=10, seed=1)  # fmt: skip
    assert gate.passed and gate.lower_bound > 0
    imp = gate.improvements["fixed"]["sharpe"]
    assert imp["ci_low"] <= imp["point"] <= imp["ci_high"]
    assert gate.to_dict()["gate"]["reference"] == "fixed"


def test_gate_rejects_an_identical_or_worse_policy() -> None:
    mean, ret = _returns(seed=1)
    same = {"candidate": np.ones_like(ret), "fixed": np.ones_like(ret)}
    gate = evaluate_policies(same, ret, candidate="candidate", reference="fixed", metric="sharpe",
                             margin=0.0, confidence=0.9, samples=300, block=5, seed=1)  # fmt: skip
    assert not gate.passed
    worse = {"candidate": np.where(mean > 0, 0.25, 2.0), "serving": np.ones_like(ret)}
    for metric in ("sharpe", "max_drawdown", "cvar"):
        gate = evaluate_policies(worse, ret, candidate="candidate", reference="serving", metric=metric,
                                 margin=0.0, confidence=0.9, samples=300, block=5, seed=1)  # fmt: skip
        assert not gate.passed, metric

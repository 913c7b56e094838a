"""Live uplift of the served sizer and of the strategy weights the engine received."""

from __future__ import annotations

import math

from tradeloop.ops.uplift import LiveUplift, WeightsUplift


def _signal(sid: str, action: float, version: str | None) -> dict:
    return {"signal_id": sid, "action": action, "model_version": version}


def _outcome(sid: str, r: float) -> dict:
    return {"signal_id": sid, "return_unit": r}


def test_counts_closed_model_decisions_in_either_order() -> None:
    live = LiveUplift()
    live.signal(_signal("a", 2.0, "v1"))
    live.outcome(_outcome("a", 0.01))
    live.outcome(_outcome("b", -0.02))  # outcome read before its signal
    live.signal(_signal("b", 0.5, "v1"))
    live.signal(_signal("c", 1.5, None))  # the rule sized it: not a model decision
    live.outcome(_outcome("c", 0.03))
    live.signal(_signal("d", 2.0, "v2"))  # still open: not counted yet
    assert live.decisions_with_model == 2
    # (2-1)*0.01 + (0.5-1)*(-0.02) = 0.01 + 0.01
    assert abs(live.uplift - 0.02) < 1e-12
    assert live.summary()["decisions_by_version"] == {"v1": 2}


def _weights(weights: dict[str, float] | None, portfolio: str = "main", reason: str | None = None) -> dict:
    names = ["a", "b", "c"]
    learned = weights is not None
    values = [weights[n] for n in names] if weights is not None else [1 / 3] * 3
    return {"portfolio": portfolio, "strategies": names, "weights": values, "model_version": "v1" if learned else None,
            "fallback": not learned, "fallback_reason": reason}  # fmt: skip


def _period(returns: list[float], portfolio: str = "main") -> dict:
    return {"portfolio": portfolio, "strategies": ["a", "b", "c"], "strategy_returns": returns}


def test_weights_uplift_scores_periods_only_while_learned_weights_are_in_force() -> None:
    live = WeightsUplift()
    live.period(_period([0.03, 0.0, 0.0]))  # before any weights: equal weights, no uplift to count
    live.weights(_weights(None, reason="no_model"))
    live.period(_period([0.03, 0.0, 0.0]))
    assert (live.updates, live.periods, live.fallback_reason) == (0, 0, "no_model")
    live.weights(_weights({"a": 0.5, "b": 0.25, "c": 0.25}))
    live.period(_period([0.03, -0.03, 0.0]))  # (0.5-1/3)*0.03 + (0.25-1/3)*(-0.03) = 0.0075
    live.period(_period([0.03, -0.03, 0.0], portfolio="other"))  # no weights for that portfolio
    live.weights(_weights({"a": 0.2, "b": 0.4, "c": 0.4}))
    live.period(_period([0.03, 0.0, 0.0]))  # (0.2-1/3)*0.03 = -0.004
    assert live.updates == 2 and live.periods == 2 and live.model_version == "v1"
    assert math.isclose(live.uplift, 0.0075 - 0.004)
    live.weights(_weights(None, reason="kill_switch"))  # a fallback ends the learned weights
    live.period(_period([1.0, 0.0, 0.0]))
    assert live.periods == 2 and live.model_version is None and live.fallback_reason == "kill_switch"
    summary = live.summary()
    assert summary["weights_updates"] == 2 and summary["weights_uplift_vs_equal"] == round(0.0035, 6)

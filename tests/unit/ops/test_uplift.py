from __future__ import annotations

from tradeloop.ops.uplift import LiveUplift


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

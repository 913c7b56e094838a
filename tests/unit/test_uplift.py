from __future__ import annotations

from tradeloop.uplift import LiveUplift


def _exp(sid: str, action: float, r: float, version: str | None, status: str = "COMPLETE") -> dict:
    return {"signal_id": sid, "action": action, "return_unit": r, "model_version": version, "status": status}


def test_counts_only_model_decisions_once_and_computes_uplift() -> None:
    live = LiveUplift()
    live.add(_exp("a", 2.0, 0.01, "v1"))
    live.add(_exp("a", 2.0, 0.01, "v1"))  # duplicate delivery
    live.add(_exp("b", 0.5, -0.02, "v1"))
    live.add(_exp("c", 1.5, 0.03, None))  # rule or fixed: not a model decision
    live.add({**_exp("d", 1.0, 0.0, "v1", "CENSORED"), "return_unit": None})
    assert live.decisions_with_model == 2
    # (2-1)*0.01 + (0.5-1)*(-0.02) = 0.01 + 0.01
    assert abs(live.uplift - 0.02) < 1e-12
    assert live.summary()["decisions_by_version"] == {"v1": 2}

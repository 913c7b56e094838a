"""Canary routing and verdicts."""

from __future__ import annotations

import pytest

from streams.config.inference import InferenceSettings
from streams.serving.canary import Canary, routed_to_canary


def canary(**overrides: object) -> Canary:
    conf = InferenceSettings(**{"canary_share": 0.5, "canary_decisions": 4, **overrides})
    return Canary("candidate", "incumbent", conf, started=0.0)


def test_routing_is_stable_and_close_to_the_share() -> None:
    ids = [f"signal-{i}" for i in range(20_000)]
    share = sum(routed_to_canary(s, 0.2) for s in ids) / len(ids)
    assert share == pytest.approx(0.2, abs=0.015)
    assert [routed_to_canary(s, 0.2) for s in ids[:50]] == [routed_to_canary(s, 0.2) for s in ids[:50]]
    assert not any(routed_to_canary(s, 0.0) for s in ids[:100])
    assert all(routed_to_canary(s, 1.0) for s in ids[:100])


def feed(c: Canary, returns: list[float], candidate: float = 2.0, incumbent: float = 1.0) -> None:
    ids = [f"s{c.decisions + i}" for i in range(len(returns))]
    c.record(ids, [candidate] * len(ids), [incumbent] * len(ids), fallbacks=0)
    for signal_id, r in zip(ids, returns, strict=True):
        assert c.outcome(signal_id, r)


def test_no_verdict_before_n_outcomes() -> None:
    c = canary()
    feed(c, [-0.01, -0.02, -0.01])
    assert c.verdict(1.0) is None


def test_clearly_negative_uplift_rolls_back() -> None:
    c = canary()
    feed(c, [-0.01, -0.02, -0.015, -0.01])
    verdict = c.verdict(1.0)
    assert not verdict.promote and verdict.reason == "uplift"


def test_noisy_uplift_within_confidence_promotes() -> None:
    c = canary()
    feed(c, [0.03, -0.02, 0.01, -0.015])  # mean slightly positive, large spread
    verdict = c.verdict(1.0)
    assert verdict.promote and verdict.reason == "uplift_ok"


def test_fallback_rate_rolls_back_as_soon_as_the_bound_cannot_hold() -> None:
    c = canary(canary_decisions=100, canary_max_fallback_rate=0.05)
    c.record([], [], [], fallbacks=5)
    assert c.verdict(0.0) is None  # 5 of 100 is still within the bound
    c.record([], [], [], fallbacks=1)
    assert c.verdict(0.0).reason == "fallback_rate"


def test_timeout_promotes_without_outcomes_unless_they_show_a_loss() -> None:
    c = canary(canary_timeout_seconds=10.0)
    c.record(["a", "b", "c", "d"], [2.0] * 4, [1.0] * 4, fallbacks=0)
    assert c.verdict(5.0) is None
    assert c.verdict(11.0).reason == "timeout" and c.verdict(11.0).promote
    losing = canary(canary_timeout_seconds=10.0)
    feed(losing, [-0.01, -0.011, -0.012])
    losing.record(["x"], [2.0], [1.0], fallbacks=0)
    assert losing.verdict(11.0).reason == "uplift"


def test_unknown_outcomes_and_bounded_memory() -> None:
    c = canary(pending_outcomes_max=2)
    c.record(["a", "b", "c"], [2.0] * 3, [1.0] * 3, fallbacks=0)
    assert not c.outcome("a", 0.01)  # evicted: the oldest beyond the bound
    assert not c.outcome("zzz", 0.01)
    assert c.outcome("c", 0.01) and c.outcomes == 1

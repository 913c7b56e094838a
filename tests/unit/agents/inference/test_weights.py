"""Strategy weights: the capped step, equal-weights fallback and the allocator path."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.inference.weights import WeightsPlanner, cap_step, equal_weights, softmax
from streams.serving.verify import load_model
from tests.kit.inference.model_factory import make_manifest, mlp_onnx, update_record

KEY = b"unit-test-key"
NAMES = ["a", "b", "c", "d"]

weights_of = st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4).filter(lambda w: sum(w) > 0.01)


@given(weights_of, weights_of, st.floats(0.01, 1.0))
def test_cap_step_moves_at_most_the_step_and_stays_a_distribution(prev, target, step) -> None:
    previous = dict(zip(NAMES, [w / sum(prev) for w in prev], strict=True))
    goal = dict(zip(NAMES, [w / sum(target) for w in target], strict=True))
    moved = cap_step(previous, goal, step)
    assert sum(moved.values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in moved.values())
    assert max(abs(moved[n] - previous[n]) for n in NAMES) <= step + 1e-9
    if max(abs(goal[n] - previous[n]) for n in NAMES) <= step:
        assert moved == pytest.approx(goal)


def test_cap_step_starts_from_equal_weights_and_ramps_new_strategies_in() -> None:
    assert cap_step(None, {"a": 1.0, "b": 0.0}, 0.2) == {"a": 0.7, "b": 0.3}
    ramp = cap_step({"a": 0.5, "b": 0.5}, equal_weights(["a", "b", "c"]), 0.1)
    assert ramp["c"] == pytest.approx(0.1) and sum(ramp.values()) == pytest.approx(1.0)


def test_softmax() -> None:
    assert softmax([0.0, 0.0]) == [0.5, 0.5]
    assert sum(softmax([1000.0, 0.0, -5.0])) == pytest.approx(1.0)


def period(portfolio: str = "main", strategies: tuple[str, ...] = ("a", "b", "c"), ts: int = 1) -> dict:
    n = len(strategies)
    return {"portfolio": portfolio, "ts": ts, "strategies": list(strategies), "market": [0.0] * 8,
            "portfolio_state": [0.0] * 6, "strategy_sharpe": [0.5] * n, "strategy_drawdown": [0.1] * n,
            "regime": [0.0] * 4}  # fmt: skip


def allocator(strategies: list[str], logits: tuple[float, ...]):
    n_in = 8 + 6 + 2 * len(strategies) + 4
    onnx = mlp_onnx(n_in=n_in, n_out=len(strategies), constant=logits)
    manifest = make_manifest("a1", onnx, name="allocator", n_inputs=n_in, strategies=strategies)
    return load_model(update_record(manifest, onnx, KEY), KEY, 10**8)


def test_without_allocator_equal_weights_are_published_as_fallback() -> None:
    planner = WeightsPlanner("w", max_step=0.2)
    planner.observe_period(period())
    planner.observe_period(period("other", ("x", "y"), ts=1))
    records = planner.plan(None, kill_switch=False)
    assert [r["portfolio"] for r in records] == ["main", "other"]
    main = records[0]
    assert main["weights"] == pytest.approx([1 / 3] * 3) and main["fallback"]
    assert main["fallback_reason"] == "no_model" and main["model_version"] is None


def test_allocator_weights_move_towards_its_softmax_at_the_capped_pace() -> None:
    planner = WeightsPlanner("w", max_step=0.1)
    planner.observe_period(period())
    model = allocator(["a", "b", "c"], (4.0, 0.0, 0.0))
    target = softmax([4.0, 0.0, 0.0])
    last = [1 / 3] * 3
    for _ in range(10):
        (record,) = planner.plan(model, kill_switch=False)
        assert not record["fallback"] and record["model_version"] == "a1"
        assert max(abs(w - p) for w, p in zip(record["weights"], last, strict=True)) <= 0.1 + 1e-9
        last = record["weights"]
    assert last == pytest.approx(target, abs=1e-6)
    (killed,) = planner.plan(model, kill_switch=True)
    assert killed["fallback_reason"] == "kill_switch"
    assert killed["weights"][0] == pytest.approx(target[0] - 0.1)


def test_allocator_strategy_mismatch_falls_back() -> None:
    planner = WeightsPlanner("w", max_step=1.0)
    planner.observe_period(period(strategies=("a", "b", "z")))
    (record,) = planner.plan(allocator(["a", "b", "c"], (0.0, 0.0, 0.0)), kill_switch=False)
    assert record["fallback_reason"] == "strategy_mismatch"


def test_a_new_publisher_continues_from_weights_published_before() -> None:
    planner = WeightsPlanner("w2", max_step=0.1)
    planner.observe_period(period(strategies=("a", "b")))
    planner.observe_published({"portfolio": "main", "ts": 5, "strategies": ["a", "b"], "weights": [0.9, 0.1]})
    (record,) = planner.plan(None, kill_switch=False)
    assert record["weights"] == pytest.approx([0.8, 0.2])
    assert not math.isnan(record["ts"])

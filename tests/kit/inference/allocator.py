"""Signed allocator updates and allocation periods for the allocator canary's tests."""

from __future__ import annotations

from streams.serving.runtime import LoadedModel
from streams.serving.verify import load_model
from tests.kit.inference.model_factory import make_manifest, mlp_onnx, update_record

__all__ = ["KEY", "PERIOD_US", "STRATEGIES", "allocator", "allocator_update", "period"]

KEY = b"unit-test-key"
STRATEGIES = ["a", "b", "c"]
PERIOD_US = 60_000_000


def allocator_update(
    version: str, logits: tuple[float, ...], strategies: list[str] = STRATEGIES, key: bytes = KEY
) -> dict:
    """A signed allocator whose logits are ``logits`` whatever the state."""
    n_in = 8 + 6 + 2 * len(strategies) + 4
    onnx = mlp_onnx(n_in=n_in, n_out=len(strategies), constant=logits)
    manifest = make_manifest(version, onnx, name="allocator", n_inputs=n_in, strategies=strategies)
    return update_record(manifest, onnx, key)


def allocator(version: str, logits: tuple[float, ...], strategies: list[str] = STRATEGIES) -> LoadedModel:
    return load_model(allocator_update(version, logits, strategies), KEY, 10**8)


def period(
    index: int,
    returns: tuple[float, ...] = (0.0, 0.0, 0.0),
    portfolio: str = "main",
    strategies: list[str] = STRATEGIES,
) -> dict:
    """Period ``index`` of ``portfolio``: [index, index + 1) minutes, ``returns`` per strategy."""
    n = len(strategies)
    return {"portfolio": portfolio, "period_start": index * PERIOD_US, "ts": (index + 1) * PERIOD_US,
            "strategies": list(strategies), "strategy_returns": list(returns), "market": [0.0] * 8,
            "portfolio_state": [0.0] * 6, "strategy_sharpe": [0.5] * n, "strategy_drawdown": [0.1] * n,
            "regime": [0.0] * 4}  # fmt: skip

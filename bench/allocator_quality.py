"""Allocator quality: hold-out Sharpe uplift of the learned allocator over equal weights, as a
fraction of the oracle's uplift, on simulated allocation periods over several seeds.

    python bench/allocator_quality.py --json bench/results/allocator_quality.json

Per seed: a simulator backfill of ``--signals`` signals becomes AllocationPeriod records of
``--period`` seconds (tests/kit/simulated_periods.py: the agents' feature and period code), which go into a
fresh allocation store; one full allocator run with the default trainer settings (PPO, the default
reward, the gate) trains on the oldest 75% of the period pairs and is scored on the newest 25%.
Sharpe is per period of ``w_t . r_{t+1}`` (not annualised).

Oracle (as the issue defines it): it allocates with the simulator's true expected returns, i.e. per
period and strategy the sum of ``Simulator.oracle`` over the outcomes that close in the period
(``M``), as ``softmax(k * M / sd)`` with ``sd`` the std of the training strategy returns and ``k``
the best of ``ORACLE_GRID`` by *training* Sharpe. It knows each period's signals before they
happen, which no allocator observing only the period state can. For scale, the bench also reports
two static references (fixed weights for the whole hold-out, ``k`` chosen the same way): the
*static oracle* (the strategies' true mean expected return over the training window) and the
*best static* allocation (their realised training mean returns), and inverse volatility.

``oracle_uplift_fraction = (S_learned - S_equal) / (S_oracle - S_equal)``; target >= 0.6, and
``sharpe_uplift_vs_equal > 0`` on every seed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/allocator_quality.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench._report import report
from streams.config.trainer import AllocatorTrainerSettings, TrainerSettings
from streams.settings import Settings
from tests.kit.simulated_periods import simulate_periods
from trainers.allocator.env import softmax_weights
from trainers.allocator.evaluation import inverse_vol_weights
from trainers.allocator.export import OnnxAllocator
from trainers.allocator.pairs import build_pairs, choose_strategies
from trainers.allocator.pipeline import MODEL, AllocatorPipeline
from trainers.registry import ModelRegistry
from trainers.store.allocation import AllocationStore
from trainers.store.trainlog import TrainLog

TARGET = 0.6
ORACLE_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def sharpe(pnl: np.ndarray) -> float:
    return float(pnl.mean() / pnl.std())


def softmax_policy(score: np.ndarray, returns: np.ndarray, cut: int) -> tuple[np.ndarray, float]:
    """Weights ``softmax(k * score)`` ([n, k] scores) with ``k`` the best training Sharpe of the grid."""

    def pnl(k: float, rows: slice) -> np.ndarray:
        return (softmax_weights(k * score[rows]) * returns[rows]).sum(axis=1)

    best = max(ORACLE_GRID, key=lambda k: sharpe(pnl(k, slice(0, cut))))
    return softmax_weights(best * score), best


def one_seed(seed: int, n_signals: int, period: float, overrides: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    found = simulate_periods(seed, n_signals, period_seconds=period)
    simulated = time.monotonic() - started
    trainer = TrainerSettings(publish=False, allocator=AllocatorTrainerSettings(**overrides))
    with tempfile.TemporaryDirectory(prefix="tradeloop-aq-") as tmp:
        settings = Settings(data_dir=Path(tmp), metrics_enabled=False, trainer=trainer)
        with AllocationStore.open(settings.data_dir) as store:
            store.write(found.records)
            registry = ModelRegistry(settings.data_dir, name=MODEL)
            pipeline = AllocatorPipeline(
                settings, store, registry, TrainLog.open(settings.data_dir), progress=False
            )
            started = time.monotonic()
            outcome = pipeline.run(f"allocator-quality seed {seed}")
            seconds = time.monotonic() - started
            model = registry.load(outcome.version, settings.signing_key())
            records = store.periods()
    strategies = choose_strategies(records)
    pairs = build_pairs(records, strategies)
    truth = {
        r["period_start"]: dict(zip(r["strategies"], e, strict=True))
        for r, e in zip(found.records, found.expected, strict=True)
    }
    expected = np.array([[truth[int(s)][name] for name in strategies] for s in pairs.period_start])
    returns = pairs.next_returns
    cut = len(pairs) - int(outcome.report["holdout_rows"])
    mean, std = np.array(model.manifest.obs_mean), np.array(model.manifest.obs_std)
    learned = OnnxAllocator(model.onnx).weights(((pairs.obs - mean) / std).astype(np.float32))
    sd = float(returns[:cut].std())
    oracle, k = softmax_policy(expected / sd, returns, cut)
    static_truth = np.tile(expected[:cut].mean(axis=0) / sd, (len(pairs), 1))
    static_oracle, k_so = softmax_policy(static_truth, returns, cut)
    best_static, k_bs = softmax_policy(
        np.tile(returns[:cut].mean(axis=0) / sd, (len(pairs), 1)), returns, cut
    )
    hold = slice(cut, None)

    def hold_sharpe(weights: np.ndarray) -> float:
        return sharpe((weights[hold] * returns[hold]).sum(axis=1))

    s_equal, s_learned, s_oracle = (
        sharpe(returns[hold].mean(axis=1)),
        hold_sharpe(learned),
        hold_sharpe(oracle),
    )
    s_static_oracle, s_best_static = hold_sharpe(static_oracle), hold_sharpe(best_static)
    return {
        "seed": seed,
        "signals": found.signals,
        "periods": len(found.records),
        "pairs": len(pairs),
        "holdout_periods": len(pairs) - cut,
        "sharpe_equal": s_equal,
        "sharpe_learned": s_learned,
        "sharpe_oracle": s_oracle,
        "oracle_k": k,
        "sharpe_inverse_vol": hold_sharpe(inverse_vol_weights(pairs.trailing_std)),
        "sharpe_static_oracle": s_static_oracle,
        "static_oracle_k": k_so,
        "sharpe_best_static": s_best_static,
        "best_static_k": k_bs,
        "sharpe_uplift_vs_equal": s_learned - s_equal,
        "oracle_uplift_fraction": (s_learned - s_equal) / (s_oracle - s_equal),
        "static_oracle_uplift_fraction": (s_static_oracle - s_equal) / (s_oracle - s_equal),
        "learned_max_weight_mean": float(learned[hold].max(axis=1).mean()),
        "learned_weight_sd_over_time": float(learned[hold].std(axis=0).mean()),
        "gate_passed": outcome.gate_passed,
        "simulate_seconds": round(simulated, 1),
        "train_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--signals", type=int, default=40_000, help="signals per seed (about one a second)")
    parser.add_argument("--period", type=float, default=60.0, help="allocation period, seconds of event time")
    parser.add_argument("--obs-noise", type=float, default=None, help="override trainer.allocator.obs_noise")
    args = parser.parse_args()
    overrides = {} if args.obs_noise is None else {"obs_noise": args.obs_noise}
    per_seed = []
    for seed in args.seeds:
        result = one_seed(seed, args.signals, args.period, overrides)
        print(
            f"seed {seed}: Sharpe equal {result['sharpe_equal']:.3f} learned {result['sharpe_learned']:.3f} "
            f"oracle {result['sharpe_oracle']:.3f} -> fraction {result['oracle_uplift_fraction']:.3f} "
            f"(simulate {result['simulate_seconds']} s, train {result['train_seconds']} s)",
            flush=True,
        )
        per_seed.append(result)
    spread = statistics.stdev if len(per_seed) > 1 else (lambda _x: 0.0)
    fractions = [r["oracle_uplift_fraction"] for r in per_seed]
    uplifts = [r["sharpe_uplift_vs_equal"] for r in per_seed]
    static = [r["static_oracle_uplift_fraction"] for r in per_seed]
    summary = {
        "sharpe_uplift_vs_equal": statistics.mean(uplifts),
        "sharpe_uplift_vs_equal_std": spread(uplifts),
        "sharpe_uplift_vs_equal_min": min(uplifts),
        "oracle_uplift_fraction": statistics.mean(fractions),
        "oracle_uplift_fraction_std": spread(fractions),
        "oracle_uplift_fraction_min": min(fractions),
        "static_oracle_uplift_fraction": statistics.mean(static),
        "seeds": args.seeds,
        "signals": args.signals,
        "period_seconds": args.period,
        "overrides": overrides,
        "per_seed": per_seed,
        "targets": {"oracle_uplift_fraction": TARGET, "sharpe_uplift_vs_equal": "> 0 on every seed"},
        "oracle": f"softmax(k * M / sd_train), M = true expected period return per strategy, k from {ORACLE_GRID}",
        "load_average_1m": os.getloadavg()[0],
    }
    rows = [
        (f"seed {r['seed']}", f"equal {r['sharpe_equal']:.3f} learned {r['sharpe_learned']:.3f} "
         f"oracle {r['sharpe_oracle']:.3f} static oracle {r['sharpe_static_oracle']:.3f} "
         f"inv-vol {r['sharpe_inverse_vol']:.3f} -> {r['oracle_uplift_fraction']:.2f}", "") for r in per_seed
    ]  # fmt: skip
    rows += [
        ("Sharpe uplift vs equal (per period, mean ± sd)",
         f"{summary['sharpe_uplift_vs_equal']:.3f} ± {summary['sharpe_uplift_vs_equal_std']:.3f} "
         f"(min {summary['sharpe_uplift_vs_equal_min']:.3f})", "> 0 every seed"),
        ("oracle uplift fraction (mean ± sd)",
         f"{summary['oracle_uplift_fraction']:.3f} ± {summary['oracle_uplift_fraction_std']:.3f} "
         f"(min {summary['oracle_uplift_fraction_min']:.3f})", f">= {TARGET}"),
        ("static-oracle fraction (reference)", f"{summary['static_oracle_uplift_fraction']:.3f}", "info"),
    ]  # fmt: skip
    report(
        "allocator quality: learned allocator vs equal weights vs oracle (hold-out)", rows, summary, args.json
    )


if __name__ == "__main__":
    main()

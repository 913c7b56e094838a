"""The training log: one row per run and one per PPO iteration, in SQLite beside the replay store.

Each iteration records the loss components, gradient norm, explained variance, the share of dead
units and the checks that fired (``exploding_gradients``, ``vanishing_gradients``,
``dead_units``, ``non_finite_loss``). ``tradeloop train log`` prints it and exports it as CSV.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from streams.clock import now_us
from streams.datadir import DataDir

__all__ = ["ITERATION_FIELDS", "TrainLog", "iteration_checks"]

ITERATION_FIELDS: Final = (
    "run_id", "iteration", "ts_us", "env_steps", "return_mean", "policy_loss", "vf_loss", "entropy",
    "kl", "total_loss", "grad_norm", "explained_var", "dead_units", "mean_multiplier", "seconds",
    "checks",
)  # fmt: skip
_RUN_FIELDS: Final = (
    "run_id", "started_us", "finished_us", "status", "mode", "reason", "rows", "version",
    "gate_passed", "published", "error",
)  # fmt: skip

_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS runs ({", ".join(f"{f}" for f in _RUN_FIELDS)}, PRIMARY KEY (run_id));
CREATE TABLE IF NOT EXISTS iterations ({", ".join(ITERATION_FIELDS)}, PRIMARY KEY (run_id, iteration));
"""

EXPLODING_GRAD_NORM: Final = 1e3
VANISHING_GRAD_NORM: Final = 1e-7
DEAD_UNIT_SHARE: Final = 0.5


def iteration_checks(stats: Mapping[str, float]) -> list[str]:
    """Names of the health checks an iteration's statistics fail."""
    checks = []
    losses = [stats.get(k, math.nan) for k in ("policy_loss", "vf_loss", "total_loss")]
    if not all(math.isfinite(v) for v in losses):
        checks.append("non_finite_loss")
    grad = stats.get("grad_norm", math.nan)
    if math.isfinite(grad) and grad > EXPLODING_GRAD_NORM:
        checks.append("exploding_gradients")
    if math.isfinite(grad) and grad < VANISHING_GRAD_NORM:
        checks.append("vanishing_gradients")
    if stats.get("dead_units", 0.0) > DEAD_UNIT_SHARE:
        checks.append("dead_units")
    return checks


class TrainLog:
    """Append-only log of runs and iterations."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def open(cls, data_dir: Path) -> TrainLog:
        return cls(DataDir(data_dir).trainlog)

    def close(self) -> None:
        self._db.close()

    def start_run(self, run_id: str, mode: str, reason: str, rows: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO runs (run_id, started_us, status, mode, reason, rows) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, now_us(), "running", mode, reason, rows),
        )

    def finish_run(
        self,
        run_id: str,
        status: str,
        version: str | None = None,
        gate_passed: bool | None = None,
        published: bool = False,
        error: str | None = None,
    ) -> None:
        self._db.execute(
            "UPDATE runs SET finished_us = ?, status = ?, version = ?, gate_passed = ?, published = ?, "
            "error = ? WHERE run_id = ?",
            (now_us(), status, version, gate_passed, published, error, run_id),
        )

    def log_iteration(
        self, run_id: str, iteration: int, stats: Mapping[str, float], checks: Sequence[str]
    ) -> None:
        row = {
            "run_id": run_id,
            "iteration": iteration,
            "ts_us": now_us(),
            "checks": json.dumps(list(checks)),
        }
        for name in ITERATION_FIELDS:
            if name not in row:
                value = stats.get(name)
                row[name] = None if value is None or not math.isfinite(value) else float(value)
        marks = ", ".join("?" * len(ITERATION_FIELDS))
        self._db.execute(
            f"INSERT OR REPLACE INTO iterations VALUES ({marks})",  # noqa: S608
            [row[f] for f in ITERATION_FIELDS],
        )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        cursor = self._db.execute(
            f"SELECT {', '.join(_RUN_FIELDS)} FROM runs ORDER BY started_us DESC LIMIT ?",  # noqa: S608
            (limit,),
        )
        return [dict(zip(_RUN_FIELDS, row, strict=True)) for row in cursor.fetchall()]

    def iterations(self, run_id: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE run_id = ?", (run_id,)) if run_id else ("", ())
        cursor = self._db.execute(
            f"SELECT {', '.join(ITERATION_FIELDS)} FROM iterations {where} ORDER BY ts_us, iteration",  # noqa: S608
            params,
        )
        return [dict(zip(ITERATION_FIELDS, row, strict=True)) for row in cursor.fetchall()]

    def export_csv(self, path: Path, run_id: str | None = None) -> int:
        """Write the iteration log (joined with each run's mode and reason) as CSV; returns rows."""
        runs = {r["run_id"]: r for r in self.runs(limit=1_000_000)}
        rows = self.iterations(run_id)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*ITERATION_FIELDS, "mode", "reason", "version"])
            writer.writeheader()
            for row in rows:
                run = runs.get(row["run_id"], {})
                writer.writerow(
                    {
                        **row,
                        "mode": run.get("mode"),
                        "reason": run.get("reason"),
                        "version": run.get("version"),
                    }
                )
        return len(rows)

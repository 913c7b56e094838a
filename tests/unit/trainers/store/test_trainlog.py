"""The training log and its health checks."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from trainers.store.trainlog import TrainLog, iteration_checks


def test_checks_flag_exploding_vanishing_dead_and_non_finite() -> None:
    ok = {"policy_loss": 0.1, "vf_loss": 0.2, "total_loss": 0.3, "grad_norm": 0.5, "dead_units": 0.0}
    assert iteration_checks(ok) == []
    assert iteration_checks({**ok, "grad_norm": 1e6}) == ["exploding_gradients"]
    assert iteration_checks({**ok, "grad_norm": 0.0}) == ["vanishing_gradients"]
    assert iteration_checks({**ok, "dead_units": 0.9}) == ["dead_units"]
    assert iteration_checks({**ok, "vf_loss": math.nan}) == ["non_finite_loss"]


def test_runs_iterations_and_csv_export(tmp_path: Path) -> None:
    log = TrainLog.open(tmp_path)
    log.start_run("r1", "full", "new_experiences", 1000)
    log.log_iteration("r1", 1, {"policy_loss": 0.5, "grad_norm": 1.0, "return_mean": math.nan}, [])
    log.log_iteration("r1", 2, {"policy_loss": 0.4, "grad_norm": 2e6}, ["exploding_gradients"])
    log.finish_run("r1", "finished", version="v0001", gate_passed=True, published=True)
    assert log.runs()[0]["version"] == "v0001" and log.runs()[0]["status"] == "finished"
    iterations = log.iterations("r1")
    assert [i["iteration"] for i in iterations] == [1, 2] and iterations[0]["return_mean"] is None
    out = tmp_path / "log.csv"
    assert log.export_csv(out) == 2
    rows = list(csv.DictReader(out.open()))
    assert rows[1]["checks"] == '["exploding_gradients"]' and rows[0]["mode"] == "full"

"""Triggers, drift (PSI) and retry backoff."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainers.run.triggers import (
    Backoff,
    FeatureDrift,
    Interval,
    NewExperiences,
    UpliftDecay,
    default_triggers,
    psi,
)


@dataclass
class View:
    new: int = 0
    since: float | None = None
    uplift: tuple[float, float] | None = None
    max_psi: float | None = None

    def new_experiences(self) -> int:
        return self.new

    def seconds_since_last_run(self) -> float | None:
        return self.since

    def live_uplift(self, min_rows: int) -> tuple[float, float] | None:
        return self.uplift

    def drift(self, min_rows: int) -> float | None:
        return self.max_psi


def test_new_experiences() -> None:
    assert NewExperiences(100).check(View(new=99)) is None
    fired = NewExperiences(100).check(View(new=100))
    assert fired is not None and fired.trigger == "new_experiences" and not fired.full_retrain


def test_interval_needs_time_and_new_data() -> None:
    assert Interval(60).check(View(new=5, since=30)) is None
    assert Interval(60).check(View(new=0, since=600)) is None
    assert Interval(60).check(View(new=5, since=None)) is None
    assert Interval(60).check(View(new=5, since=61)) is not None


def test_uplift_decay() -> None:
    trigger = UpliftDecay(min_rows=10, tolerance=0.5)
    assert trigger.check(View(new=1, uplift=(0.6, 1.0))) is None
    assert trigger.check(View(new=1, uplift=(0.4, 1.0))) is not None
    assert trigger.check(View(new=1, uplift=None)) is None
    assert trigger.check(View(new=1, uplift=(-0.1, -0.2))) is not None  # no hold-out edge: live must be >= 0


def test_drift_fires_a_full_retrain() -> None:
    fired = FeatureDrift(10, 0.25).check(View(new=1, max_psi=0.4))
    assert fired is not None and fired.full_retrain
    assert FeatureDrift(10, 0.25).check(View(new=1, max_psi=0.1)) is None


def test_psi_is_small_for_same_distribution_and_large_for_shift() -> None:
    rng = np.random.default_rng(0)
    ref = np.column_stack([rng.normal(size=5000), rng.integers(0, 2, 5000)])
    same = np.column_stack([rng.normal(size=5000), rng.integers(0, 2, 5000)])
    shifted = np.column_stack([rng.normal(size=5000) + 1.0, np.ones(5000)])
    assert psi(ref, same).max() < 0.05
    values = psi(ref, shifted)
    assert values[0] > 0.25 and values[1] > 0.25


def test_default_triggers_are_the_four() -> None:
    names = [t.name for t in default_triggers(100, 3600, 200, 0.5, 200, 0.25)]
    assert names == ["new_experiences", "interval", "uplift_decay", "feature_drift"]


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=5, cap=30)
    delays = [backoff.failed(now=0) for _ in range(5)]
    assert delays == [5, 10, 20, 30, 30]
    assert not backoff.ready(10) and backoff.ready(30)
    backoff.succeeded()
    assert backoff.ready(0) and backoff.failed(0) == 5

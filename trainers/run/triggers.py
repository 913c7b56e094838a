"""When to retrain: pluggable triggers, feature drift (PSI) and retry backoff.

A trigger looks at a :class:`TrainerView` (what the trainer knows now) and returns a
:class:`Fired` reason or None. The loop runs a list of them; any one firing starts a run. The
built-in triggers:

* :class:`NewExperiences`: at least N trainable experiences arrived since the last run;
* :class:`Interval`: the interval elapsed and at least one new experience arrived (retraining on
  identical data would only repeat the last run);
* :class:`UpliftDecay`: the serving model's live uplift over fixed size (``(action - 1) x
  return_unit`` per signal it sized) fell below ``(1 - tolerance)`` times its hold-out uplift;
* :class:`FeatureDrift`: the largest per-feature PSI between recent states and the serving model's
  training window exceeds the threshold; a drift run trains from scratch.

Example:
    >>> ref = np.random.default_rng(0).normal(size=(2000, 2))
    >>> bool(psi(ref, ref + np.array([0.0, 2.0])).argmax() == 1)
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "Backoff",
    "FeatureDrift",
    "Fired",
    "Interval",
    "NewExperiences",
    "TrainerView",
    "Trigger",
    "UpliftDecay",
    "default_triggers",
    "psi",
]

_PSI_FLOOR = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> np.ndarray:
    """Population stability index per feature (column) of ``current`` against ``reference``.

    Bins are the reference's quantiles (merged where equal, so one-hot features get two bins).
    """
    out = np.zeros(reference.shape[1])
    for j in range(reference.shape[1]):
        edges = np.unique(np.quantile(reference[:, j], np.linspace(0, 1, bins + 1)[1:-1]))
        ref = np.bincount(np.searchsorted(edges, reference[:, j], side="right"), minlength=len(edges) + 1)
        cur = np.bincount(np.searchsorted(edges, current[:, j], side="right"), minlength=len(edges) + 1)
        p = np.maximum(ref / ref.sum(), _PSI_FLOOR)
        q = np.maximum(cur / cur.sum(), _PSI_FLOOR)
        out[j] = float(np.sum((q - p) * np.log(q / p)))
    return out


class TrainerView(Protocol):
    """What triggers may look at; the trainer loop implements it over its store and registry."""

    def new_experiences(self) -> int: ...

    def seconds_since_last_run(self) -> float | None: ...

    def live_uplift(self, min_rows: int) -> tuple[float, float] | None:
        """(live uplift per signal, hold-out uplift per signal) of the serving model, or None."""
        ...

    def drift(self, min_rows: int) -> float | None:
        """Largest per-feature PSI of recent states against the serving model's window, or None."""
        ...


@dataclass(frozen=True, slots=True)
class Fired:
    """A trigger's reason to retrain."""

    trigger: str
    detail: str
    full_retrain: bool = False


class Trigger(Protocol):
    """A reason to retrain: ``check`` returns :class:`Fired` when it holds, else None."""

    @property
    def name(self) -> str: ...

    def check(self, view: TrainerView) -> Fired | None: ...


@dataclass(frozen=True, slots=True)
class NewExperiences:
    """Fires when at least ``minimum`` new rows arrived since the last run."""

    minimum: int
    name: str = "new_experiences"

    def check(self, view: TrainerView) -> Fired | None:
        new = view.new_experiences()
        return Fired(self.name, f"{new} new experiences >= {self.minimum}") if new >= self.minimum else None


@dataclass(frozen=True, slots=True)
class Interval:
    """Fires when ``seconds`` passed since the last run and at least one new row arrived."""

    seconds: float
    name: str = "interval"

    def check(self, view: TrainerView) -> Fired | None:
        since = view.seconds_since_last_run()
        if since is None or since < self.seconds or view.new_experiences() == 0:
            return None
        return Fired(self.name, f"{since:.0f}s since the last run >= {self.seconds:.0f}s")


@dataclass(frozen=True, slots=True)
class UpliftDecay:
    """Fires when the live uplift fell below ``(1 - tolerance)`` times the hold-out uplift."""

    min_rows: int
    tolerance: float
    name: str = "uplift_decay"

    def check(self, view: TrainerView) -> Fired | None:
        uplift = view.live_uplift(self.min_rows)
        if uplift is None or view.new_experiences() == 0:
            return None
        live, holdout = uplift
        floor = (1.0 - self.tolerance) * holdout if holdout > 0 else 0.0
        if live >= floor:
            return None
        return Fired(self.name, f"live uplift {live:.3g} < {floor:.3g} (hold-out {holdout:.3g})")


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """Fires when the largest per-feature PSI against the serving model's window exceeds ``threshold``."""

    min_rows: int
    threshold: float
    name: str = "feature_drift"

    def check(self, view: TrainerView) -> Fired | None:
        worst = view.drift(self.min_rows)
        if worst is None or worst <= self.threshold or view.new_experiences() == 0:
            return None
        return Fired(self.name, f"max PSI {worst:.3f} > {self.threshold}", full_retrain=True)


def default_triggers(
    min_new: int,
    interval_s: float,
    uplift_rows: int,
    tolerance: float,
    drift_rows: int,
    drift_threshold: float,
) -> list[Trigger]:
    """The four built-in triggers, in the order the loop checks them."""
    return [
        NewExperiences(min_new),
        Interval(interval_s),
        UpliftDecay(uplift_rows, tolerance),
        FeatureDrift(drift_rows, drift_threshold),
    ]


class Backoff:
    """Exponential backoff after failed runs: base, 2 x base, 4 x base, ... capped."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._not_before = 0.0

    def ready(self, now: float) -> bool:
        return now >= self._not_before

    def failed(self, now: float) -> float:
        """Record a failure at ``now``; returns the delay before the next attempt."""
        delay = min(self.cap, self.base * 2.0**self.failures)
        self.failures += 1
        self._not_before = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self._not_before = 0.0

"""The canary: a newly promoted model answers a share of requests until live evidence judges it.

Routing is a hash of the signal id, so every worker sends the same signals to the candidate and a
retried request lands on the same model. For each request the candidate answers, the worker also
scores the incumbent (the model it replaces) and remembers both multipliers. P&L is linear in size,
so when the outcome arrives the candidate's realised uplift on that signal is exactly
``(m_candidate - m_incumbent) * return_unit``.

Verdict, with N = ``canary_decisions``:

* roll back (``fallback_rate``) as soon as the candidate's model errors exceed
  ``canary_max_fallback_rate x N`` (the rate over N decisions can no longer stay in bounds);
* after N outcomes: roll back (``uplift``) when the mean uplift is below ``canary_min_uplift``
  with confidence ``canary_uplift_z`` (mean + z x standard error < bound), else promote;
* after N decisions and ``canary_timeout_seconds`` without N outcomes: the same uplift test on the
  outcomes that did arrive, then promote (an engine that reports no outcomes cannot judge).

Example:
    >>> from streams.config.inference import InferenceSettings
    >>> c = Canary("cand", "inc", InferenceSettings(canary_decisions=2, canary_share=1.0), started=0.0)
    >>> routed_to_canary("a", 1.0), routed_to_canary("a", 0.0)
    (True, False)
    >>> c.record(["a", "b"], [2.0, 2.0], [1.0, 1.0], fallbacks=0)
    >>> c.outcome("a", -0.01), c.outcome("b", -0.02)
    (True, True)
    >>> c.verdict(1.0).reason
    'uplift'
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streams.config.inference import InferenceSettings

__all__ = ["Canary", "Evidence", "Judge", "JudgedOnEvidence", "Verdict", "mean_and_error", "routed_to_canary"]

_BUCKETS = 10_000


def routed_to_canary(signal_id: str, share: float) -> bool:
    """Whether ``signal_id`` goes to the candidate at ``share`` (stable across workers and retries)."""
    return zlib.crc32(signal_id.encode()) % _BUCKETS < share * _BUCKETS


def mean_and_error(n: int, total: float, sumsq: float) -> tuple[float, float]:
    """Mean of ``n`` values from their sum and sum of squares, and its standard error.

    The error is inf with fewer than 2 values: one observation can never prove a loss.

    Example:
        >>> mean_and_error(2, 3.0, 5.0)
        (1.5, 0.5)
    """
    if n == 0:
        return 0.0, math.inf
    mean = total / n
    if n < 2:
        return mean, math.inf
    variance = max(sumsq / n - mean * mean, 0.0) * n / (n - 1)
    return mean, math.sqrt(variance / n)


@dataclass(frozen=True, slots=True)
class Verdict:
    promote: bool
    reason: str
    detail: str


class Judge(Protocol):
    """A candidate model judged on live evidence before it serves.

    :class:`Canary` judges a sizer on a share of the requests; the inference workers judge an
    allocator on the realised returns of live periods (``agents.inference.allocator_canary``).
    """

    candidate: Any
    incumbent: Any

    def verdict(self, now: float | None = None) -> Verdict | None:
        """Promote, roll back, or None while the evidence is still coming in."""
        ...

    def state(self) -> str:
        """A one-line summary for heartbeats and logs."""
        ...


class Evidence:
    """What every canary collects and how it decides: decisions, fallbacks, realised uplifts.

    Both canaries, the sizer's (:class:`Canary`) and the allocator's
    (``agents.inference.allocator_canary``), judge a candidate the same way; only what counts as
    a decision and an outcome differs. Verdict, with N = ``n``:

    * roll back (``fallback_rate``) as soon as fallbacks exceed ``max_fallback_rate x N``;
    * after N outcomes: roll back (``uplift``) when mean + z x standard error of the uplift is
      below ``min_uplift``, else promote (``uplift_ok``);
    * after ``timeout`` seconds, once at least ``decisions_before_timeout`` decisions were made,
      without N outcomes: the same test on the outcomes so far, then promote (``timeout``).

    Thread-safe.

    Example:
        >>> e = Evidence(n=2, max_fallback_rate=0.1, min_uplift=0.0, z=1.0, timeout=60.0, started=0.0)
        >>> e.decided(2), e.realised(0.01), e.realised(0.03)
        (None, None, None)
        >>> e.verdict(1.0)
        Verdict(promote=True, reason='uplift_ok', detail='uplift +0.020000 +/- 0.010000 over 2 outcomes')
    """

    def __init__(
        self, n: int, max_fallback_rate: float, min_uplift: float, z: float, timeout: float,
        started: float | None = None, decisions_before_timeout: int = 0, unit: str = "outcomes",
    ) -> None:  # fmt: skip
        self.n = n
        self.max_fallback_rate = max_fallback_rate
        self.min_uplift = min_uplift
        self.z = z
        self.timeout = timeout
        self.started = time.monotonic() if started is None else started
        self.decisions_before_timeout = decisions_before_timeout
        self.unit = unit
        self.decisions = 0
        self.fallbacks = 0
        self.outcomes = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._lock = threading.Lock()

    def decided(self, decisions: int, fallbacks: int = 0) -> None:
        """The candidate made ``decisions`` more decisions, ``fallbacks`` of them without its model."""
        with self._lock:
            self.decisions += decisions
            self.fallbacks += fallbacks

    def realised(self, uplift: float) -> None:
        """One outcome: the candidate's realised uplift over the incumbent on one decision."""
        with self._lock:
            self.outcomes += 1
            self._sum += uplift
            self._sumsq += uplift * uplift

    def uplift(self) -> tuple[float, float]:
        """Mean realised uplift per outcome and its standard error (inf with fewer than 2 outcomes)."""
        with self._lock:
            return mean_and_error(self.outcomes, self._sum, self._sumsq)

    def _uplift_too_low(self) -> tuple[bool, str]:
        mean, se = self.uplift()
        detail = f"uplift {mean:+.6f} +/- {se:.6f} over {self.outcomes} {self.unit}"
        return mean + self.z * se < self.min_uplift, detail

    def verdict(self, now: float | None = None) -> Verdict | None:
        """Promote, roll back, or None while the evidence is still coming in."""
        now = time.monotonic() if now is None else now
        if self.fallbacks > self.max_fallback_rate * self.n:
            return Verdict(
                False, "fallback_rate", f"{self.fallbacks} fallbacks in {self.decisions} decisions"
            )
        if self.outcomes >= self.n:
            low, detail = self._uplift_too_low()
            return Verdict(not low, "uplift" if low else "uplift_ok", detail)
        if self.decisions >= self.decisions_before_timeout and now - self.started >= self.timeout:
            low, detail = self._uplift_too_low()
            return Verdict(not low, "uplift" if low else "timeout", detail)
        return None

    def state(self) -> str:
        """A one-line summary for heartbeats and logs."""
        mean, _ = self.uplift()
        counts = f"decisions={self.decisions} fallbacks={self.fallbacks} {self.unit}={self.outcomes}/{self.n}"
        return f"{counts} uplift={mean:+.6f}"


class JudgedOnEvidence:
    """What every canary reports and decides, read from its :class:`Evidence`."""

    evidence: Evidence

    @property
    def decisions(self) -> int:
        return self.evidence.decisions

    @property
    def fallbacks(self) -> int:
        return self.evidence.fallbacks

    @property
    def outcomes(self) -> int:
        return self.evidence.outcomes

    def uplift(self) -> tuple[float, float]:
        """Mean realised uplift per judged decision and its standard error (inf below 2 outcomes)."""
        return self.evidence.uplift()

    def verdict(self, now: float | None = None) -> Verdict | None:
        """Promote, roll back, or None while the evidence is still coming in."""
        return self.evidence.verdict(now)

    def state(self) -> str:
        """A one-line summary for heartbeats and logs."""
        return self.evidence.state()


class Canary(JudgedOnEvidence):
    """Live evidence about one candidate sizer against its incumbent. Thread-safe.

    ``candidate`` and ``incumbent`` are the loaded models (any objects; only kept and returned).
    """

    def __init__(
        self, candidate: Any, incumbent: Any, settings: InferenceSettings, started: float | None = None
    ) -> None:
        self.candidate = candidate
        self.incumbent = incumbent
        self.share = settings.canary_share
        self.max_pending = settings.pending_outcomes_max
        # A sizer is judged only once it answered N requests: an engine that reports no outcomes
        # cannot judge, but one that sent too few requests has not exposed the candidate yet.
        self.evidence = Evidence(
            settings.canary_decisions, settings.canary_max_fallback_rate, settings.canary_min_uplift,
            settings.canary_uplift_z, settings.canary_timeout_seconds, started,
            decisions_before_timeout=settings.canary_decisions,
        )  # fmt: skip
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def record(
        self,
        signal_ids: Sequence[str],
        candidate: Sequence[float],
        incumbent: Sequence[float],
        fallbacks: int,
    ) -> None:
        """The candidate answered ``signal_ids`` (finite answers) and failed ``fallbacks`` more."""
        self.evidence.decided(len(signal_ids) + fallbacks, fallbacks)
        with self._lock:
            for signal_id, mc, mi in zip(signal_ids, candidate, incumbent, strict=True):
                self._pending[signal_id] = float(mc) - float(mi)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)

    def outcome(self, signal_id: str, return_unit: float) -> bool:
        """Count the realised uplift of a signal the candidate sized; False if it was not one."""
        with self._lock:
            delta = self._pending.pop(signal_id, None)
        if delta is None or not math.isfinite(return_unit):
            return False
        self.evidence.realised(delta * return_unit)
        return True

"""The health monitor: judges the running loop every few seconds and runs recovery actions.

Each cycle takes one offset sample (kept for ``stall_checks`` cycles, so a consumer that silently
stops while its lag grows is caught across checks), reads the status topics, evaluates them with
:func:`tradeloop.ops.status.evaluate`, exports every check as ``tradeloop_health_*`` metrics and log
lines, and runs the action registered for each failing check, with exponential backoff.

Actions are plain callables the CLI registers (``streams`` imports neither ``trainers`` nor
``agents``): :data:`RESTORE_MODEL` (republish the last good model when the newest one is rejected
as corrupt), :data:`RETRY_TRAINING` (a failed or stalled training) and :data:`CLEAN_DISK` (old
model versions and replay segments when the disk runs low).

Example:
    >>> monitor = HealthMonitor(settings, {CLEAN_DISK: clean_old_versions})   # doctest: +SKIP
    >>> monitor.run(stop_event)                                               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final

from prometheus_client import Gauge

from streams.config.health import HealthSettings
from streams.errors import BrokerError
from streams.heartbeat import Heartbeater, component_id
from streams.settings import Settings
from tradeloop.ops import health_metrics as metrics
from tradeloop.ops.status import evaluate
from tradeloop.ops.status_collect import BusReader, health_settings
from tradeloop.ops.status_model import (
    CONSUMERS,
    DISK_SPACE,
    HEALTH_COMPONENT,
    MODEL_INTEGRITY,
    STALLED_INFO,
    TRAINING,
    Observation,
    OffsetSample,
    Problem,
    Status,
)

__all__ = [
    "CLEAN_DISK",
    "RESTORE_MODEL",
    "RETRY_TRAINING",
    "TRIGGERS",
    "Action",
    "Backoff",
    "HealthMonitor",
    "run_health_monitor",
]

log = logging.getLogger(__name__)

RESTORE_MODEL: Final = "restore_model"
RETRY_TRAINING: Final = "retry_training"
CLEAN_DISK: Final = "clean_disk"

# Which failing check calls which action; the action gets the problem (its subject names the model,
# the trainer or the directory).
TRIGGERS: Final = {MODEL_INTEGRITY: RESTORE_MODEL, TRAINING: RETRY_TRAINING, DISK_SPACE: CLEAN_DISK}

_REMIND_SECONDS: Final = 300.0  # a lasting problem is logged again this often, not every check

Action = Callable[[Problem], str]
"""A recovery action: does its work for one problem and returns a one-line summary for the log."""


@dataclass(slots=True)
class Backoff:
    """Exponential backoff of one action on one subject: base, 2 x base, 4 x base ... up to ``cap``.

    Example:
        >>> b = Backoff(base=10.0, cap=25.0)
        >>> b.ready(0.0), b.record(0.0), b.ready(5.0), b.ready(10.0)
        (True, 10.0, False, True)
        >>> b.record(10.0), b.record(30.0), b.record(55.0)
        (20.0, 25.0, 25.0)
    """

    base: float
    cap: float
    attempts: int = 0
    next_at: float = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, now: float) -> float:
        """Count an attempt at ``now``; returns the wait before the next one."""
        wait = min(self.cap, self.base * 2.0**self.attempts)
        self.attempts += 1
        self.next_at = now + wait
        return wait


class HealthMonitor:
    """Evaluates the loop each cycle, records it, and runs the registered recovery actions."""

    def __init__(
        self,
        settings: Settings,
        actions: Mapping[str, Action] | None = None,
        bus: BusReader | None = None,
        ident: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        limits: HealthSettings | None = None,
    ) -> None:
        self.settings = settings
        self.limits = limits or health_settings(settings)
        self.actions = dict(actions or {})
        self.ident = ident or component_id(HEALTH_COMPONENT)
        self.last: Status | None = None
        self._bus = bus
        self._clock = clock
        self._history: deque[OffsetSample] = deque(maxlen=self.limits.stall_checks)
        self._backoffs: dict[tuple[str, str], Backoff] = {}
        self._failing: set[str] = set()
        self._warned: dict[tuple[str, str], float] = {}  # (check, subject) -> when it was last logged
        self._topic_totals: dict[str, int] = {}

    @property
    def bus(self) -> BusReader:
        if self._bus is None:
            self._bus = BusReader(self.settings, limits=self.limits)
        return self._bus

    def check_once(self) -> Status:
        """One cycle: sample, read, evaluate, record, act. Returns what it concluded.

        Raises:
            BrokerError: the broker cannot be reached (the caller decides whether to go on).
        """
        started = time.perf_counter()
        self._history.append(self.bus.sample())
        status = self.handle(self.bus.observation(list(self._history), self.bus.read_state()))
        metrics.CHECK_DURATION.observe(time.perf_counter() - started)
        return status

    def handle(self, observation: Observation) -> Status:
        """Evaluate ``observation``, export the result as metrics and log lines, run the actions."""
        status = self.evaluate(observation)
        self._record(status)
        self._act(status)
        metrics.LAST_CHECK.set(time.time())
        self.last = status
        return status

    def evaluate(self, observation: Observation) -> Status:
        """Evaluate, leaving out this monitor's own heartbeats (its old verdicts are not evidence)."""
        beats = tuple(b for b in observation.beats if b.component_id != self.ident)
        return evaluate(replace(observation, beats=beats), self.limits)

    def _record(self, status: Status) -> None:
        metrics.HEALTHY.set(1 if status.healthy else 0)
        for check in status.checks:
            metrics.CHECK_OK.labels(check=check.name).set(1 if check.ok else 0)
            metrics.CHECK_PROBLEMS.labels(check=check.name).set(len(check.problems))
            metrics.CHECKS.labels(check=check.name, result="ok" if check.ok else "failing").inc()
            if not check.ok:
                for problem in check.problems:
                    self._log_problem(check.name, problem)
                self._failing.add(check.name)
            elif check.name in self._failing:
                self._failing.discard(check.name)
                log.info("health check %s ok again", check.name)
            else:
                log.debug("health check %s ok%s", check.name, f" ({check.note})" if check.note else "")
        counts: dict[tuple[str, str], int] = {}
        for c in status.components:
            counts[(c.component, c.state)] = counts.get((c.component, c.state), 0) + 1
        metrics.COMPONENTS.clear()
        for (component, state), n in counts.items():
            metrics.COMPONENTS.labels(component=component, state=state).set(n)
        for group in status.groups:
            for topic, lag in group.lag.items():
                metrics.CONSUMER_LAG.labels(group=group.group, topic=topic).set(lag)
        for topic, total in status.totals.items():
            grown = total - self._topic_totals.get(topic, 0)
            if grown > 0:  # a topic recreated from zero is not a negative count
                metrics.TOPIC_RECORDS.labels(topic=topic).inc(grown)
            self._topic_totals[topic] = total
        _set_optional(metrics.DATA_AGE, status.data_age_seconds)
        _set_optional(metrics.DISK_FREE, status.disk_free_ratio)
        _set_optional(metrics.TRAINING_AGE, status.training.seconds_since if status.training else None)

    def _log_problem(self, check: str, problem: Problem) -> None:
        """A warning when a problem appears, then a reminder every few minutes while it lasts."""
        key = (check, problem.subject)
        now = self._clock()
        if now >= self._warned.get(key, float("-inf")) + _REMIND_SECONDS:
            log.warning("health check %s failing: %s", check, problem.message)
            self._warned[key] = now
        else:
            log.debug("health check %s still failing: %s", check, problem.message)

    def _act(self, status: Status) -> None:
        now = self._clock()
        active: set[tuple[str, str]] = set()
        for check in status.checks:
            action_name = TRIGGERS.get(check.name)
            if action_name is None:
                continue
            for problem in check.problems:
                key = (action_name, problem.subject)
                active.add(key)
                self._run(action_name, problem, key, now)
        for key in set(self._backoffs) - active:  # the problem went away: the next one starts afresh
            del self._backoffs[key]
        failing = {(c.name, p.subject) for c in status.checks for p in c.problems}
        for key in set(self._warned) - failing:
            del self._warned[key]

    def _run(self, name: str, problem: Problem, key: tuple[str, str], now: float) -> None:
        backoff = self._backoffs.setdefault(
            key, Backoff(self.limits.action_backoff_seconds, self.limits.action_backoff_max_seconds)
        )
        if not backoff.ready(now):
            return
        wait = backoff.record(now)
        action = self.actions.get(name)
        if action is None:
            metrics.ACTIONS.labels(action=name, result="unregistered").inc()
            log.warning("health action %s not registered; %s needs it", name, problem.subject)
            return
        try:
            summary = action(problem)
        except Exception:
            # A recovery action is pluggable code at the edge of the monitor: its failure is counted,
            # logged with its traceback and retried after the backoff; it must not stop the monitor.
            metrics.ACTIONS.labels(action=name, result="error").inc()
            log.exception("health action %s for %s failed; next try in %.0fs", name, problem.subject, wait)
            return
        metrics.ACTIONS.labels(action=name, result="ok").inc()
        log.warning(
            "health action %s for %s: %s (next try in %.0fs at the earliest)",
            name,
            problem.subject,
            summary,
            wait,
        )

    def stalled_groups(self) -> list[str]:
        """Consumer groups the last cycle found stalled (published in the monitor's heartbeat)."""
        if self.last is None:
            return []
        return [p.subject for p in self.last.check(CONSUMERS).problems]

    def run(self, stop: threading.Event) -> None:
        """Check every ``check_interval_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.check_once()
            except BrokerError as exc:
                metrics.HEALTHY.set(0)
                metrics.CHECKS.labels(check="broker", result="failing").inc()
                log.warning("health check broker failing: %s", exc)
            stop.wait(self.limits.check_interval_seconds)

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()


def _set_optional(gauge: Gauge, value: float | None) -> None:
    gauge.set(float("nan") if value is None else value)


def run_health_monitor(
    settings: Settings,
    actions: Mapping[str, Action] | None,
    stop_event: threading.Event,
    heartbeat: bool = True,
    limits: HealthSettings | None = None,
) -> HealthMonitor:
    """Run the monitor in this thread until ``stop_event`` is set (``tradeloop health`` and ``up``).

    The caller serves the metrics; with ``heartbeat`` the monitor also publishes its verdict on the
    heartbeats topic, where ``tradeloop status`` picks up the stalls it saw over several checks.
    """
    monitor = HealthMonitor(settings, actions, limits=limits)
    beater = None
    if heartbeat:

        def gauges() -> dict[str, float]:
            status = monitor.last
            failing = 0 if status is None else sum(not c.ok for c in status.checks)
            return {"healthy": float(status is not None and status.healthy), "failing_checks": float(failing)}

        def info() -> dict[str, str]:
            status = monitor.last
            reasons = "" if status is None else "; ".join(status.reasons)
            return {STALLED_INFO: ",".join(monitor.stalled_groups()), "reasons": reasons[:2000]}

        # Beat at least as often as the monitor checks, so status sees a verdict while it is fresh.
        interval = min(2.0, monitor.limits.check_interval_seconds)
        beater = Heartbeater(
            settings, HEALTH_COMPONENT, ident=monitor.ident, gauges=gauges, info=info, interval=interval
        ).start()
    log.info("health monitor %s checking every %.0fs", monitor.ident, monitor.limits.check_interval_seconds)
    try:
        monitor.run(stop_event)
    finally:
        if beater is not None:
            beater.stop()
        monitor.close()
    return monitor

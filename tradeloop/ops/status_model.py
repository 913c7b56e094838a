"""The vocabulary of ``tradeloop status``: what is observed on the bus and what is concluded.

Plain frozen dataclasses and the heartbeat conventions tradeloop's components follow; the rules
that turn an :class:`Observation` into a :class:`Status` live in :mod:`tradeloop.ops.status`.

Example:
    >>> Check("disk_space", (Problem("data_dir", "disk 2% free"),)).ok
    False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from streams.topics import OUTCOMES, SIGNALS, TRADES

__all__ = [
    "CHECKS",
    "COMPONENTS",
    "CONSUMERS",
    "DATA_FRESHNESS",
    "DEGRADED",
    "DISK_SPACE",
    "DOWN",
    "HEALTH_COMPONENT",
    "INPUT_TOPICS",
    "MODEL_AGE_GAUGE",
    "MODEL_FRESHNESS",
    "MODEL_INTEGRITY",
    "MODEL_NAMES",
    "REJECTED_SUFFIX",
    "REPLAY_ROWS",
    "ROLE_SUFFIXES",
    "STALLED_INFO",
    "STOPPED",
    "TRAINING",
    "TRAINING_ERROR",
    "TRAINING_FAILURES",
    "TRAINING_RESULT",
    "TRAINING_TS",
    "UP",
    "Beat",
    "Check",
    "ComponentState",
    "ConsumerGroup",
    "DeadLetterCounts",
    "GroupOffsets",
    "GroupState",
    "Observation",
    "OffsetSample",
    "Problem",
    "PublishedModel",
    "Serving",
    "Status",
    "TrainingState",
    "broker_document",
    "format_age",
]

# Check names: labels of tradeloop_health_* metrics and keys of `tradeloop status --json`.
COMPONENTS: Final = "components"
CONSUMERS: Final = "consumers"
DATA_FRESHNESS: Final = "data_freshness"
MODEL_FRESHNESS: Final = "model_freshness"
MODEL_INTEGRITY: Final = "model_integrity"
TRAINING: Final = "training"
DISK_SPACE: Final = "disk_space"
CHECKS: Final = (
    COMPONENTS,
    CONSUMERS,
    DATA_FRESHNESS,
    MODEL_FRESHNESS,
    MODEL_INTEGRITY,
    TRAINING,
    DISK_SPACE,
)

INPUT_TOPICS: Final = (TRADES, SIGNALS, OUTCOMES)

# Heartbeat conventions (schemas/Heartbeat.avsc gauges and info maps).
HEALTH_COMPONENT: Final = "health"  # the health monitor's own heartbeat
STALLED_INFO: Final = "stalled_groups"  # monitor info: comma-separated stalled consumer groups
REPLAY_ROWS: Final = "replay_rows"  # trainer gauge
TRAINING_RESULT: Final = "last_training_result"  # trainer info: ok, rejected (gate said no) or failed
TRAINING_TS: Final = "last_training_ts"  # trainer gauge: unix seconds the last run ended
TRAINING_FAILURES: Final = "consecutive_failures"  # trainer gauge: failed runs in a row
TRAINING_ERROR: Final = "last_training_error"  # trainer info
MODEL_AGE_GAUGE: Final = "{model}_age_seconds"  # inference gauge; negative while nothing serves
REJECTED_SUFFIX: Final = ".rejected"  # inference info "<model>.rejected" = "<version>:<reason>"
ROLE_SUFFIXES: Final = {".canary": "canary", ".shadow": "shadow"}
MODEL_NAMES: Final = ("sizer", "allocator")

UP: Final = "UP"
DEGRADED: Final = "DEGRADED"
STOPPED: Final = "STOPPED"
DOWN: Final = "DOWN"


def format_age(seconds: float | None) -> str:
    """``42s``, ``12m``, ``3.5h``, ``2.1d``; ``-`` when unknown.

    >>> format_age(42.4), format_age(720), format_age(12_600), format_age(181_440), format_age(None)
    ('42s', '12m', '3.5h', '2.1d', '-')
    """
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


# --- what is observed -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Beat:
    """The newest heartbeat of one process (times in unix seconds)."""

    component: str
    component_id: str
    host: str
    pid: int
    status: str
    ts: float
    interval: float
    gauges: Mapping[str, float]
    info: Mapping[str, str]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Beat:
        """From a decoded Heartbeat record (``ts`` in microseconds)."""
        return cls(
            component=str(record["component"]),
            component_id=str(record["component_id"]),
            host=str(record["host"]),
            pid=int(record["pid"]),
            status=str(record["status"]),
            ts=int(record["ts"]) / 1e6,
            interval=float(record["interval_seconds"]),
            gauges=dict(record["gauges"]),
            info=dict(record["info"]),
        )


@dataclass(frozen=True, slots=True)
class ConsumerGroup:
    """A consumer group tradeloop runs, the component behind it and the topics it reads."""

    name: str
    component: str
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupOffsets:
    """Lag and committed offsets of one group, per logical topic, at one instant.

    ``committed`` holds the sum of committed offsets over the partitions the group ever committed;
    topics it never committed are absent from it (their lag counts from offset 0).
    """

    lag: Mapping[str, int]
    committed: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class OffsetSample:
    """End offsets per topic and offsets per group, taken at unix time ``at``."""

    at: float
    totals: Mapping[str, int]
    groups: Mapping[str, GroupOffsets] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeadLetterCounts:
    """Dead letters: all ever written (offsets) and, of the newest ``window``, counts by reason."""

    total: int = 0
    window: int = 0
    by_reason: Mapping[str, int] = field(default_factory=dict)
    by_stage: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublishedModel:
    """One ModelUpdate record: which version of which model, created and published when (unix s)."""

    model: str
    version: str
    created: float | None
    published: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything the evaluation looks at. Samples and models are oldest first."""

    now: float
    beats: tuple[Beat, ...] = ()
    groups: tuple[ConsumerGroup, ...] = ()
    samples: tuple[OffsetSample, ...] = ()
    dead_letters: DeadLetterCounts = DeadLetterCounts()
    models: tuple[PublishedModel, ...] = ()
    newest_input: float | None = None  # unix time of the newest record on an input topic
    disk_free_ratio: float | None = None
    unreadable: Mapping[str, int] = field(default_factory=dict)  # records per topic that did not decode
    warnings: tuple[str, ...] = ()  # about the configuration, not the bus (e.g. the dev signing key)


# --- what is concluded ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason for being unhealthy; ``subject`` names what it is about (a process, group, model)."""

    subject: str
    message: str
    facts: Mapping[str, str] = field(default_factory=dict)  # what an action needs (e.g. the version)


@dataclass(frozen=True, slots=True)
class Check:
    """The verdict of one concern. ``evaluated`` is False when there was nothing to judge by."""

    name: str
    problems: tuple[Problem, ...] = ()
    evaluated: bool = True
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class ComponentState:
    component: str
    component_id: str
    host: str
    pid: int
    state: str  # UP, DEGRADED, STOPPED or DOWN
    seconds_since: float
    gauges: Mapping[str, float]
    info: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class GroupState:
    group: str
    component: str
    lag: Mapping[str, int]
    total_lag: int
    lag_growth: int | None  # over the sampled span; None with one sample
    commits_moved: bool | None  # None with one sample or when the group never committed
    stalled: bool
    ever_committed: bool = True


@dataclass(frozen=True, slots=True)
class Serving:
    worker: str
    model: str
    role: str  # serving, canary or shadow
    version: str
    age_seconds: float | None


@dataclass(frozen=True, slots=True)
class TrainingState:
    component_id: str
    result: str | None
    seconds_since: float | None
    failures: int
    error: str | None


@dataclass(frozen=True)
class Status:
    """The evaluated state of the whole loop."""

    taken_at: float
    window_seconds: float
    components: tuple[ComponentState, ...]
    groups: tuple[GroupState, ...]
    totals: Mapping[str, int]
    rates: Mapping[str, float]
    dead_letters: DeadLetterCounts
    serving: tuple[Serving, ...]
    replay_rows: float | None
    training: TrainingState | None
    data_age_seconds: float | None
    disk_free_ratio: float | None
    checks: tuple[Check, ...]
    unreadable: Mapping[str, int] = field(default_factory=dict)  # status records that did not decode
    warnings: tuple[str, ...] = ()  # worth acting on, but not unhealthy: they do not change the exit code

    @property
    def healthy(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [problem.message for check in self.checks for problem in check.problems]

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``tradeloop status --json``)."""
        out = asdict(self)
        out["healthy"] = self.healthy
        out["reasons"] = self.reasons
        out["checks"] = {
            c.name: {
                "ok": c.ok,
                "evaluated": c.evaluated,
                "note": c.note,
                "problems": [asdict(p) for p in c.problems],
            }
            for c in self.checks
        }
        return _finite(out)


def broker_document(bootstrap: str, error: str | None = None) -> dict[str, Any]:
    """The ``broker`` entry of ``tradeloop status --json``: where it looked, and whether it answered."""
    return {"bootstrap": bootstrap, "reachable": error is None, "error": error}


def _finite(value: Any) -> Any:
    """NaN and infinities become None: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

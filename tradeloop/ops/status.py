"""The health of a running tradeloop, evaluated from what the bus shows: pure logic, no I/O.

:mod:`tradeloop.ops.status_collect` reads an :class:`Observation` from Kafka (heartbeats, offsets,
dead letters, published models); :func:`evaluate` turns it into a :class:`Status` with one
:class:`Check` per concern and an overall ``healthy`` flag. ``tradeloop status`` prints it and the
health monitor (:mod:`tradeloop.ops.health`) acts on it, so both judge by the same rules.

Example:
    >>> obs = Observation(now=100.0, beats=(Beat("worker", "w-1", "h", 1, "UP", 99.0, 2.0, {}, {}),))
    >>> status = evaluate(obs, HealthSettings())
    >>> [c.state for c in status.components], status.check(COMPONENTS).ok
    (['UP'], True)
    >>> evaluate(Observation(now=107.0, beats=obs.beats), HealthSettings()).reasons[0]
    'w-1 (worker) is down: last heartbeat 8s ago, 4 missed'
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from streams.config.health import HealthSettings
from tradeloop.ops.status_model import (
    COMPONENTS,
    CONSUMERS,
    DATA_FRESHNESS,
    DEGRADED,
    DISK_SPACE,
    DOWN,
    HEALTH_COMPONENT,
    INPUT_TOPICS,
    MODEL_AGE_GAUGE,
    MODEL_FRESHNESS,
    MODEL_INTEGRITY,
    MODEL_NAMES,
    REJECTED_SUFFIX,
    REPLAY_ROWS,
    ROLE_SUFFIXES,
    STALLED_INFO,
    STOPPED,
    TRAINING,
    TRAINING_ERROR,
    TRAINING_FAILURES,
    TRAINING_RESULT,
    TRAINING_TS,
    UP,
    Beat,
    Check,
    ComponentState,
    GroupState,
    Observation,
    OffsetSample,
    Problem,
    Serving,
    Status,
    TrainingState,
    broker_document,
    format_age,
)

__all__ = ["evaluate", "unreachable_document"]


# --- the rules --------------------------------------------------------------------------------


def _degraded_reason(beat: Beat) -> str:
    """Why a process says it is DEGRADED: its own ``reason``, else what its info implies."""
    if beat.info.get("reason"):
        return beat.info["reason"]
    if beat.info.get("kill_switch") == "true":
        return "kill switch on: answering with the fallback rule"
    if beat.component == "inference" and not any(beat.info.get(m) for m in MODEL_NAMES):
        return "no model loaded: answering with the fallback rule"
    return "no reason given"


def _components(obs: Observation, limits: HealthSettings) -> tuple[list[ComponentState], Check]:
    states, problems = [], []
    for beat in sorted(obs.beats, key=lambda b: (b.component, b.component_id)):
        age = max(0.0, obs.now - beat.ts)
        if age > limits.forget_after_seconds and beat.status != UP and beat.status != DEGRADED:
            continue  # long gone and said goodbye
        missed = int(age // beat.interval) if beat.interval > 0 else 0
        if beat.status == "STOPPING":
            state = STOPPED
        elif missed >= limits.missed_heartbeats:
            if age > limits.forget_after_seconds:
                continue  # replaced long ago (a restart gets a new id); no longer part of the picture
            state = DOWN
            message = f"last heartbeat {format_age(age)} ago, {missed} missed"
            problems.append(
                Problem(beat.component_id, f"{beat.component_id} ({beat.component}) is down: {message}")
            )
        else:
            state = beat.status
            if state == DEGRADED:
                why = _degraded_reason(beat)
                problems.append(Problem(beat.component_id, f"{beat.component_id} reports DEGRADED: {why}"))
        states.append(
            ComponentState(
                beat.component, beat.component_id, beat.host, beat.pid, state, age, beat.gauges, beat.info
            )
        )
    if not any(s.state in (UP, DEGRADED) for s in states):
        problems.append(Problem("tradeloop", "no tradeloop process is running (no recent heartbeat)"))
    return states, Check(COMPONENTS, tuple(problems))


def _span(samples: Sequence[OffsetSample]) -> float:
    return samples[-1].at - samples[0].at if len(samples) > 1 else 0.0


def _stalled(group: str, samples: Sequence[OffsetSample], limits: HealthSettings) -> bool | None:
    """Lag grew while committed offsets stood still over the samples; None when too few to judge."""
    series = [s.groups[group] for s in samples if group in s.groups]
    if len(series) < limits.stall_checks or _span(samples) < limits.stall_min_seconds:
        return None
    topics = [t for t in series[-1].committed if all(t in g.committed for g in series)]
    if not topics:
        return False  # never committed: a consumer that has not started, not one that stopped
    lags = [sum(g.lag.get(t, 0) for t in topics) for g in series]
    frozen = all(g.committed[t] == series[0].committed[t] for g in series for t in topics)
    growing = lags[-1] > lags[0] and all(b >= a for a, b in itertools.pairwise(lags))
    return frozen and growing


def _consumers(obs: Observation, limits: HealthSettings) -> tuple[list[GroupState], Check]:
    states, problems = [], []
    samples = obs.samples
    judged = False
    for group in obs.groups:
        series = [s.groups[group.name] for s in samples if group.name in s.groups]
        if not series:
            continue
        last = series[-1]
        total = sum(last.lag.values())
        growth = total - sum(series[0].lag.values()) if len(series) > 1 else None
        ever = any(g.committed for g in series)
        moved = (
            None if len(series) < 2 or not ever else any(g.committed != series[0].committed for g in series)
        )
        stalled = _stalled(group.name, samples, limits)
        judged = judged or stalled is not None
        if stalled:
            detail = (
                f"lag grew by {growth or 0:,} to {total:,} while its committed offsets "
                f"did not move for {format_age(_span(samples))}"
            )
            problems.append(
                Problem(group.name, f"consumer group {group.name} ({group.component}) stalled: {detail}")
            )
        states.append(
            GroupState(group.name, group.component, dict(last.lag), total, growth, moved, bool(stalled), ever)
        )
    # The monitor watches over longer spans than one `tradeloop status` run; trust its fresh verdict.
    for beat in obs.beats:
        fresh = obs.now - beat.ts <= limits.missed_heartbeats * beat.interval
        if beat.component != HEALTH_COMPONENT or not fresh:
            continue
        judged = True
        for name in filter(None, beat.info.get(STALLED_INFO, "").split(",")):
            if not any(p.subject == name for p in problems):
                detail = f"(health monitor {beat.component_id}): lag grows, commits do not move"
                problems.append(Problem(name, f"consumer group {name} stalled {detail}"))
    note = (
        "" if judged else f"stalls need {limits.stall_min_seconds:g}s of samples or a running health monitor"
    )
    return states, Check(CONSUMERS, tuple(problems), evaluated=bool(obs.groups and samples), note=note)


def _rates(samples: Sequence[OffsetSample]) -> dict[str, float]:
    """Records per second per topic over the sampled span; empty with a single sample."""
    span = _span(samples)
    if span <= 0:
        return {}
    first, last = samples[0].totals, samples[-1].totals
    return {topic: max(0, count - first.get(topic, 0)) / span for topic, count in last.items()}


def _data(obs: Observation, limits: HealthSettings) -> tuple[float | None, Check]:
    """Fresh when input records arrived while sampling, or the newest one is recent enough."""
    if not obs.samples:
        return None, Check(DATA_FRESHNESS, evaluated=False, note="no offsets read")
    first, last = obs.samples[0].totals, obs.samples[-1].totals
    ever = sum(last.get(t, 0) for t in INPUT_TOPICS)
    arrived = any(last.get(t, 0) > first.get(t, 0) for t in INPUT_TOPICS)
    age = None if obs.newest_input is None else max(0.0, obs.now - obs.newest_input)
    if arrived:
        # Engines may stamp records with event time (a backfill is old but arriving now).
        age = min(age, _span(obs.samples)) if age is not None else _span(obs.samples)
    limit = limits.data_max_age_seconds
    if ever == 0:
        problem = Problem("input", f"no input events yet on {', '.join(INPUT_TOPICS)}")
    elif not arrived and (age is None or age > limit):
        problem = Problem("input", f"no input events for {format_age(age)} (limit {format_age(limit)})")
    else:
        return age, Check(DATA_FRESHNESS)
    return age, Check(DATA_FRESHNESS, (problem,))


def _serving(obs: Observation, live: set[str]) -> list[Serving]:
    """Model versions each live inference worker reports in its heartbeat info, with their age."""
    created = {(m.model, m.version): m.created for m in obs.models}
    names = set(MODEL_NAMES) | {m.model for m in obs.models}
    out = []
    for beat in obs.beats:
        if beat.component != "inference" or beat.component_id not in live:
            continue
        for key, version in sorted(beat.info.items()):
            model, role = key, "serving"
            for suffix, name in ROLE_SUFFIXES.items():
                if key.endswith(suffix):
                    model, role = key.removesuffix(suffix), name
            if model not in names or not version:
                continue
            made = created.get((model, version))
            # The worker's age gauge is about the serving role only.
            gauge = beat.gauges.get(MODEL_AGE_GAUGE.format(model=model)) if role == "serving" else None
            age = obs.now - made if made is not None else gauge
            if age is not None and not age >= 0:  # negative or NaN: the worker does not know
                age = None
            out.append(Serving(beat.component_id, model, role, version, age))
    return out


def _model_freshness(serving: list[Serving], limits: HealthSettings) -> Check:
    problems = [
        Problem(
            s.model,
            f"{s.worker} serves {s.model} {s.version}, {format_age(s.age_seconds)} old "
            f"(limit {format_age(limits.model_max_age_seconds)})",
        )
        for s in serving
        if s.role == "serving" and s.age_seconds is not None and s.age_seconds > limits.model_max_age_seconds
    ]
    return Check(
        MODEL_FRESHNESS, tuple(problems), evaluated=bool(serving), note="" if serving else "no model served"
    )


def _model_integrity(obs: Observation, live: set[str]) -> Check:
    """Unhealthy when workers reject the newest published version of a model (it cannot serve)."""
    newest = {m.model: m for m in obs.models}  # oldest first: the last one per model wins
    problems: list[Problem] = []
    for beat in obs.beats:
        if beat.component != "inference" or beat.component_id not in live:
            continue
        for model, published in newest.items():
            version, _, reason = beat.info.get(model + REJECTED_SUFFIX, "").partition(":")
            if version == published.version and not any(p.subject == model for p in problems):
                detail = f"rejected by {beat.component_id}: {reason or 'no reason given'}"
                facts = {"version": version, "reason": reason, "worker": beat.component_id}
                problems.append(Problem(model, f"newest {model} {version} {detail}", facts))
    return Check(
        MODEL_INTEGRITY, tuple(problems), evaluated=bool(newest), note="" if newest else "no model published"
    )


def _training_facts(beat: Beat) -> tuple[int, str | None, str | None]:
    """Failures in a row, last result and error from a trainer heartbeat.

    Also reads the trainer loop's own keys (gauge ``failures``, info ``last_training`` such as
    ``failed: RayTaskError`` or ``v0007 published``) where the conventional ones are absent.
    """
    failures = beat.gauges.get(TRAINING_FAILURES, beat.gauges.get("failures", 0.0))
    result, error = beat.info.get(TRAINING_RESULT), beat.info.get(TRAINING_ERROR)
    text = beat.info.get("last_training")
    if result is None and text:
        failed = text.startswith("failed")
        result = "failed" if failed else text
        error = error or (text.partition(":")[2].strip() or None if failed else None)
    return int(failures if math.isfinite(failures) else 0), result, error


def _training(obs: Observation, live: set[str], limits: HealthSettings) -> tuple[TrainingState | None, Check]:
    trainers = [b for b in obs.beats if b.component == "trainer" and b.component_id in live]
    if not trainers:
        return None, Check(TRAINING, evaluated=False, note="no trainer running")
    beat = max(trainers, key=lambda b: b.ts)
    ended = beat.gauges.get(TRAINING_TS)
    age = None if ended is None or not math.isfinite(ended) or ended <= 0 else max(0.0, obs.now - ended)
    failures, result, error = _training_facts(beat)
    state = TrainingState(beat.component_id, result, age, failures, error)
    problems = []
    if failures >= limits.training_max_failures:
        detail = error or "see the trainer log"
        message = f"training failed {failures} runs in a row: {detail}"
        problems.append(Problem(beat.component_id, message, {"failures": str(failures)}))
    if age is not None and age > limits.training_max_age_seconds:
        limit = format_age(limits.training_max_age_seconds)
        problems.append(Problem(beat.component_id, f"no training run for {format_age(age)} (limit {limit})"))
    note = "" if state.result is not None else "no training run yet"
    return state, Check(TRAINING, tuple(problems), note=note)


def _disk(obs: Observation, limits: HealthSettings) -> Check:
    ratio = obs.disk_free_ratio
    if ratio is None:
        return Check(DISK_SPACE, evaluated=False, note="data directory not on this host")
    if ratio < limits.disk_min_free_ratio:
        message = f"disk {ratio:.1%} free (limit {limits.disk_min_free_ratio:.0%})"
        return Check(DISK_SPACE, (Problem("data_dir", message),))
    return Check(DISK_SPACE)


def evaluate(obs: Observation, limits: HealthSettings) -> Status:
    """Judge ``obs`` by ``limits``: every check, and the numbers ``tradeloop status`` shows."""
    components, components_check = _components(obs, limits)
    live = {c.component_id for c in components if c.state in (UP, DEGRADED)}
    groups, consumers_check = _consumers(obs, limits)
    data_age, data_check = _data(obs, limits)
    serving = _serving(obs, live)
    training, training_check = _training(obs, live, limits)
    replay = [b.gauges[REPLAY_ROWS] for b in obs.beats if b.component_id in live and REPLAY_ROWS in b.gauges]
    return Status(
        taken_at=obs.now,
        window_seconds=_span(obs.samples),
        components=tuple(components),
        groups=tuple(groups),
        totals=dict(obs.samples[-1].totals) if obs.samples else {},
        rates=_rates(obs.samples),
        dead_letters=obs.dead_letters,
        serving=tuple(serving),
        replay_rows=max(replay) if replay else None,
        training=training,
        data_age_seconds=data_age,
        disk_free_ratio=obs.disk_free_ratio,
        unreadable=dict(obs.unreadable),
        warnings=obs.warnings,
        checks=(
            components_check,
            consumers_check,
            data_check,
            _model_freshness(serving, limits),
            _model_integrity(obs, live),
            training_check,
            _disk(obs, limits),
        ),
    )


def unreachable_document(
    bootstrap: str, error: str, now: float, warnings: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``tradeloop status --json`` document when the broker cannot be reached.

    It keeps the keys a script checks first (``healthy``, ``reasons``, ``warnings``, ``broker``) and
    leaves out what could not be observed, rather than reporting empty topics or no processes.

    >>> doc = unreachable_document("127.0.0.1:1", "connection refused", now=0.0)
    >>> doc["healthy"], doc["broker"]["reachable"], doc["reasons"]
    (False, False, ['broker unreachable at 127.0.0.1:1: connection refused'])
    """
    return {
        "taken_at": now,
        "healthy": False,
        "reasons": [f"broker unreachable at {bootstrap}: {error}"],
        "warnings": list(warnings),
        "broker": broker_document(bootstrap, error),
    }

"""The health monitor's bookkeeping: metrics, log lines, actions and their backoff (no broker)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from streams.config.health import HealthSettings
from streams.settings import Settings
from tradeloop.ops.health import CLEAN_DISK, RESTORE_MODEL, RETRY_TRAINING, HealthMonitor
from tradeloop.ops.status_model import (
    Beat,
    ConsumerGroup,
    GroupOffsets,
    Observation,
    OffsetSample,
    Problem,
    PublishedModel,
)

NOW = 1_800_000_000.0
LIMITS = HealthSettings(action_backoff_seconds=10.0, action_backoff_max_seconds=25.0)
GROUP = ConsumerGroup("tradeloop-trainer", "trainer", ("experiences",))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sample(trades: int = 100) -> tuple[OffsetSample, ...]:
    return (
        OffsetSample(NOW - 10, {"trades": trades - 10, "dead-letter": 3}),
        OffsetSample(
            NOW, {"trades": trades, "dead-letter": 3}, {GROUP.name: GroupOffsets({"experiences": 7}, {})}
        ),
    )


def observation(
    disk: float = 0.5, beats: tuple[Beat, ...] = (), trades: int = 100, **fields: object
) -> Observation:
    worker = Beat("worker", "worker-1", "h", 1, "UP", NOW - 1, 2.0, {}, {})
    return Observation(
        now=NOW,
        beats=(worker, *beats),
        groups=(GROUP,),
        samples=sample(trades),
        disk_free_ratio=disk,
        **fields,  # type: ignore[arg-type]
    )


def metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.fixture()
def settings(tmp_path: object) -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:1", metrics_enabled=False)


def test_check_results_are_metrics_and_log_lines(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = HealthMonitor(settings, {}, ident="health-test", limits=LIMITS)
    before = metric("tradeloop_health_checks_total", check="disk_space", result="failing") or 0.0
    with caplog.at_level(logging.INFO, logger="tradeloop.ops.health"):
        status = monitor.handle(observation(disk=0.01))
        assert not status.healthy
        assert metric("tradeloop_health_healthy") == 0.0
        assert metric("tradeloop_health_check_ok", check="disk_space") == 0.0
        assert metric("tradeloop_health_check_ok", check="components") == 1.0
        assert metric("tradeloop_health_checks_total", check="disk_space", result="failing") == before + 1
        assert metric("tradeloop_health_disk_free_ratio") == pytest.approx(0.01)
        assert metric("tradeloop_health_consumer_lag_records", group=GROUP.name, topic="experiences") == 7.0
        assert metric("tradeloop_health_components", component="worker", state="UP") == 1.0
        monitor.handle(observation(disk=0.5))
        assert metric("tradeloop_health_healthy") == 1.0
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("health check disk_space failing: disk 1.0% free") for m in messages)
    assert "health check disk_space ok again" in messages


def test_a_lasting_problem_is_logged_once_then_reminded(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    monitor = HealthMonitor(settings, {}, ident="health-test", clock=clock, limits=LIMITS)
    with caplog.at_level(logging.WARNING, logger="tradeloop.ops.health"):
        for now in (0.0, 10.0, 20.0, 310.0):
            clock.now = now
            monitor.handle(observation(disk=0.01))
    warnings = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("health check disk_space")
    ]
    assert len(warnings) == 2  # at 0 s and the reminder at 310 s


def test_topic_growth_becomes_a_counter(settings: Settings) -> None:
    monitor = HealthMonitor(settings, {}, ident="health-test", limits=LIMITS)
    before = metric("tradeloop_health_topic_records_total", topic="trades") or 0.0
    monitor.handle(observation(trades=100))
    monitor.handle(observation(trades=150))
    monitor.handle(observation(trades=20))  # topic recreated: no negative step
    monitor.handle(observation(trades=30))
    assert metric("tradeloop_health_topic_records_total", topic="trades") == before + 150 + 10


def test_action_runs_with_exponential_backoff_and_resets(settings: Settings) -> None:
    calls: list[Problem] = []
    clock = Clock()

    def clean(problem: Problem) -> str:
        calls.append(problem)
        return "freed 1 GiB"

    monitor = HealthMonitor(settings, {CLEAN_DISK: clean}, ident="health-test", clock=clock, limits=LIMITS)
    ok_before = metric("tradeloop_health_actions_total", action=CLEAN_DISK, result="ok") or 0.0
    schedule = [(0.0, 1), (5.0, 1), (10.0, 2), (25.0, 2), (30.0, 3), (54.0, 3), (55.0, 4), (80.0, 5)]
    for now, expected in schedule:  # waits 10, 20, 25 (cap), 25 s
        clock.now = now
        monitor.handle(observation(disk=0.01))
        assert len(calls) == expected, f"at {now}s"
    assert calls[0].subject == "data_dir"
    assert metric("tradeloop_health_actions_total", action=CLEAN_DISK, result="ok") == ok_before + 5
    clock.now = 81.0
    monitor.handle(observation(disk=0.5))  # recovered: the next episode starts without waiting
    clock.now = 82.0
    monitor.handle(observation(disk=0.01))
    assert len(calls) == 6


def test_failing_action_is_counted_and_does_not_stop_the_monitor(settings: Settings) -> None:
    def broken(problem: Problem) -> str:
        raise RuntimeError("registry locked")

    monitor = HealthMonitor(settings, {CLEAN_DISK: broken}, ident="health-test", limits=LIMITS)
    before = metric("tradeloop_health_actions_total", action=CLEAN_DISK, result="error") or 0.0
    assert not monitor.handle(observation(disk=0.01)).healthy
    assert metric("tradeloop_health_actions_total", action=CLEAN_DISK, result="error") == before + 1


def test_missing_action_is_counted_as_unregistered(settings: Settings) -> None:
    monitor = HealthMonitor(settings, {}, ident="health-test", limits=LIMITS)
    before = metric("tradeloop_health_actions_total", action=CLEAN_DISK, result="unregistered") or 0.0
    monitor.handle(observation(disk=0.01))
    assert metric("tradeloop_health_actions_total", action=CLEAN_DISK, result="unregistered") == before + 1


def test_rejected_model_triggers_restore_and_failed_training_a_retry(settings: Settings) -> None:
    seen: dict[str, list[Problem]] = {RESTORE_MODEL: [], RETRY_TRAINING: []}
    actions = {name: (lambda p, n=name: seen[n].append(p) or "done") for name in seen}
    inference = Beat("inference", "inference-1", "h", 1, "UP", NOW - 1, 2.0, {},
                     {"sizer": "v1", "sizer.rejected": "v2:bad_signature"})  # fmt: skip
    trainer = Beat("trainer", "trainer-1", "h", 2, "UP", NOW - 1, 2.0, {"consecutive_failures": 4.0},
                   {"last_training_result": "failed"})  # fmt: skip
    models = (
        PublishedModel("sizer", "v1", NOW - 99, NOW - 99),
        PublishedModel("sizer", "v2", NOW - 9, NOW - 9),
    )
    monitor = HealthMonitor(settings, actions, ident="health-test", limits=LIMITS)  # type: ignore[arg-type]
    monitor.handle(observation(beats=(inference, trainer), models=models))
    assert [(p.subject, p.facts["version"]) for p in seen[RESTORE_MODEL]] == [("sizer", "v2")]
    assert [p.subject for p in seen[RETRY_TRAINING]] == ["trainer-1"]


def test_own_heartbeat_is_not_evidence(settings: Settings) -> None:
    monitor = HealthMonitor(settings, {}, ident="health-test", limits=LIMITS)
    own = Beat("health", "health-test", "h", 1, "UP", NOW - 1, 2.0, {}, {"stalled_groups": GROUP.name})
    other = Beat("health", "health-other", "h", 1, "UP", NOW - 1, 2.0, {}, {"stalled_groups": GROUP.name})
    assert monitor.handle(observation(beats=(own,))).healthy
    assert monitor.stalled_groups() == []
    assert not monitor.handle(observation(beats=(other,))).healthy
    assert monitor.stalled_groups() == [GROUP.name]

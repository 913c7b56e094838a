"""The health evaluation of `tradeloop status`: pure rules on hand-built observations."""

from __future__ import annotations

import json

import pytest

from streams.config.health import HealthSettings
from tradeloop.ops.status import evaluate
from tradeloop.ops.status_model import (
    COMPONENTS,
    CONSUMERS,
    DATA_FRESHNESS,
    DISK_SPACE,
    MODEL_FRESHNESS,
    MODEL_INTEGRITY,
    TRAINING,
    Beat,
    ConsumerGroup,
    GroupOffsets,
    Observation,
    OffsetSample,
    PublishedModel,
)

NOW = 1_800_000_000.0
LIMITS = HealthSettings()
WORKER_GROUP = ConsumerGroup("tradeloop-agents", "worker", ("trades", "signals", "outcomes"))
INPUTS_FLOWING = (
    OffsetSample(NOW - 3, {"trades": 100, "signals": 10, "outcomes": 5}),
    OffsetSample(NOW, {"trades": 130, "signals": 12, "outcomes": 6}),
)


def beat(
    ident: str = "worker-1",
    component: str = "worker",
    age: float = 1.0,
    interval: float = 2.0,
    status: str = "UP",
    gauges: dict[str, float] | None = None,
    info: dict[str, str] | None = None,
) -> Beat:
    return Beat(component, ident, "host", 42, status, NOW - age, interval, gauges or {}, info or {})


def observe(*beats: Beat, **fields: object) -> Observation:
    fields.setdefault("samples", INPUTS_FLOWING)
    return Observation(now=NOW, beats=beats, **fields)  # type: ignore[arg-type]


def test_healthy_loop_has_no_reasons() -> None:
    status = evaluate(observe(beat()), LIMITS)
    assert status.healthy, status.reasons
    assert status.reasons == []
    assert status.rates["trades"] == pytest.approx(10.0)


@pytest.mark.parametrize(("age", "state"), [(5.9, "UP"), (6.1, "DOWN"), (30.0, "DOWN")])
def test_component_down_after_three_missed_heartbeats(age: float, state: str) -> None:
    status = evaluate(observe(beat(age=age), beat("worker-2", age=0.5)), LIMITS)
    first = next(c for c in status.components if c.component_id == "worker-1")
    assert first.state == state
    assert status.check(COMPONENTS).ok is (state == "UP")
    if state == "DOWN":
        assert "worker-1 (worker) is down" in status.reasons[0]
        assert status.check(COMPONENTS).problems[0].subject == "worker-1"


def test_missed_beats_count_the_component_own_interval() -> None:
    slow = beat(interval=10.0, age=25.0)  # two beats missed of a 10 s cadence: still up
    assert evaluate(observe(slow), LIMITS).components[0].state == "UP"


def test_stopped_component_is_not_a_problem_but_nothing_running_is() -> None:
    stopped = beat(status="STOPPING", age=60.0)
    status = evaluate(observe(stopped, beat("inference-1", "inference")), LIMITS)
    assert [c.state for c in status.components] == ["UP", "STOPPED"]
    assert status.check(COMPONENTS).ok
    alone = evaluate(observe(stopped), LIMITS)
    assert not alone.healthy
    assert "no tradeloop process is running" in alone.reasons[0]


def test_long_gone_process_is_forgotten() -> None:
    gone = beat("worker-old", age=LIMITS.forget_after_seconds + 1)
    status = evaluate(observe(gone, beat()), LIMITS)
    assert [c.component_id for c in status.components] == ["worker-1"]
    assert status.healthy


def test_degraded_component_is_unhealthy_with_its_reason() -> None:
    status = evaluate(observe(beat(status="DEGRADED", info={"reason": "broker unreachable"})), LIMITS)
    assert status.reasons == ["worker-1 reports DEGRADED: broker unreachable"]
    fallback = beat("inference-1", "inference", status="DEGRADED", info={"kill_switch": "false"})
    assert evaluate(observe(fallback), LIMITS).reasons == [
        "inference-1 reports DEGRADED: no model loaded: answering with the fallback rule"
    ]


def lag_samples(lags: list[int], committed: list[int], step: float = 5.0) -> tuple[OffsetSample, ...]:
    start = NOW - step * (len(lags) - 1)
    return tuple(
        OffsetSample(
            start + i * step,
            {"trades": 1000 + 100 * i},
            {WORKER_GROUP.name: GroupOffsets({"trades": lag}, {"trades": done})},
        )
        for i, (lag, done) in enumerate(zip(lags, committed, strict=True))
    )


def test_lag_growing_while_commits_stuck_is_a_stall() -> None:
    samples = lag_samples([100, 200, 300, 400], [900, 900, 900, 900])
    status = evaluate(observe(beat(), groups=(WORKER_GROUP,), samples=samples), LIMITS)
    assert not status.healthy
    group = status.groups[0]
    assert group.stalled and group.lag_growth == 300 and group.commits_moved is False
    problem = status.check(CONSUMERS).problems[0]
    assert problem.subject == "tradeloop-agents"
    assert "stalled" in problem.message and "lag grew by 300 to 400" in problem.message


@pytest.mark.parametrize(
    ("lags", "committed", "why"),
    [
        ([100, 200, 300, 400], [900, 950, 1000, 1050], "commits move: a slow consumer, not a stopped one"),
        ([400, 300, 300, 300], [900, 900, 900, 900], "lag not growing: nothing new to consume"),
        ([100, 200, 150, 400], [900, 900, 900, 900], "lag fell in between: commits are happening"),
    ],
)
def test_not_a_stall(lags: list[int], committed: list[int], why: str) -> None:
    samples = lag_samples(lags, committed)
    status = evaluate(observe(beat(), groups=(WORKER_GROUP,), samples=samples), LIMITS)
    assert status.check(CONSUMERS).ok, why


def test_stall_needs_enough_span_to_judge() -> None:
    samples = lag_samples([100, 200, 300, 400], [900] * 4, step=1.0)  # 3 s < stall_min_seconds
    status = evaluate(observe(beat(), groups=(WORKER_GROUP,), samples=samples), LIMITS)
    assert status.check(CONSUMERS).ok
    assert "stalls need" in status.check(CONSUMERS).note


def test_group_that_never_committed_is_not_stalled() -> None:
    samples = tuple(
        OffsetSample(
            NOW - 15 + 5 * i, {"trades": 100 * i}, {WORKER_GROUP.name: GroupOffsets({"trades": 100 * i}, {})}
        )
        for i in range(4)
    )
    status = evaluate(observe(beat(), groups=(WORKER_GROUP,), samples=samples), LIMITS)
    assert status.check(CONSUMERS).ok
    assert status.groups[0].total_lag == 300


def test_monitor_verdict_on_stalls_is_trusted_while_fresh() -> None:
    monitor = beat("health-1", "health", info={"stalled_groups": "tradeloop-trainer"})
    status = evaluate(observe(beat(), monitor), LIMITS)
    assert [p.subject for p in status.check(CONSUMERS).problems] == ["tradeloop-trainer"]
    stale = beat("health-1", "health", age=60.0, info={"stalled_groups": "tradeloop-trainer"})
    assert evaluate(observe(beat(), stale), LIMITS).check(CONSUMERS).ok


def test_stale_data_is_unhealthy() -> None:
    quiet = (OffsetSample(NOW - 3, {"trades": 100}), OffsetSample(NOW, {"trades": 100}))
    old = evaluate(observe(beat(), samples=quiet, newest_input=NOW - 400), LIMITS)
    assert old.reasons == ["no input events for 7m (limit 5m)"]
    assert old.data_age_seconds == pytest.approx(400)
    recent = evaluate(observe(beat(), samples=quiet, newest_input=NOW - 30), LIMITS)
    assert recent.check(DATA_FRESHNESS).ok


def test_arriving_backfill_is_fresh_even_with_old_event_times() -> None:
    status = evaluate(observe(beat(), newest_input=NOW - 86_400 * 30), LIMITS)
    assert status.check(DATA_FRESHNESS).ok
    assert status.data_age_seconds is not None and status.data_age_seconds <= 3.0


def test_no_input_ever_is_unhealthy() -> None:
    empty = (OffsetSample(NOW, {"trades": 0, "signals": 0, "outcomes": 0}),)
    status = evaluate(observe(beat(), samples=empty), LIMITS)
    assert status.check(DATA_FRESHNESS).problems[0].message.startswith("no input events yet")


def inference(info: dict[str, str], gauges: dict[str, float] | None = None) -> Beat:
    return beat("inference-1", "inference", info=info, gauges=gauges)


def test_stale_model_is_unhealthy() -> None:
    models = (PublishedModel("sizer", "v1", NOW - 2 * 86_400, NOW - 2 * 86_400),)
    status = evaluate(observe(inference({"sizer": "v1", "frozen": "false"}), models=models), LIMITS)
    assert [(s.worker, s.model, s.role, s.version) for s in status.serving] == [
        ("inference-1", "sizer", "serving", "v1")
    ]
    assert status.serving[0].age_seconds == pytest.approx(2 * 86_400)
    assert status.reasons == ["inference-1 serves sizer v1, 2.0d old (limit 1.0d)"]


def test_fresh_model_and_roles_from_heartbeat_info() -> None:
    models = (
        PublishedModel("sizer", "v1", NOW - 3600, NOW - 3600),
        PublishedModel("sizer", "v2", NOW - 60, NOW - 60),
    )
    info = {"sizer": "v1", "sizer.canary": "v2", "sizer.canary_share": "0.2", "kill_switch": "false"}
    status = evaluate(observe(inference(info), models=models), LIMITS)
    assert status.check(MODEL_FRESHNESS).ok
    assert {(s.role, s.version, round(s.age_seconds or 0)) for s in status.serving} == {
        ("serving", "v1", 3600),
        ("canary", "v2", 60),
    }


def test_model_age_falls_back_to_the_worker_gauge() -> None:
    status = evaluate(observe(inference({"sizer": "v9"}, {"sizer_age_seconds": 200_000.0})), LIMITS)
    assert status.serving[0].age_seconds == 200_000.0
    assert not status.check(MODEL_FRESHNESS).ok


def test_rejected_newest_model_is_an_integrity_problem() -> None:
    models = (
        PublishedModel("sizer", "v1", NOW - 60, NOW - 60),
        PublishedModel("sizer", "v2", NOW - 5, NOW - 5),
    )
    bad = inference({"sizer": "v1", "sizer.rejected": "v2:checksum_mismatch"})
    status = evaluate(observe(bad, models=models), LIMITS)
    problem = status.check(MODEL_INTEGRITY).problems[0]
    assert problem.subject == "sizer"
    assert problem.facts == {"version": "v2", "reason": "checksum_mismatch", "worker": "inference-1"}
    # A rejection of an older version while the newest one serves is history, not a problem.
    superseded = (*models, PublishedModel("sizer", "v3", NOW - 1, NOW - 1))
    assert evaluate(observe(bad, models=superseded), LIMITS).check(MODEL_INTEGRITY).ok


def test_training_failing_and_inactive() -> None:
    failing = beat(
        "trainer-1",
        "trainer",
        gauges={"consecutive_failures": 3, "last_training_ts": NOW - 600, "replay_rows": 5000},
        info={"last_training_result": "failed", "last_training_error": "RayActorError"},
    )
    status = evaluate(observe(failing), LIMITS)
    assert status.training is not None and status.training.result == "failed"
    assert status.replay_rows == 5000
    assert status.reasons == ["training failed 3 runs in a row: RayActorError"]
    idle = beat(
        "trainer-1",
        "trainer",
        gauges={"last_training_ts": NOW - 3 * 3600},
        info={"last_training_result": "ok"},
    )
    assert evaluate(observe(idle), LIMITS).reasons == ["no training run for 3.0h (limit 2.0h)"]
    assert not evaluate(observe(beat()), LIMITS).check(TRAINING).evaluated


def test_training_facts_from_the_trainer_loop_keys() -> None:
    loop = beat(
        "trainer-2",
        "trainer",
        gauges={"failures": 4.0, "runs": 9.0},
        info={"last_training": "failed: RayTaskError"},
    )
    status = evaluate(observe(loop), LIMITS)
    assert status.training is not None
    assert (status.training.result, status.training.failures, status.training.error) == (
        "failed",
        4,
        "RayTaskError",
    )
    assert status.reasons == ["training failed 4 runs in a row: RayTaskError"]
    ok = beat("trainer-2", "trainer", gauges={"failures": 0.0}, info={"last_training": "v0007 published"})
    assert evaluate(observe(ok), LIMITS).training.result == "v0007 published"  # type: ignore[union-attr]


def test_low_disk_is_unhealthy() -> None:
    assert not evaluate(observe(beat(), disk_free_ratio=0.01), LIMITS).check(DISK_SPACE).ok
    assert evaluate(observe(beat(), disk_free_ratio=0.5), LIMITS).check(DISK_SPACE).ok


def test_limits_are_settings() -> None:
    strict = HealthSettings(missed_heartbeats=1)
    assert evaluate(observe(beat(age=2.5)), strict).components[0].state == "DOWN"


def test_json_has_verdict_and_no_nan() -> None:
    status = evaluate(observe(inference({"sizer": "v9"}, {"sizer_age_seconds": float("nan")})), LIMITS)
    data = json.loads(json.dumps(status.to_dict(), allow_nan=False))
    assert data["healthy"] is True
    assert data["serving"][0]["age_seconds"] is None
    assert set(data["checks"]) == {c.name for c in status.checks}

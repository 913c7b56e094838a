"""The trainer's Prometheus metrics (``tradeloop_trainer_*``), served by the trainer loop."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge

__all__ = [
    "ALLOCATOR_EVAL_METRIC",
    "ALLOCATOR_LAST_TRAINING",
    "ALLOCATOR_RUNS",
    "ALLOCATOR_WEIGHT",
    "CONSUMER_LAG",
    "EPISODE_RETURN",
    "EVAL_METRIC",
    "EXPLAINED_VAR",
    "GATE_LOWER_BOUND",
    "GRAD_NORM",
    "INGESTED",
    "LAST_TRAINING",
    "LOSS",
    "MODELS_PUBLISHED",
    "PERIODS_INGESTED",
    "PERIODS_LAG",
    "REPLAY_ROWS",
    "RUNS",
    "TRAINING_FAILURES",
    "TRAINING_ITERATIONS",
    "TRAINING_SECONDS",
    "record_evaluation",
    "record_iteration",
]

REPLAY_ROWS = Gauge("tradeloop_trainer_replay_rows", "Rows in the replay store", ["kind"])
INGESTED = Counter(
    "tradeloop_trainer_experiences_ingested_total",
    "Experience records consumed, by what the replay store did with them",
    ["outcome"],
)
CONSUMER_LAG = Gauge("tradeloop_trainer_consumer_lag_messages", "Experiences not yet ingested")
TRAINING_ITERATIONS = Counter("tradeloop_trainer_training_iterations_total", "PPO iterations run")
LOSS = Gauge("tradeloop_trainer_loss", "Loss components of the latest PPO iteration", ["component"])
EPISODE_RETURN = Gauge("tradeloop_trainer_episode_return_mean", "Mean episode return of the latest iteration")
GRAD_NORM = Gauge(
    "tradeloop_trainer_grad_norm", "Global gradient norm (before clipping) of the latest iteration"
)
EXPLAINED_VAR = Gauge("tradeloop_trainer_explained_variance", "Value-function explained variance")
EVAL_METRIC = Gauge(
    "tradeloop_trainer_eval_metric",
    "Hold-out metric of the latest evaluation, by policy",
    ["policy", "metric"],
)
GATE_LOWER_BOUND = Gauge("tradeloop_trainer_gate_lower_bound", "Lower bound of the latest gate's improvement")
MODELS_PUBLISHED = Counter("tradeloop_trainer_models_published_total", "Model updates published", ["reason"])
RUNS = Counter("tradeloop_trainer_runs_total", "Training runs by result", ["result"])
TRAINING_FAILURES = Counter("tradeloop_trainer_training_failures_total", "Training runs that raised")
LAST_TRAINING = Gauge("tradeloop_trainer_last_training_timestamp_seconds", "Unix time the last run finished")
TRAINING_SECONDS = Gauge("tradeloop_trainer_training_duration_seconds", "Wall time of the last run")

# The allocator has its own series, so sizer alerts and dashboards keep their meaning.
PERIODS_INGESTED = Counter(
    "tradeloop_trainer_allocation_periods_ingested_total",
    "AllocationPeriod records consumed, by what the allocation store did with them",
    ["outcome"],
)
PERIODS_LAG = Gauge(
    "tradeloop_trainer_allocation_periods_lag_messages", "Allocation periods not yet ingested"
)
ALLOCATOR_RUNS = Counter(
    "tradeloop_trainer_allocator_runs_total", "Allocator training runs by result", ["result"]
)
ALLOCATOR_LAST_TRAINING = Gauge(
    "tradeloop_trainer_allocator_last_training_timestamp_seconds", "Unix time the last allocator run finished"
)
ALLOCATOR_EVAL_METRIC = Gauge(
    "tradeloop_trainer_allocator_eval_metric",
    "Hold-out metric of the latest allocator evaluation, by policy",
    ["policy", "metric"],
)
ALLOCATOR_WEIGHT = Gauge(
    "tradeloop_trainer_allocator_weight",
    "Mean hold-out weight per strategy of the newest published allocator (served weights: "
    "tradeloop_inference_* on the workers)",
    ["strategy"],
)


def record_iteration(stats: Mapping[str, float]) -> None:
    """Export one PPO iteration's statistics."""
    TRAINING_ITERATIONS.inc()
    for component in ("policy_loss", "vf_loss", "total_loss", "entropy", "kl"):
        LOSS.labels(component=component).set(stats.get(component, float("nan")))
    EPISODE_RETURN.set(stats.get("return_mean", float("nan")))
    GRAD_NORM.set(stats.get("grad_norm", float("nan")))
    EXPLAINED_VAR.set(stats.get("explained_var", float("nan")))


def record_evaluation(policies: Mapping[str, Mapping[str, float]], lower_bound: float) -> None:
    for policy, values in policies.items():
        for metric, value in values.items():
            EVAL_METRIC.labels(policy=policy, metric=metric).set(value)
    GATE_LOWER_BOUND.set(lower_bound)

"""Prometheus metrics of the health monitor (``tradeloop_health_*``).

The monitor watches the bus from outside every component, so it is also where consumer lag, topic
growth and data age come from for dashboards and alerts.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ACTIONS",
    "CHECKS",
    "CHECK_DURATION",
    "CHECK_OK",
    "CHECK_PROBLEMS",
    "COMPONENTS",
    "CONSUMER_LAG",
    "DATA_AGE",
    "DISK_FREE",
    "HEALTHY",
    "LAST_CHECK",
    "TOPIC_RECORDS",
    "TRAINING_AGE",
]

HEALTHY = Gauge("tradeloop_health_healthy", "1 while every health check passes, else 0")
CHECK_OK = Gauge("tradeloop_health_check_ok", "1 while the check passes, 0 while it fails", ["check"])
CHECK_PROBLEMS = Gauge(
    "tradeloop_health_check_problems", "Problems the check found at its last run", ["check"]
)
CHECKS = Counter(
    "tradeloop_health_checks_total", "Health check runs by result (ok, failing)", ["check", "result"]
)
ACTIONS = Counter(
    "tradeloop_health_actions_total",
    "Recovery actions run by the monitor, by result (ok, error, unregistered)",
    ["action", "result"],
)
CHECK_DURATION = Histogram(
    "tradeloop_health_check_duration_seconds",
    "Time of one monitor cycle (read the bus, evaluate, act)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
LAST_CHECK = Gauge("tradeloop_health_last_check_timestamp_seconds", "Unix time of the last completed cycle")
COMPONENTS = Gauge(
    "tradeloop_health_components",
    "Processes per component and state (UP, DEGRADED, STOPPED, DOWN)",
    ["component", "state"],
)
CONSUMER_LAG = Gauge(
    "tradeloop_health_consumer_lag_records",
    "Records not yet committed by a consumer group",
    ["group", "topic"],
)
TOPIC_RECORDS = Counter(
    "tradeloop_health_topic_records_total",
    "Records written to each topic, as seen from its end offsets",
    ["topic"],
)
DATA_AGE = Gauge(
    "tradeloop_health_data_age_seconds", "Seconds since the newest input event (trades, signals, outcomes)"
)
TRAINING_AGE = Gauge(
    "tradeloop_health_training_age_seconds", "Seconds since the trainer's last training run ended"
)
DISK_FREE = Gauge("tradeloop_health_disk_free_ratio", "Free share of the disk holding the data directory")

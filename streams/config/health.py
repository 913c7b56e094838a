"""Settings of ``tradeloop status`` and the health monitor: what counts as down, stale or stalled."""

from __future__ import annotations

from pydantic import Field

from streams.config.base import Section

__all__ = ["HealthSettings"]


class HealthSettings(Section):
    """Thresholds of the health evaluation and the cadence of the monitor and its actions."""

    missed_heartbeats: int = Field(
        default=3, ge=1, description="a process is down after this many missed beats"
    )
    forget_after_seconds: float = Field(
        default=600.0, gt=0, description="a down process is dropped from the view after this long"
    )
    heartbeat_window: int = Field(default=2000, ge=10, description="newest heartbeats read per partition")
    dead_letter_window: int = Field(default=5000, ge=10, description="newest dead letters read per partition")
    data_max_age_seconds: float = Field(
        default=300.0, gt=0, description="unhealthy when no input event arrived for this long"
    )
    model_max_age_seconds: float = Field(
        default=86_400.0, gt=0, description="unhealthy when a serving model is older than this"
    )
    training_max_age_seconds: float = Field(
        default=7200.0, gt=0, description="unhealthy when the trainer has not trained for this long"
    )
    training_max_failures: int = Field(
        default=3, ge=1, description="unhealthy after this many failed training runs in a row"
    )
    stall_checks: int = Field(
        default=3, ge=2, description="checks in a row with lag growing and commits frozen -> stalled"
    )
    stall_min_seconds: float = Field(
        default=10.0, gt=0, description="shortest span of those checks (longer than any commit interval)"
    )
    status_window_seconds: float = Field(
        default=3.0, ge=0, description="how long `tradeloop status` samples offsets (rates, stalls)"
    )
    check_interval_seconds: float = Field(default=10.0, gt=0, description="period of the health monitor")
    disk_min_free_ratio: float = Field(
        default=0.05, ge=0, lt=1, description="clean old models and replay segments below this free share"
    )
    action_backoff_seconds: float = Field(
        default=30.0, gt=0, description="first wait before repeating an action"
    )
    action_backoff_max_seconds: float = Field(default=1800.0, gt=0)

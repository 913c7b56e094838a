"""Prometheus metrics of the simulator process (served by :func:`streams.metrics.serve_metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["EVENTS", "EVENT_TIME", "OPEN_POSITIONS"]

EVENTS = Counter(
    "tradeloop_simulator_events_total", "Events the simulator produced, by logical topic", ["topic"]
)
EVENT_TIME = Gauge(
    "tradeloop_simulator_event_time_seconds", "Event time of the last produced event, unix seconds"
)
OPEN_POSITIONS = Gauge(
    "tradeloop_simulator_open_positions", "Simulated signals whose outcome is still pending"
)

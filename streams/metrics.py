"""Prometheus helpers: one ``/metrics`` server per process and the naming convention.

Metric names follow ``tradeloop_<component>_<what>_<unit>`` (DESIGN.md section 7). Each component
declares its metrics in its own module on the default registry; this module only serves them.
"""

from __future__ import annotations

import logging
from typing import Final

from prometheus_client import Gauge, Info, start_http_server

from streams.settings import Settings

__all__ = ["DEFAULT_PORTS", "PROCESS_INFO", "serve_metrics"]

log = logging.getLogger(__name__)

# Default /metrics ports per component, so `tradeloop up` can run them side by side.
DEFAULT_PORTS: Final = {
    "up": 9300,
    "worker": 9301,
    "trainer": 9302,
    "inference": 9303,
    "simulator": 9304,
    "health": 9305,
}

PROCESS_INFO = Info("tradeloop_process", "Component kind and id of this process")
UP_SINCE = Gauge("tradeloop_process_start_time_seconds", "Unix time this tradeloop process started")


def serve_metrics(
    settings: Settings, component: str, component_id: str, port: int | None = None
) -> int | None:
    """Start the ``/metrics`` HTTP server for this process; returns the port, or None when disabled."""
    import time

    PROCESS_INFO.info({"component": component, "component_id": component_id})
    UP_SINCE.set(time.time())
    if not settings.metrics_enabled:
        return None
    chosen = port if port is not None else settings.metrics_port
    if chosen is None:
        chosen = DEFAULT_PORTS.get(component, 0)
    try:
        server, _thread = start_http_server(chosen, addr="0.0.0.0")  # noqa: S104 - scraped by Prometheus
    except OSError as exc:
        log.warning("metrics port %s unavailable (%s); metrics not served", chosen, exc.strerror)
        return None
    bound = int(server.server_port)
    log.info("metrics for %s at http://127.0.0.1:%d/metrics", component, bound)
    return bound

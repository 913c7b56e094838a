"""Heartbeats: every process publishes its liveness and key gauges to the heartbeats topic.

Example:
    >>> beat = Heartbeater(settings, "worker", gauges=lambda: {"lag": 0.0})   # doctest: +SKIP
    >>> beat.start()                                                          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from streams.clock import new_event_id, now_us
from streams.errors import TradeloopError
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import HEARTBEATS

__all__ = ["Heartbeater", "component_id"]

log = logging.getLogger(__name__)


def component_id(component: str) -> str:
    """A process-unique id like ``worker-myhost-1234``."""
    return f"{component}-{socket.gethostname()}-{os.getpid()}"


class Heartbeater:
    """Publishes a Heartbeat every ``interval`` seconds from a daemon thread."""

    def __init__(
        self,
        settings: Settings,
        component: str,
        ident: str | None = None,
        gauges: Callable[[], dict[str, float]] | None = None,
        info: Callable[[], dict[str, str]] | None = None,
        status: Callable[[], str] | None = None,
        interval: float = 2.0,
        producer: EventProducer | None = None,
    ) -> None:
        self.settings = settings
        self.component = component
        self.ident = ident or component_id(component)
        self.interval = interval
        self._gauges = gauges or dict
        self._info = info or dict
        self._status = status or (lambda: "UP")
        self._producer = producer or EventProducer(
            settings, f"{self.ident}-heartbeat", config={"linger.ms": 0}
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, status: str | None = None) -> dict[str, object]:
        return {
            "event_id": new_event_id(), "ts": now_us(), "component": self.component,
            "component_id": self.ident, "host": socket.gethostname(), "pid": os.getpid(),
            "status": status or self._status(), "interval_seconds": self.interval,
            "gauges": {k: float(v) for k, v in self._gauges().items()},
            "info": {k: str(v) for k, v in self._info().items()},
        }  # fmt: skip

    def beat(self, status: str | None = None) -> None:
        try:
            self._producer.send(HEARTBEATS, self.ident, self.record(status))
        except TradeloopError as exc:
            log.warning("heartbeat not sent: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def start(self) -> Heartbeater:
        self.beat()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.component}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 1)
        self.beat("STOPPING")
        self._producer.poll(0)
        try:
            self._producer.flush(2.0)
        except TradeloopError:
            log.warning("final heartbeat not acknowledged")

"""``tradeloop up`` as an object: start everything, watch it, stop everything, say how it went.

:meth:`UpRun.run` starts the embedded broker (unless a Kafka is configured), creates the topics,
starts the stream worker, the trainer, an inference worker and the simulator under one
:class:`~tradeloop.ops.supervisor.Supervisor` and the health monitor in a thread, then once a
second applies the supervisor's restart policy, samples the bus and hands itself to a callback
(the live panel). The allocation period and the weights interval are paced for the simulator's
speed (:mod:`tradeloop.ops.pace`), so the allocator trains and serves within the run. It ends
when ``duration`` passes or ``stop`` is set (the command sets it on
SIGTERM, SIGINT and SIGHUP), and **fails** (non-empty :attr:`UpResult.failures`, exit code 1) when:

* a :class:`~streams.errors.TradeloopError` (or a Kafka client error) stops it, e.g. the broker's
  port is taken,
* the supervisor gave up on a component (it failed ``max_restarts`` times, or the simulator failed),
* the embedded broker died, or the health monitor's thread failed.

When the embedded broker died, its death is the failure named first, even when a client's error
about it arrived before the broker could be seen dead (:data:`BROKER_DEATH_GRACE_SECONDS`).

Stopping: every child gets SIGTERM at once and has ``stop_grace_seconds`` (then the supervisor
kills it), the health monitor and the readers stop, and the broker stops last. ``<data_dir>/up.json``
lists the pids of the run's processes while it runs.

Example:
    >>> result = UpRun(settings, UpOptions(duration=60), stop).run(lambda run: None)  # doctest: +SKIP
    >>> result.exit_code, result.summary["models_published"]                         # doctest: +SKIP
    (0, 1)
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import KafkaException

from streams.datadir import DataDir
from streams.errors import TradeloopError
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker
from streams.metrics import serve_metrics
from streams.settings import Settings
from tradeloop.ops.actions import default_actions
from tradeloop.ops.health import run_health_monitor
from tradeloop.ops.pace import up_settings
from tradeloop.ops.status_collect import BusReader, BusState, settings_warnings
from tradeloop.ops.supervisor import Supervisor
from tradeloop.ops.uplift import UpliftTracker

__all__ = ["COMPONENTS", "Rates", "UpOptions", "UpResult", "UpRun"]

log = logging.getLogger(__name__)

COMPONENTS: Final = (("worker", ["worker"]), ("trainer", ["trainer"]), ("inference", ["infer"]))
"""(name, command) of each long-running component, in start order; the simulator starts last."""

_STATE_EVERY: Final = 3.0  # seconds between two reads of heartbeats and published models
BROKER_DEATH_GRACE_SECONDS: Final = 2.0
"""How long a failed run waits to see whether the embedded broker died (and caused the failure)."""


@dataclass(frozen=True, slots=True)
class UpOptions:
    """The command line of ``tradeloop up``; ``commands`` are the CLI commands available to children."""

    duration: float | None = None
    speed: str = "x20"
    seed: int = 1
    warmup: int = 2500
    commands: frozenset[str] = frozenset({"worker", "trainer", "infer", "simulate"})


@dataclass
class UpResult:
    """What ``--summary-json`` writes, and why the run failed (empty when it did not)."""

    summary: dict[str, Any]
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


class Rates:
    """Records per topic and events per second from successive end-offset totals."""

    def __init__(self, reader: BusReader) -> None:
        self.reader = reader
        self.totals: dict[str, int] = {}
        self.rates: dict[str, float] = {}
        self._last_time = time.monotonic()

    def update(self) -> dict[str, int]:
        totals = dict(self.reader.sample().totals)
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-6)
        if self.totals:
            self.rates = {t: (totals[t] - self.totals.get(t, 0)) / elapsed for t in totals}
        self.totals, self._last_time = totals, now
        return totals


class UpRun:
    """One ``tradeloop up``: its broker, supervisor, health monitor and the readers of the panel."""

    def __init__(self, settings: Settings, options: UpOptions, stop: threading.Event) -> None:
        self.settings = settings = up_settings(settings, options.speed)
        self.options = options
        self.stop = stop
        self.layout = DataDir(settings.data_dir)
        self.started = time.monotonic()
        self.broker: EmbeddedBroker | None = None
        self.supervisor = Supervisor(settings, self.layout.logs, on_change=self._write_pids)
        self.events: list[str] = []
        self.failures: list[str] = []
        self.state: BusState | None = None
        self.rates: Rates | None = None
        self.tracker: UpliftTracker | None = None
        self._reader: BusReader | None = None
        self._monitor: threading.Thread | None = None
        self._monitor_error: BaseException | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- the run ----------------------------------------------------------------------------
    def run(self, on_tick: Callable[[UpRun], None]) -> UpResult:
        """Start, watch until the duration passes, ``stop`` is set or something fails, then stop."""
        summary: dict[str, Any] = {"bootstrap": self.settings.bootstrap}
        try:
            self._start()
            self._watch(on_tick)
            if not self.stop.is_set() and not self.failures:  # the duration passed: one last look
                self._final_look()
            if self.rates is not None:
                summary["records"] = self.rates.totals
        except (TradeloopError, KafkaException) as exc:  # KafkaException: a client call the reader left bare
            # A dead broker is the cause, the error its effect; the error can come first (below).
            self._fail(self._broker_died(grace=BROKER_DEATH_GRACE_SECONDS) or str(exc))
        finally:
            summary.update(self._stop())
        summary["failures"] = list(self.failures)
        return UpResult(summary, list(self.failures))

    def _start(self) -> None:
        for warning in settings_warnings(self.settings):  # e.g. the development signing key
            log.warning(warning)
        log.info(
            "paced for %s: allocation periods of %.0f s event time, strategy weights every %.1f s",
            self.options.speed, self.settings.agents.allocation_period_seconds,
            self.settings.inference.weights_interval_seconds,
        )  # fmt: skip
        if self.settings.embedded_broker:
            self.broker = EmbeddedBroker(
                port=self.settings.broker_port,
                binary=self.settings.tansu_bin,
                log_path=self.layout.log("broker"),
            ).start()
            log.info("embedded broker at %s (pid %s)", self.broker.bootstrap, self.broker.pid)
        create_topics(self.settings)
        serve_metrics(self.settings, "up", "up")
        commands = self.options.commands
        for name, args in COMPONENTS:
            if args[0] in commands:
                self.supervisor.start(name, args)
        self.supervisor.start("simulator", self._simulate_args(), restartable=False)
        self._monitor = threading.Thread(target=self._run_monitor, name="health-monitor", daemon=True)
        self._monitor.start()
        self._reader = BusReader(self.settings)
        self.tracker = UpliftTracker(self.settings)
        self.rates = Rates(self._reader)

    def _simulate_args(self) -> list[str]:
        o = self.options
        args = [
            "simulate",
            "--speed",
            o.speed,
            "--seed",
            str(o.seed),
            "--warmup",
            str(o.warmup),
            "--no-progress",
        ]
        return [*args, "--size-via-bus"] if "infer" in o.commands else args

    def _run_monitor(self) -> None:
        try:
            run_health_monitor(self.settings, default_actions(self.settings, self.supervisor), self.stop)
        except BaseException as exc:  # reported by the main thread, which fails the run
            self._monitor_error = exc
            raise

    def _watch(self, on_tick: Callable[[UpRun], None]) -> None:
        assert self.rates is not None and self.tracker is not None and self._reader is not None
        next_state = 0.0
        while not self.stop.is_set():
            if self.options.duration is not None and self.elapsed >= self.options.duration:
                return
            self._note(event.message for event in self.supervisor.supervise())
            failures = [
                f"gave up on {child.name} after {child.restarts} restarts; see {child.log_path}"
                for child in self.supervisor.gave_up
            ]
            if self._monitor is not None and not self._monitor.is_alive():
                failures.append(f"the health monitor stopped: {self._monitor_error!r}")
            # A broker that died is named first: what failed with it is its effect.
            if died := self._broker_died(grace=BROKER_DEATH_GRACE_SECONDS if failures else 0.0):
                self._fail(died)
            for failure in failures:
                self._fail(failure)
            if self.failures:
                return
            self.rates.update()
            self.tracker.poll()
            if time.monotonic() >= next_state:
                self.state = self._reader.read_state(deadline_seconds=3.0)
                next_state = time.monotonic() + _STATE_EVERY
            on_tick(self)
            self.stop.wait(1.0)

    def _broker_died(self, grace: float = 0.0) -> str | None:
        """The failure to report when the embedded broker is no longer running, else None.

        ``grace``: how long a broker that still runs may take to be seen dead. A killed broker's
        sockets close before the kernel lets its parent reap it, so a client's error about the
        broker can arrive while the broker still looks alive for a moment.
        """
        if self.broker is None:
            return None
        deadline = time.monotonic() + grace
        while self.broker.running():
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return f"the embedded broker died; see {self.layout.log('broker')}"

    def _final_look(self) -> None:
        """Read the bus once more before stopping, so the summary has the run's last word."""
        assert self.rates is not None and self.tracker is not None and self._reader is not None
        self.rates.update()
        self.tracker.poll()
        self.state = self._reader.read_state(deadline_seconds=5.0)

    def _note(self, messages: Iterable[str]) -> None:
        for message in messages:
            log.warning("%s", message)
            self.events.append(f"{time.strftime('%H:%M:%S')} {message}")

    def _fail(self, reason: str) -> None:
        if reason not in self.failures:
            log.error("%s", reason)
            self.failures.append(reason)

    # -- stopping ---------------------------------------------------------------------------
    def _stop(self) -> dict[str, Any]:
        """Stop every child, the monitor and the readers, then the broker; the summary's run facts."""
        self.stop.set()
        facts: dict[str, Any] = {"exit_codes": self.supervisor.stop()}
        for name, code in facts["exit_codes"].items():
            if code not in (0, None):
                log.warning("%s exited with %s when stopped; see %s", name, code, self.layout.log(name))
        if self._monitor is not None:
            self._monitor.join(self.settings.stop_grace_seconds)
        facts["seconds"] = round(self.elapsed, 1)
        if self.tracker is not None:
            facts.update(self.tracker.summary())
            self.tracker.close()
        if self.state is not None:
            published = [m[2] for m in self.state.models]
            facts["models_published"] = len(published)
            for model in ("sizer", "allocator"):
                facts[f"{model}_published"] = sum(m.model == model for m in published)
            facts["model_versions"] = [f"{m.model}:{m.version}" for m in published]
            facts["serving"] = {
                beat.component_id: dict(beat.info)
                for beat in self.state.beats.values()
                if beat.component == "inference"
            }
        if self._reader is not None:
            self._reader.close()
        if self.broker is not None:
            self.broker.stop(timeout=self.settings.supervisor.kill_after_seconds)  # last: children are gone
        self.layout.up_pids.unlink(missing_ok=True)
        return facts

    def _write_pids(self) -> None:
        """``<data_dir>/up.json``: this process, the broker and every running child, by name."""
        document = {
            "up": os.getpid(),
            "broker": self.broker.pid if self.broker is not None else None,
            "children": self.supervisor.pids(),
        }
        path = self.layout.up_pids
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(tmp, path)

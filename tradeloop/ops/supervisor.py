"""Runs tradeloop components as child processes with one restart policy, and stops them together.

Each component is ``python -m tradeloop --parent-pid <this pid> <args>`` with the parent's
settings passed through the environment, so a child sees exactly the configuration the parent was
given. The policy (:class:`~streams.config.supervisor.SupervisorSettings`): a child that exits
with a non-zero code is restarted after a backoff (2 s, doubling, at most 30 s); after
``max_restarts`` restarts, or at once for a child that must not be restarted (the simulator would
replay its seed), the supervisor gives up on it and reports it; a child that exits 0 by itself has
finished. Every change is returned by :meth:`Supervisor.supervise` as an :class:`Event` for the
caller to log and act on (``tradeloop up`` fails when a child gave up).

No child outlives the supervisor: children die with the thread that started them
(:func:`streams.lifetime.die_with_parent`) and watch their parent pid besides; each leads its own
process group, and whatever a child leaves in it when it exits (its own children, e.g. Ray's
agents) is killed. Children are
therefore started, and restarted, from the thread that calls :meth:`start` and
:meth:`supervise`: the main thread. Other threads (the health monitor) only *ask* for a restart
with :meth:`request_restart`.

Example:
    >>> supervisor = Supervisor(settings, DataDir(settings.data_dir).logs)     # doctest: +SKIP
    >>> supervisor.start("worker", ["worker"])                                 # doctest: +SKIP
    >>> for event in supervisor.supervise(): print(event.message)              # doctest: +SKIP
    >>> supervisor.stop()                                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pydantic import BaseModel, SecretStr

from streams.config.supervisor import SupervisorSettings
from streams.lifetime import die_with_parent
from streams.settings import Settings

__all__ = [
    "FINISHED",
    "GAVE_UP",
    "RESTARTING",
    "RUNNING",
    "STOPPED",
    "Child",
    "Event",
    "Supervisor",
    "settings_env",
]

log = logging.getLogger(__name__)

RUNNING: Final = "running"
RESTARTING: Final = "restarting"
FINISHED: Final = "finished"
GAVE_UP: Final = "gave up"
STOPPED: Final = "stopped"


def _flatten(model: BaseModel, prefix: str, env: dict[str, str]) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name.upper()}"
        if value is None:
            continue
        if isinstance(value, BaseModel):
            _flatten(value, f"{key}__", env)
        elif isinstance(value, SecretStr):
            env[key] = value.get_secret_value()
        elif isinstance(value, bool):
            env[key] = str(value).lower()
        elif isinstance(value, list | tuple | dict):
            env[key] = json.dumps(value)  # pydantic-settings parses complex values as JSON
        else:
            env[key] = str(value)


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``TRADELOOP_*`` variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}
    _flatten(settings, "TRADELOOP_", env)
    return env


@dataclass
class Child:
    """One component process and its restart state."""

    name: str
    args: list[str]
    log_path: Path
    restartable: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    state: str = RUNNING
    restarts: int = 0
    restart_at: float | None = None
    restart_reason: str | None = None
    stopping_since: float | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def describe(self, now: float) -> str:
        """The state for people: ``running``, ``restarting in 4 s``, ``gave up``..."""
        if self.state == RESTARTING and self.restart_at is not None:
            return f"restarting in {max(0.0, self.restart_at - now):.0f} s"
        return self.state


@dataclass(frozen=True, slots=True)
class Event:
    """A change the supervisor made or saw: ``kind`` is exited, restarted, finished or gave_up."""

    child: str
    kind: str
    message: str


def _sweep(child: Child) -> None:
    """Kill what is left of an exited child's process group (a component's own children, e.g. Ray's
    agents, that did not stop with it). Each child leads its own session and group (pgid = its pid),
    and Linux does not reuse a pid while a group of that id has members."""
    if child.process is None or child.process.poll() is None:
        return
    try:
        os.killpg(child.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return  # the group is empty: nothing was left behind
    log.warning("killed what %s left running in its process group", child.name)


class Supervisor:
    """Starts children, applies the restart policy in :meth:`supervise`, stops all of them."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        policy: SupervisorSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.policy = policy or settings.supervisor
        self.children: list[Child] = []
        self._clock = clock
        self._on_change = on_change
        self._requests: dict[str, str] = {}
        self._lock = threading.Lock()
        log_dir.mkdir(parents=True, exist_ok=True)

    # -- starting ---------------------------------------------------------------------------
    def start(
        self, name: str, args: list[str], extra_env: dict[str, str] | None = None, restartable: bool = True
    ) -> Child:
        """Start ``tradeloop <args>`` as child ``name`` (its output appended to ``<log_dir>/<name>.log``)."""
        child = Child(name, args, self.log_dir / f"{name}.log", restartable, extra_env or {})
        self._spawn(child)
        self.children.append(child)
        self._changed()
        return child

    def _spawn(self, child: Child) -> None:
        # The parent's environment minus TRADELOOP_* (replaced by the resolved settings).
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
        env.update(settings_env(self.settings))
        env.update(child.extra_env)
        command = [sys.executable, "-m", "tradeloop", "--parent-pid", str(os.getpid()), *child.args]
        with open(child.log_path, "ab") as output:
            child.process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor, which stops children
                preexec_fn=die_with_parent,
            )
        child.state, child.restart_at, child.stopping_since = RUNNING, None, None
        log.info("started %s (pid %s): tradeloop %s", child.name, child.process.pid, " ".join(child.args))

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # -- the policy -------------------------------------------------------------------------
    def backoff(self, restarts: int) -> float:
        """Seconds before restart number ``restarts + 1``."""
        policy = self.policy
        return float(min(policy.restart_backoff_max_seconds, policy.restart_backoff_seconds * 2.0**restarts))

    def request_restart(self, name: str, reason: str) -> Child:
        """Ask for child ``name`` to be restarted now (any thread): it is stopped with SIGTERM here
        and started again by the next :meth:`supervise`, without backoff.

        Raises:
            KeyError: no child of that name.
        """
        child = next((c for c in self.children if c.name == name), None)
        if child is None:
            raise KeyError(name)
        with self._lock:
            self._requests[name] = reason
        if child.alive and child.process is not None:
            child.process.send_signal(signal.SIGTERM)
        return child

    def supervise(self) -> list[Event]:
        """One step of the policy: notice exits, restart what is due, give up what failed too often.

        Call it from the thread that started the children, about once a second.
        """
        now = self._clock()
        with self._lock:
            requests, self._requests = self._requests, {}
        events: list[Event] = []
        for child in self.children:
            reason = requests.get(child.name)
            if reason is not None and child.state in (RUNNING, RESTARTING):
                child.restart_reason, child.stopping_since = reason, now
            events += self._step(child, now)
        if events:
            self._changed()
        return events

    def _step(self, child: Child, now: float) -> list[Event]:
        process = child.process
        if child.state == RESTARTING and child.restart_at is not None and now >= child.restart_at:
            child.restarts += 1
            self._spawn(child)
            return [Event(child.name, "restarted", f"{child.name} restarted (pid {child.pid}, restart "
                                                   f"{child.restarts} of {self.policy.max_restarts})")]  # fmt: skip
        if child.state != RUNNING or process is None:
            return []
        code = process.poll()
        if code is None:
            if child.stopping_since is not None and now - child.stopping_since > self._kill_after:
                log.warning(
                    "%s did not stop within %.0fs of SIGTERM; killing it", child.name, self._kill_after
                )
                process.kill()
            return []
        _sweep(child)
        if child.restart_reason is not None:  # asked for: restart at once, counted like any restart
            reason, child.restart_reason = child.restart_reason, None
            child.state, child.restart_at = RESTARTING, now
            return [Event(child.name, "exited", f"{child.name} stopped (code {code}) to restart: {reason}")]
        if code == 0:
            child.state = FINISHED
            return [Event(child.name, "finished", f"{child.name} finished (exit code 0)")]
        where = f"see {child.log_path}"
        if not child.restartable or child.restarts >= self.policy.max_restarts:
            child.state = GAVE_UP
            tried = f"after {child.restarts} restarts" if child.restartable else "(not restartable)"
            return [
                Event(child.name, "gave_up", f"{child.name} exited with {code}; gave up {tried}; {where}")
            ]
        wait = self.backoff(child.restarts)
        child.state, child.restart_at = RESTARTING, now + wait
        return [
            Event(
                child.name, "exited", f"{child.name} exited with {code}; restarting in {wait:.0f} s; {where}"
            )
        ]

    @property
    def _kill_after(self) -> float:
        return self.settings.stop_grace_seconds + self.policy.kill_after_seconds

    def exited(self) -> list[Child]:
        """Children whose current process has exited (whatever the policy does next)."""
        return [c for c in self.children if c.process is not None and c.process.poll() is not None]

    @property
    def gave_up(self) -> list[Child]:
        return [c for c in self.children if c.state == GAVE_UP]

    def pids(self) -> dict[str, int]:
        """Child name -> pid of every running child."""
        return {c.name: c.pid for c in self.children if c.alive and c.pid is not None}

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, timeout: float | None = None) -> dict[str, int | None]:
        """SIGTERM every running child at once (newest first), SIGKILL what still runs after
        ``timeout`` (default: their stop grace plus ``kill_after_seconds``). Returns exit codes."""
        timeout = self._kill_after if timeout is None else timeout
        for child in reversed(self.children):
            if child.alive and child.process is not None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                codes[child.name] = child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", child.name, timeout)
                child.process.kill()
                codes[child.name] = child.process.wait()
            _sweep(child)
            if child.state in (RUNNING, RESTARTING):
                child.state = STOPPED
        self._changed()
        return codes

"""Process lifetime: a child dies with its parent, and a process stops within a bound after SIGTERM.

Two guarantees every tradeloop process relies on:

* **No orphans.** A supervised child (a component under ``tradeloop up``, the embedded broker) is
  started with :func:`die_with_parent` as its ``preexec_fn``: Linux sends it SIGTERM when the
  thread that started it dies, even by SIGKILL (``prctl(PR_SET_PDEATHSIG)``). Because that signal
  follows the *thread*, supervisors start children from their main thread only. As a fallback (other
  platforms, a parent that died before the child ran) a Python child also runs
  :func:`watch_parent`, which sends itself SIGTERM once its parent pid changes.
* **Bounded stops.** :class:`StopDeadline` is armed by the first stop signal: if the process has not
  exited ``seconds`` later (a flush to an unreachable broker, a client's close, a Faust service
  waiting on a request), it dumps every thread's stack to stderr, which lands in its log, kills
  what it left in its process group and exits with status 1. :func:`on_stop_signals` arms it for
  components that handle signals with ``signal.signal``; :func:`deadline_event_loop` does it for
  asyncio applications (Faust) that install their own handlers on the loop. Once a command has
  finished, :func:`exit_within` ignores further stop signals and bounds the exit itself.

Where a process is stuck shows without stopping it: :func:`dump_stacks_on` (SIGUSR1 in every
``tradeloop`` process) writes every thread's stack to its log.

Example:
    >>> deadline = StopDeadline(8.0)
    >>> deadline.armed
    False
    >>> on_stop_signals(lambda: None, deadline)          # doctest: +SKIP
    >>> subprocess.Popen(cmd, preexec_fn=die_with_parent)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "STOP_SIGNALS",
    "StopDeadline",
    "deadline_event_loop",
    "die_with_parent",
    "dump_stacks_on",
    "exit_within",
    "kill_group_leftovers",
    "on_stop_signals",
    "outside_handler",
    "watch_parent",
]

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""Signals that ask a tradeloop process to stop cleanly."""

_PR_SET_PDEATHSIG = 1
# Resolved before any fork: the preexec function only calls it (no imports, no allocation of note).
try:
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
    _PRCTL = None


def die_with_parent() -> None:
    """``preexec_fn`` of a child that must not outlive its parent: SIGTERM when the parent dies.

    Runs in the child between fork and exec. Linux only; elsewhere a no-op (the parent watch of a
    Python child still covers it). The kernel sends the signal when the *thread* that forked the
    child exits, so fork from a thread that lives as long as the process (the main thread).
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def dump_stacks_on(signum: int = signal.SIGUSR1) -> None:
    """Write every thread's stack to stderr (the process's log) when ``signum`` arrives.

    ``faulthandler`` does it from its C signal handler, so it works when no Python code can run:
    a main thread stuck in a C call, a thread that holds the GIL, a deadlock. ``kill -USR1 <pid>``
    on a process that does not stop shows where it is.
    """
    faulthandler.register(signum, file=sys.stderr, all_threads=True)


def watch_parent(parent_pid: int, interval: float = 0.5) -> threading.Thread:
    """Send this process SIGTERM once its parent is no longer ``parent_pid`` (it died).

    The fallback of :func:`die_with_parent`: also covers a parent that died before the child set
    its death signal. A parent that is already gone when this is called stops the process at once.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        log.warning("parent process %d is gone; stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def kill_group_leftovers() -> int:
    """SIGKILL every other process of this process's group, when this process leads the group.

    A component started by a supervisor leads its own process group; processes it started and
    that outlive it there (Ray's agents, whose raylet died first) would otherwise linger. Returns
    how many were killed; does nothing (0) for a process that does not lead its group, such as a
    command run from a script whose group the script leads.
    """
    me = os.getpid()
    if os.getpgrp() != me or not os.path.isdir("/proc"):
        return 0
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                group = int(stat.read().rsplit(")", 1)[1].split()[2])
            if group == me:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not ours to read
            continue
    return killed


class StopDeadline:
    """Exit the process ``seconds`` after the first stop signal if it has not exited by itself.

    The exit is hard: every thread's stack goes to stderr (the process's log), what the process left
    in its process group is killed (:func:`kill_group_leftovers`), then ``_exit(1)``; so whatever
    still blocks is visible and cannot hold the process. Should even that thread not get to run (a
    C call that never releases the GIL), ``faulthandler`` does the dump and the exit a moment later.
    """

    BACKSTOP_SECONDS = 2.0

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def arm(self, signum: int | None = None) -> None:
        """Start the countdown (only the first call counts)."""
        with self._lock:
            if self.armed:
                return
            self.armed = True
        name = signal.Signals(signum).name if signum is not None else "stop"
        log.info("%s: stopping; exiting without finishing if still running in %.0fs", name, self.seconds)
        faulthandler.dump_traceback_later(self.seconds + self.BACKSTOP_SECONDS, file=sys.stderr, exit=True)
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        # No logging here: a lock another thread holds (the one that blocks) must not stop the exit.
        sys.stderr.write(f"stop deadline of {self.seconds:.0f}s passed: exiting without finishing\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        kill_group_leftovers()
        os._exit(1)

    def cancel(self) -> None:
        """Stop the countdown (the process finished stopping and goes on, e.g. in tests)."""
        if self._timer is not None:
            self._timer.cancel()
        faulthandler.cancel_dump_traceback_later()
        self.armed = False


def outside_handler(callback: Callable[[], None]) -> None:
    """Run ``callback`` on a thread of its own: what a signal handler does that may take a lock.

    Python runs a signal handler in the main thread between two bytecodes, possibly while that
    thread holds the lock of the very ``threading.Event`` the handler would set (for a moment
    inside every ``stop.wait(...)``): setting it there deadlocks the thread on itself.
    """
    threading.Thread(target=callback, name="stop-signal", daemon=True).start()


def on_stop_signals(callback: Callable[[], None], deadline: StopDeadline | None = None) -> None:
    """Call ``callback`` on SIGTERM, SIGINT and SIGHUP, and arm ``deadline`` (main thread only).

    The callback runs through :func:`outside_handler`.
    """

    def handler(signum: int, _frame: object) -> None:
        if deadline is not None:
            deadline.arm(signum)
        outside_handler(callback)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def exit_within(seconds: float) -> None:
    """For a process whose work is done: ignore stop signals from now on, and end it (SIGALRM)
    should its exit take longer than ``seconds``.

    CPython resets every signal with a Python handler to the default action while the interpreter
    finalises, so a supervisor's second SIGTERM arriving then would end a clean stop with -15 instead
    of its exit code; an ignored signal stays ignored. Since a stop signal can then no longer end
    an exit that hangs (an atexit hook, a client's destructor waiting on a broker that is gone), the
    kernel's interval timer does: SIGALRM's default action ends the process, status -14, whatever
    its threads hold. Main thread only; elsewhere it does nothing.
    """
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, seconds)


def deadline_event_loop(
    deadline: StopDeadline, base: type[asyncio.AbstractEventLoop] = asyncio.SelectorEventLoop
) -> asyncio.AbstractEventLoop:
    """A new event loop of class ``base`` that arms ``deadline`` when a stop signal reaches a
    handler installed with ``loop.add_signal_handler``.

    For asyncio applications that install their own signal handlers on the loop (Faust's worker
    does): the application still handles the signal as it always does, and the deadline bounds how
    long its shutdown may take. ``base`` is any loop class with the standard
    ``add_signal_handler`` (asyncio's, ``uvloop.Loop``).
    """

    class DeadlineLoop(base):  # type: ignore[valid-type,misc]
        def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
            if sig not in STOP_SIGNALS:
                super().add_signal_handler(sig, callback, *args)
                return

            def armed(*given: Any) -> None:
                deadline.arm(sig)
                callback(*given)

            super().add_signal_handler(sig, armed, *args)

    DeadlineLoop.__name__ = DeadlineLoop.__qualname__ = f"Deadline{base.__name__}"
    return DeadlineLoop()

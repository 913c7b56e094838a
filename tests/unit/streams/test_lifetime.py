"""Process lifetime: children die with their parent, stop signals end a process within its deadline.

Real processes, no network: small Python scripts stand in for components.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux's")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def python(script: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


def wait_gone(pid: int, seconds: float) -> float:
    started = time.monotonic()
    while alive(pid):
        assert time.monotonic() - started < seconds, f"pid {pid} still runs after {seconds}s"
        time.sleep(0.05)
    return time.monotonic() - started


PARENT = """
    import subprocess, sys, time
    from streams.lifetime import die_with_parent
    child = subprocess.Popen([sys.executable, "-c", {child!r}], {preexec})
    print(child.pid, flush=True)
    time.sleep(120)
"""
SLEEPER = "import time; time.sleep(120)"
WATCHER = "import os, time; from streams.lifetime import watch_parent; watch_parent(os.getppid(), 0.05); time.sleep(120)"


@LINUX
def test_a_child_started_with_die_with_parent_gets_sigterm_when_its_parent_is_killed() -> None:
    parent = python(PARENT.format(child=SLEEPER, preexec="preexec_fn=die_with_parent"))
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait()
    assert wait_gone(child, 5.0) < 5.0


@LINUX
def test_without_a_death_signal_the_parent_watch_stops_the_child() -> None:
    parent = python(PARENT.format(child=WATCHER, preexec=""))
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(0.5)  # the watch has started
    parent.kill()
    parent.wait()
    wait_gone(child, 5.0)


@LINUX
def test_control_the_plain_child_outlives_its_killed_parent() -> None:
    """Without either mechanism the child survives: the two tests above test something."""
    parent = python(PARENT.format(child=SLEEPER, preexec=""))
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    time.sleep(1.0)
    try:
        assert alive(child)
    finally:
        os.kill(child, signal.SIGKILL)


STUCK = """
    import subprocess, sys, threading, time
    from streams.lifetime import StopDeadline, on_stop_signals
    stopping = threading.Event()
    on_stop_signals(stopping.set, StopDeadline(1.0))
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # left behind
    print("ready", helper.pid, flush=True)
    while True:  # a stop that never finishes: a flush to a broker that never answers
        time.sleep(0.1)
"""
STUCK_ASYNCIO = """
    import asyncio
    from streams.lifetime import StopDeadline, deadline_event_loop
    loop = deadline_event_loop(StopDeadline(1.0))
    asyncio.set_event_loop(loop)
    stopping = []

    async def app():  # installs its own handler and then takes forever to stop, as Faust can
        asyncio.get_running_loop().add_signal_handler(15, stopping.append, "SIGTERM")
        print("ready", 0, flush=True)
        while True:
            await asyncio.sleep(0.1)

    loop.run_until_complete(app())
"""
STUCK_UVLOOP = STUCK_ASYNCIO.replace(
    "deadline_event_loop(StopDeadline(1.0))",
    "deadline_event_loop(StopDeadline(1.0), __import__('uvloop').Loop)",
)


@pytest.mark.parametrize(
    ("script", "signum"),
    [
        (STUCK, signal.SIGTERM),
        (STUCK, signal.SIGINT),
        (STUCK, signal.SIGHUP),
        (STUCK_ASYNCIO, signal.SIGTERM),
        (STUCK_UVLOOP, signal.SIGTERM),
    ],
    ids=["handler-SIGTERM", "handler-SIGINT", "handler-SIGHUP", "asyncio-SIGTERM", "uvloop-SIGTERM"],
)
def test_a_stop_that_hangs_ends_at_the_deadline_with_a_stack_dump(
    script: str, signum: signal.Signals
) -> None:
    process = python(script, start_new_session=True)  # leads its group, as a supervised component does
    assert process.stdout is not None
    ready, helper = process.stdout.readline().split()
    assert ready == "ready"
    started = time.monotonic()
    process.send_signal(signum)
    _, err = process.communicate(timeout=10)
    elapsed = time.monotonic() - started
    assert process.returncode == 1, err
    assert 0.9 <= elapsed < 4.0
    assert "stop deadline of 1s passed" in err and "most recent call first" in err  # the stuck threads
    if int(helper):
        wait_gone(int(helper), 2.0)  # what it left in its process group went with it


@LINUX
def test_kill_group_leftovers_kills_the_group_only_for_its_leader() -> None:
    script = """
        import subprocess, sys
        from streams.lifetime import kill_group_leftovers
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print(child.pid, kill_group_leftovers(), flush=True)
        child.wait()
    """
    leader = python(script, start_new_session=True)
    out, _ = leader.communicate(timeout=20)
    child, killed = map(int, out.split())
    assert killed == 1 and not alive(child)
    follower = python(script)  # in pytest's group, which it does not lead: it must kill nothing
    assert follower.stdout is not None
    child, killed = map(int, follower.stdout.readline().split())
    try:
        assert killed == 0 and alive(child)
    finally:
        os.kill(child, signal.SIGKILL)
        follower.wait()


def test_a_stop_signal_that_interrupts_a_wait_on_the_stop_event_does_not_deadlock() -> None:
    # Python runs the handler between two bytecodes of the main thread; here that thread holds the
    # lock of the very Event the callback sets, as it does for a moment inside `stop.wait(0.5)`.
    script = """
        import os, signal, threading
        from streams.lifetime import on_stop_signals
        stop = threading.Event()
        on_stop_signals(stop.set)
        with stop._cond:
            os.kill(os.getpid(), signal.SIGTERM)
            (lambda: None)()  # a Python call: the pending handler runs here, with the lock held
        print("stopped", stop.wait(5.0), flush=True)
    """
    process = python(script)
    try:
        out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the stop handler deadlocked on the stop event's lock")
    assert process.returncode == 0, err
    assert out.strip() == "stopped True"


def test_exit_within_ignores_stop_signals_and_ends_an_exit_that_hangs() -> None:
    script = """
        import atexit, time
        from streams.lifetime import exit_within
        atexit.register(time.sleep, 120)  # an exit that never finishes by itself
        exit_within(1.0)
        print("done", flush=True)
    """
    process = python(script)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "done"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)  # ignored: it must neither end it nor change how it ends
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGALRM
    assert 0.5 < time.monotonic() - started < 3.0


@LINUX
def test_dump_stacks_on_sigusr1_works_while_the_main_thread_is_stuck() -> None:
    script = """
        import threading
        from streams.lifetime import dump_stacks_on
        dump_stacks_on()

        def stuck_forever():
            lock = threading.Lock()
            lock.acquire()
            print("ready", flush=True)
            lock.acquire()  # never returns: nothing in Python would run a handler here

        stuck_forever()
    """
    process = python(script)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().strip() == "ready"
    try:
        process.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        assert process.poll() is None  # a dump, not an exit
    finally:
        process.kill()
    _, err = process.communicate(timeout=10)
    assert "most recent call first" in err and "stuck_forever" in err, err

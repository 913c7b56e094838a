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

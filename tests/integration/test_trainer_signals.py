"""A trainer that is stopping still handles a second stop signal after Ray has shut down.

Ray's C++ failure-signal handler covers SIGTERM, and ``ray.shutdown()`` sets SIGTERM back to the
default action beneath Python's handler: a supervisor's second SIGTERM then killed a trainer that
was stopping cleanly (-15 instead of 0, seen in CI). Each case runs in a fresh interpreter, since
Ray reads the switch once, when it is imported, and a process starts Ray once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.kit.components import ROOT

pytestmark = [pytest.mark.integration]

# Starts a local Ray, hands SIGTERM to Python, shuts Ray down, then signals itself.
STOP_AFTER_SHUTDOWN = textwrap.dedent(
    """
    import os, signal, time
    from streams.settings import Settings
    from trainers.rl.ppo import ensure_ray, shutdown_ray
    handled = []
    ensure_ray(Settings().trainer)
    signal.signal(signal.SIGTERM, lambda signum, frame: handled.append(signum))
    shutdown_ray()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
    print("handled", handled, flush=True)
    """
)


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"}
    return subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, cwd=ROOT, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


def test_importing_the_trainer_turns_rays_failure_signal_handler_off() -> None:
    done = run("import trainers.rl.ppo, ray._private.ray_constants as ray_constants; "
               "print(ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER)")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"


@pytest.mark.parametrize("failure_handler", ["off by default", "on by the environment"])
def test_a_stop_signal_after_ray_shutdown_reaches_the_handler(failure_handler: str) -> None:
    env = {"RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "0"} if failure_handler.startswith("on") else {}
    done = run(STOP_AFTER_SHUTDOWN, **env)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "handled [15]" in done.stdout, done.stdout

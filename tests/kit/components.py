"""Starting tradeloop components as child processes for the fault tests, and waiting on them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from streams.settings import Settings

__all__ = ["ROOT", "component_env", "spawn", "stop_child", "wait_until"]

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def component_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``python -m tradeloop`` child that talks to ``settings``' broker and topics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
    env.update(
        TRADELOOP_KAFKA_BOOTSTRAP=settings.bootstrap,
        TRADELOOP_TOPIC_PREFIX=settings.topic_prefix,
        TRADELOOP_DATA_DIR=str(settings.data_dir),
        TRADELOOP_METRICS_ENABLED="false",
        **extra,
    )
    return env


def spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m tradeloop ARGS`` in its own session (so a kill reaches its Ray children too)."""
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tradeloop", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=ROOT, start_new_session=True,
        )  # fmt: skip


def stop_child(child: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM, then SIGKILL of the child's whole process group when it does not stop in time."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return child.returncode

"""Runs tradeloop components as child processes and stops them all together.

Each component is ``python -m tradeloop <args>`` with the parent's settings passed through the
environment, so a child sees exactly the configuration the parent was given.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, SecretStr

from streams.settings import Settings

__all__ = ["Child", "Supervisor", "settings_env"]

log = logging.getLogger(__name__)


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
    """One component process."""

    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Starts children, reports ones that exit, and stops all of them on request."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Child:
        child = Child(name, args, self.log_dir / f"{name}.log", extra_env=extra_env or {})
        self._spawn(child)
        self.children.append(child)
        return child

    def _spawn(self, child: Child) -> None:
        # The parent's environment minus TRADELOOP_* (replaced by the resolved settings).
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
        env.update(settings_env(self.settings))
        env.update(child.extra_env)
        with open(child.log_path, "ab") as output:
            child.process = subprocess.Popen(
                [sys.executable, "-m", "tradeloop", *child.args],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
            )
        log.info("started %s (pid %s): tradeloop %s", child.name, child.process.pid, " ".join(child.args))

    def exited(self) -> list[Child]:
        return [c for c in self.children if c.process is not None and c.process.poll() is not None]

    def restart(self, child: Child) -> None:
        child.restarts += 1
        self._spawn(child)

    def stop(self, timeout: float = 15.0) -> dict[str, int | None]:
        """SIGTERM every child (newest first), SIGKILL what is still running after ``timeout``."""
        for child in reversed(self.children):
            if child.alive:
                assert child.process is not None
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
        return codes

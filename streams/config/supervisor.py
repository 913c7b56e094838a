"""Settings of the supervisor that runs components as child processes (``tradeloop up``)."""

from __future__ import annotations

from pydantic import Field

from streams.config.base import Section

__all__ = ["SupervisorSettings"]


class SupervisorSettings(Section):
    """The one restart policy: restart a failed child with backoff, give up after ``max_restarts``."""

    max_restarts: int = Field(
        default=3,
        ge=0,
        description="restarts of one child before the supervisor gives up on it (and up fails)",
    )
    restart_backoff_seconds: float = Field(
        default=2.0, ge=0, description="wait before the first restart; doubles with every further restart"
    )
    restart_backoff_max_seconds: float = Field(
        default=30.0, ge=0, description="longest wait before a restart"
    )
    kill_after_seconds: float = Field(
        default=5.0,
        gt=0,
        description="SIGKILL a child this long after its own stop_grace_seconds passed without it exiting",
    )

"""The settings ``tradeloop up`` derives from the simulator's speed, so both learners live in one run.

The defaults suit a real engine: an allocation period is 300 s of event time and the inference
workers publish strategy weights every 300 s of wall time. At ``up``'s x20 a period then lasts
15 s of wall time: a five-minute run closes about 30 periods, too few to train an allocator (it
needs ``min_train_periods`` / (1 - hold-out) = 134 pairs), and the engine would receive one set of
weights. So ``up`` sets, for each field nobody set explicitly (flag or ``TRADELOOP_*`` variable):

* ``agents.allocation_period_seconds`` = 1.5 s of wall time at the run's speed, at least 30 s and at
  most 300 s of event time (x20: 30 s, so the 2,500-pair warm-up alone closes about 80 periods and
  the live run 40 per minute; at ``max`` speed, 300 s);
* ``inference.weights_interval_seconds`` = 4 periods of wall time, at least 5 s (x20: 6 s), so the
  engine receives weights several times a minute and they follow the allocator's decisions.

Measured offline on the simulator's seed 1 (``up``'s), the allocator passes its gate with 30 s
periods from about 4,500 signals (176 periods, about 75 minutes of event time): within the first
three minutes of ``up``.

Example:
    >>> paced = up_settings(Settings(), "x20")
    >>> paced.agents.allocation_period_seconds, paced.inference.weights_interval_seconds
    (30.0, 6.0)
    >>> up_settings(Settings(), "x100").agents.allocation_period_seconds
    150.0
    >>> up_settings(Settings(agents={"allocation_period_seconds": 60}), "x20").agents.allocation_period_seconds
    60.0
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel

from streams.settings import Settings
from streams.simulator.runner import parse_speed

__all__ = ["PERIOD_WALL_SECONDS", "up_settings"]

PERIOD_WALL_SECONDS: Final = 1.5
"""Wall-clock length of one allocation period under ``up``."""
MIN_PERIOD_SECONDS: Final = 30.0  # event time: a few outcomes per strategy in every period
MAX_PERIOD_SECONDS: Final = 300.0  # the production default: never longer than that
WEIGHTS_EVERY_PERIODS: Final = 4
MIN_WEIGHTS_INTERVAL_SECONDS: Final = 5.0


def _unset(section: BaseModel, name: str) -> bool:
    return name not in section.model_fields_set


def up_settings(settings: Settings, speed: str) -> Settings:
    """``settings`` with the allocation period and weights interval paced for ``speed``.

    Fields set explicitly keep their value.

    Raises:
        ConfigError: ``speed`` is not ``max``, ``realtime`` or ``xK``.
    """
    factor = parse_speed(speed)  # None: as fast as possible
    period = MAX_PERIOD_SECONDS if factor is None else PERIOD_WALL_SECONDS * factor
    period = min(MAX_PERIOD_SECONDS, max(MIN_PERIOD_SECONDS, period))
    agents, inference = settings.agents, settings.inference
    if _unset(agents, "allocation_period_seconds"):
        agents = agents.model_copy(update={"allocation_period_seconds": period})
    wall = agents.allocation_period_seconds / (factor or agents.allocation_period_seconds)
    if _unset(inference, "weights_interval_seconds"):
        interval = max(MIN_WEIGHTS_INTERVAL_SECONDS, WEIGHTS_EVERY_PERIODS * wall)
        inference = inference.model_copy(update={"weights_interval_seconds": round(interval, 3)})
    return settings.model_copy(update={"agents": agents, "inference": inference})

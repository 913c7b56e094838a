"""``tradeloop up`` paces the allocation period and the weights interval for the simulator's speed."""

from __future__ import annotations

import pytest

from streams.errors import ConfigError
from streams.settings import Settings
from tradeloop.ops.pace import up_settings


@pytest.mark.parametrize(
    ("speed", "period", "interval"),
    [("x20", 30.0, 6.0), ("x10", 30.0, 12.0), ("x100", 150.0, 6.0), ("x1000", 300.0, 5.0),
     ("max", 300.0, 5.0), ("realtime", 30.0, 120.0)],
)  # fmt: skip
def test_periods_last_a_moment_of_wall_time_within_bounds(speed: str, period: float, interval: float) -> None:
    paced = up_settings(Settings(), speed)
    assert paced.agents.allocation_period_seconds == period
    assert paced.inference.weights_interval_seconds == interval
    assert paced.agents.join_grace_seconds == Settings().agents.join_grace_seconds  # nothing else moves


def test_explicit_settings_win() -> None:
    given = Settings(agents={"allocation_period_seconds": 120}, inference={"weights_interval_seconds": 60})
    paced = up_settings(given, "x20")
    assert paced.agents.allocation_period_seconds == 120 and paced.inference.weights_interval_seconds == 60


def test_a_bad_speed_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        up_settings(Settings(), "fast")

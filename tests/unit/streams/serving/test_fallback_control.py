"""The score rule and the control switches."""

from __future__ import annotations

import math

import pytest

from streams.serving.control import (
    FORCE_FALLBACK,
    FREEZE_UPDATES,
    RELEASE_FALLBACK,
    UNFREEZE_UPDATES,
    ControlState,
    control_record,
)
from streams.serving.fallback import rule_multiplier


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.81, 1.5), (0.8, 1.0), (0.4, 1.0), (0.39, 0.5), (0.0, 0.5), (1.0, 1.5), (math.nan, 1.0)],
)
def test_score_rule(score: float, expected: float) -> None:
    assert rule_multiplier(score, 0.25, 2.0) == expected


def test_score_rule_stays_within_configured_bounds() -> None:
    assert rule_multiplier(0.9, 0.25, 1.2) == 1.2
    assert rule_multiplier(0.1, 0.75, 2.0) == 0.75


def test_control_commands_apply_to_all_or_this_worker_only() -> None:
    state = ControlState("w1")
    assert not state.apply(control_record(FORCE_FALLBACK, scope="w2"))
    assert not state.kill_switch
    assert state.apply(control_record(FORCE_FALLBACK, scope="w1"))
    assert state.kill_switch and not state.frozen
    assert not state.apply(control_record(FORCE_FALLBACK))  # already on: no change
    assert state.apply(control_record(FREEZE_UPDATES))
    assert state.frozen
    assert state.apply(control_record(RELEASE_FALLBACK)) and not state.kill_switch
    assert state.apply(control_record(UNFREEZE_UPDATES)) and not state.frozen
    assert state.info() == {"frozen": "false", "kill_switch": "false"}

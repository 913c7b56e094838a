"""Fixtures of the trainer's unit tests: synthetic Experience records (from the test kit), no network."""

from __future__ import annotations

import pytest

from tests.kit.trainers.records import MakeRecord, make_record


@pytest.fixture()
def record() -> MakeRecord:
    return make_record



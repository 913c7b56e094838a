"""The sizer's run data: chronological split, reward scale, data hash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streams.config.trainer import TrainerSettings
from tests.kit.trainers.records import bandit_records
from trainers.errors import NotEnoughDataError
from trainers.run.norm import NormStats
from trainers.sizer.data import RunData, chronological_split, data_hash, prepare
from trainers.store.replay import ReplayStore


@pytest.fixture()
def rows(tmp_path: Path):  # type: ignore[no-untyped-def]
    records, _ = bandit_records(400)
    with ReplayStore(tmp_path / "r.sqlite") as store:
        store.write(records)
        return store.trainable()


def test_split_is_chronological(rows) -> None:  # type: ignore[no-untyped-def]
    train, hold = chronological_split(rows, 0.25)
    assert len(train) == 300 and len(hold) == 100
    assert train.ts.max() < hold.ts.min()


def test_prepare_and_roundtrip(rows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train, _ = chronological_split(rows, 0.25)
    data = prepare(train, NormStats.fit(train.state), TrainerSettings(min_train_rows=100))
    assert np.isclose(data.ret.std(), 1.0) and data.var_level > 0
    assert np.isclose(np.dot(data.probs, data.weights), 1.0)
    data.save(tmp_path / "d.npz")
    again = RunData.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(again.obs, data.obs)
    with pytest.raises(NotEnoughDataError):
        prepare(train, NormStats.fit(train.state), TrainerSettings(min_train_rows=1000))


def test_data_hash_changes_with_any_row(rows) -> None:  # type: ignore[no-untyped-def]
    assert data_hash(rows) == data_hash(rows.take(slice(None)))
    assert data_hash(rows) != data_hash(rows.take(slice(1, None)))

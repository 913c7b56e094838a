"""The replay store: de-duplication, corrections, censored rows, offsets, retention, restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from streams.features import SIZER_SPEC
from tests.kit.trainers.records import MakeRecord
from trainers.store.data_export import export_store
from trainers.store.replay import ReplayStore, validate_experience
from trainers.store.sqlite import WriteResult


@pytest.fixture()
def store(tmp_path: Path) -> ReplayStore:
    return ReplayStore(tmp_path / "replay.sqlite")


def test_duplicates_within_and_across_batches_are_ignored(store: ReplayStore, record: MakeRecord) -> None:
    first = store.write([record(1), record(2), record(1)])
    again = store.write([record(1), record(2)])
    assert first == WriteResult(inserted=2, corrected=0, duplicates=1, censored=0)
    assert again == WriteResult(inserted=0, corrected=0, duplicates=2, censored=0)
    assert store.count() == 2


def test_correction_replaces_censored_row_and_becomes_trainable(
    store: ReplayStore, record: MakeRecord
) -> None:
    store.write([record(1, status="CENSORED"), record(2)])
    assert store.count(trainable_only=True) == 1
    assert store.stats()["censored"] == 1
    seq_before = store.max_seq()
    result = store.write([record(1, status="CORRECTION", revision=1, ret=-0.002)])
    assert result.corrected == 1 and store.count() == 2
    rows = store.trainable()
    assert rows.signal_id == ["s1", "s2"]
    assert rows.return_unit[0] == pytest.approx(-0.002)
    assert store.count_since(seq_before) == 1
    # A late re-delivery of the censored record does not undo the correction.
    assert store.write([record(1, status="CENSORED")]).duplicates == 1
    assert store.count(trainable_only=True) == 2


def test_offsets_are_written_with_rows_and_only_move_forward(store: ReplayStore, record: MakeRecord) -> None:
    store.write([record(1)], {("t.experiences", 0): 5, ("t.experiences", 1): 3})
    store.write([record(1)], {("t.experiences", 0): 4})
    assert store.offsets("t.experiences") == {0: 5, 1: 3}


def test_rows_and_offsets_survive_reopening(tmp_path: Path, record: MakeRecord) -> None:
    path = tmp_path / "replay.sqlite"
    with ReplayStore(path) as store:
        store.write([record(i) for i in range(10)], {("t", 0): 10})
    with ReplayStore(path) as reopened:
        assert reopened.count() == 10
        assert reopened.offsets("t") == {0: 10}
        assert reopened.write([record(3)]).duplicates == 1
        np.testing.assert_array_equal(reopened.trainable().state[3], np.full(SIZER_SPEC.size, 3.0))


def test_trainable_is_chronological_and_limited_to_newest(store: ReplayStore, record: MakeRecord) -> None:
    store.write([record(i, ts=1000 - i) for i in range(20)])
    rows = store.trainable(limit=5)
    assert list(rows.ts) == sorted(rows.ts)
    assert list(rows.ts) == [996, 997, 998, 999, 1000]


def test_retention_drops_oldest_by_rows_and_by_age(store: ReplayStore, record: MakeRecord) -> None:
    store.write([record(i, ts=i * 1_000_000) for i in range(100)])
    assert store.enforce_retention(max_rows=60, max_age_us=10**15) == 40
    assert store.trainable().ts.min() == 40 * 1_000_000
    assert store.enforce_retention(max_rows=1000, max_age_us=9_500_000) == 50
    assert store.count() == 10


def test_validation_rejects_bad_records(record: MakeRecord) -> None:
    assert validate_experience(record(1)) is None
    assert validate_experience({**record(1), "feature_spec_version": "other"}) == "feature_spec_mismatch"
    assert validate_experience({**record(1), "state": [0.0, 1.0]}) == "state_size"
    bad = [float("nan")] * SIZER_SPEC.size
    assert validate_experience({**record(1), "state": bad}) == "non_finite_state"
    assert validate_experience({**record(1), "return_unit": None}) == "missing_return"
    assert validate_experience(record(1, status="CENSORED")) is None


def test_rejected_counts_are_kept(store: ReplayStore, record: MakeRecord) -> None:
    store.write([record(1)], rejected={"state_size": 2})
    assert store.counters()["rejected:state_size"] == 2


def test_served_by_selects_the_model_rows(store: ReplayStore, record: MakeRecord) -> None:
    store.write([record(i, model_version="v1" if i % 2 else None, action=1.5) for i in range(10)])
    rows = store.served_by("v1", limit=100)
    assert len(rows) == 5 and set(rows.model_version) == {"v1"}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_every_row(store: ReplayStore, record: MakeRecord, tmp_path: Path, fmt: str) -> None:
    store.write([record(1), record(2, status="CENSORED"), record(3, premium=True)])
    path = tmp_path / f"out.{fmt}"
    assert export_store(store, path, fmt) == 3  # type: ignore[arg-type]
    table = pq.read_table(path) if fmt == "parquet" else pacsv.read_csv(path)
    assert table.num_rows == 3
    if fmt == "parquet":
        assert len(table.column("state")[0].as_py()) == SIZER_SPEC.size
    else:
        assert f"state.{SIZER_SPEC.names[0]}" in table.column_names
    assert sorted(table.column("status").to_pylist()) == ["CENSORED", "COMPLETE", "COMPLETE"]

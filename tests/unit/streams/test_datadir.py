"""The data directory's layout is defined once: the trainer's stores and registry use it."""

from __future__ import annotations

from pathlib import Path

from streams.datadir import DataDir
from trainers.registry import ModelRegistry
from trainers.run.state import RunDir, TrainerState
from trainers.store.allocation import AllocationStore
from trainers.store.replay import ReplayStore
from trainers.store.trainlog import TrainLog


def test_the_trainer_keeps_its_files_where_datadir_says(tmp_path: Path) -> None:
    layout = DataDir(tmp_path)
    with ReplayStore.open(tmp_path) as replay, AllocationStore.open(tmp_path) as periods:
        assert replay.path == layout.experiences_db and periods.path == layout.periods_db
    assert layout.experiences_db.is_file() and layout.periods_db.is_file()
    assert ModelRegistry(tmp_path, "allocator").root == layout.model("allocator")
    log = TrainLog.open(tmp_path)
    assert log.path == layout.trainlog
    log.close()
    for model in ("sizer", "allocator"):
        assert TrainerState.path(tmp_path, model) == layout.trainer_state(model)
        assert RunDir.root(tmp_path, model) == layout.runs(model)

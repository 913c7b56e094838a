"""The data directory's layout is defined once: the trainer's stores and registry use it."""

from __future__ import annotations

import doctest
from pathlib import Path

from streams import datadir
from streams.datadir import DataDir
from trainers.allocator_data import AllocationStore
from trainers.registry import ModelRegistry
from trainers.replay import ReplayStore
from trainers.runstate import RunDir, TrainerState
from trainers.trainlog import TrainLog


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


def test_docstring_examples_run() -> None:
    failed, tried = doctest.testmod(datadir)
    assert tried > 0 and failed == 0

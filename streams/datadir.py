"""The data directory's layout, defined once: every path tradeloop keeps under ``Settings.data_dir``.

The trainer's stores and registry, the stream worker's table store, the operations tooling (its
recovery actions prune models and trim the replay store) and ``tradeloop up`` (logs, the pid
file) all name their paths through :class:`DataDir`, so a change of layout is one edit here.

Layout::

    <data_dir>/
        replay/experiences.sqlite          the replay store (trainers/replay.py)
        replay/allocation_periods.sqlite   the allocator's period store (trainers/allocator_data.py)
        models/<name>/                     the model registry of one model (trainers/registry.py)
        trainer/trainlog.sqlite            the training log (trainers/trainlog.py)
        trainer/[<model>/]state.json       what spans runs (the sizer's directly under trainer/)
        trainer/[<model>/]runs/<run_id>/   one run: its data split and checkpoints (trainers/runstate.py)
        agents/                            the stream worker's table store (RocksDB) and Faust's files
        logs/<component>.log               the output of each process ``tradeloop up`` runs
        up.json                            pids of the processes of a running ``tradeloop up``

Example:
    >>> d = DataDir(Path(".tradeloop"))
    >>> str(d.experiences_db), str(d.model("allocator")), str(d.runs("allocator"))
    ('.tradeloop/replay/experiences.sqlite', '.tradeloop/models/allocator', '.tradeloop/trainer/allocator/runs')
    >>> str(d.trainer_state("sizer")), str(d.log("worker"))
    ('.tradeloop/trainer/state.json', '.tradeloop/logs/worker.log')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

__all__ = ["DataDir"]


@dataclass(frozen=True, slots=True)
class DataDir:
    """Names every path under one data directory; creates nothing (each owner creates its own)."""

    root: Path

    EXPERIENCES: ClassVar[str] = "experiences.sqlite"
    PERIODS: ClassVar[str] = "allocation_periods.sqlite"
    SIZER: ClassVar[str] = "sizer"

    @property
    def replay(self) -> Path:
        """The directory of the trainer's SQLite stores."""
        return self.root / "replay"

    @property
    def experiences_db(self) -> Path:
        return self.replay / self.EXPERIENCES

    @property
    def periods_db(self) -> Path:
        return self.replay / self.PERIODS

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, name: str) -> Path:
        """The registry directory of model ``name`` (``sizer``, ``allocator``)."""
        return self.models / name

    @property
    def trainer(self) -> Path:
        return self.root / "trainer"

    @property
    def trainlog(self) -> Path:
        return self.trainer / "trainlog.sqlite"

    def trainer_dir(self, model: str = SIZER) -> Path:
        """Where the trainer keeps ``model``'s state and runs (the sizer's directly in ``trainer/``)."""
        return self.trainer if model == self.SIZER else self.trainer / model

    def trainer_state(self, model: str = SIZER) -> Path:
        return self.trainer_dir(model) / "state.json"

    def runs(self, model: str = SIZER) -> Path:
        """The run directories (data split, checkpoints) of ``model``."""
        return self.trainer_dir(model) / "runs"

    @property
    def agents(self) -> Path:
        """The stream worker's table store and Faust's own files."""
        return self.root / "agents"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    @property
    def up_pids(self) -> Path:
        """The pid file of a running ``tradeloop up`` (its own pid, the broker's, every child's)."""
        return self.root / "up.json"

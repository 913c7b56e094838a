"""Durable state of training runs: each run's directory and the trainer's counters between runs.

``<data_dir>/trainer/runs/<run_id>/`` holds ``run.json`` (status, mode, progress), the run's data
(``data.npz`` for the env, ``holdout.npz`` for the gate, ``norm.npz``) and the RLlib checkpoint
written after every iteration. A run whose ``run.json`` still says ``running`` was interrupted;
the next run resumes it on the same data from its last checkpoint.

``<data_dir>/trainer/state.json`` keeps what spans runs: the replay sequence number the last run
saw (so triggers count new experiences), when it finished, and runs since the last full retrain.

Those are the sizer's paths; another model (the allocator) keeps its runs and state under
``<data_dir>/trainer/<model>/``, so the two never resume each other's runs.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streams.datadir import DataDir
from trainers.run.norm import NormStats

__all__ = ["RunDir", "TrainerState"]


def _base(data_dir: Path, model: str) -> Path:
    return DataDir(data_dir).trainer_dir(model)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


@dataclass
class TrainerState:
    """Counters that span runs, persisted as JSON."""

    last_seq: int = 0
    last_finished_us: int | None = None
    runs: int = 0
    runs_since_full: int = 0
    failures: int = 0
    last_result: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def path(data_dir: Path, model: str = "sizer") -> Path:
        return _base(data_dir, model) / "state.json"

    @classmethod
    def load(cls, data_dir: Path, model: str = "sizer") -> TrainerState:
        path = cls.path(data_dir, model)
        if not path.exists():
            return cls()
        return cls(**json.loads(path.read_text()))

    def save(self, data_dir: Path, model: str = "sizer") -> None:
        path = self.path(data_dir, model)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, asdict(self))


class RunDir:
    """One run's directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def root(data_dir: Path, model: str = "sizer") -> Path:
        return _base(data_dir, model) / "runs"

    @classmethod
    def create(cls, data_dir: Path, run_id: str, info: dict[str, Any], model: str = "sizer") -> RunDir:
        run = cls(cls.root(data_dir, model) / run_id)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_info({"run_id": run_id, "status": "preparing", "iterations_done": 0, **info})
        return run

    @classmethod
    def interrupted(cls, data_dir: Path, model: str = "sizer") -> RunDir | None:
        """The newest run left ``running`` (or ``preparing`` with its data saved), if any."""
        root = cls.root(data_dir, model)
        if not root.is_dir():
            return None
        for path in sorted(root.iterdir(), reverse=True):
            run = cls(path)
            try:
                info = run.info()
            except (OSError, json.JSONDecodeError):
                continue
            if info.get("status") == "running":
                return run
        return None

    @property
    def data_path(self) -> Path:
        return self.path / "data.npz"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint"

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.path / "run.json").read_text())
        return info

    def write_info(self, info: dict[str, Any]) -> None:
        _write_json(self.path / "run.json", info)

    def update(self, **changes: Any) -> dict[str, Any]:
        info = {**self.info(), **changes}
        self.write_info(info)
        return info

    def save_holdout(self, norm: NormStats, **arrays: np.ndarray) -> None:
        with (self.path / "norm.npz").open("wb") as fh:
            np.savez(fh, mean=norm.mean, std=norm.std)
        with (self.path / "holdout.npz").open("wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]

    def load_holdout(self) -> tuple[NormStats, dict[str, np.ndarray]]:
        with np.load(self.path / "norm.npz") as norm:
            stats = NormStats(mean=norm["mean"], std=norm["std"])
        with np.load(self.path / "holdout.npz") as hold:
            return stats, {k: hold[k] for k in hold.files}

    def finish(self, status: str, **changes: Any) -> None:
        """Mark the run finished and drop its checkpoint (the registry keeps the weights)."""
        self.update(status=status, **changes)
        shutil.rmtree(self.checkpoint, ignore_errors=True)

    @classmethod
    def prune(cls, data_dir: Path, keep: int, model: str = "sizer") -> None:
        """Delete the directories of finished runs beyond the newest ``keep``."""
        root = cls.root(data_dir, model)
        if not root.is_dir():
            return
        finished = []
        for path in sorted(root.iterdir(), reverse=True):
            try:
                if cls(path).info().get("status") != "running":
                    finished.append(path)
            except (OSError, json.JSONDecodeError):
                finished.append(path)
        for path in finished[keep:]:
            shutil.rmtree(path, ignore_errors=True)

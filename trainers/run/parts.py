"""What a model kind and the generic training run (:mod:`trainers.run.pipeline`) hand each other.

A kind (the sizer, the allocator) builds a :class:`RunWindow` from its store, evaluates a
:class:`TrainedRun` into an :class:`Evaluation`, and gets a :class:`RunOutcome` back. Keeping
these values apart from the pipeline keeps both modules small and lets the kinds be read without
the run's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from trainers.run.gate import CANDIDATE, GateResult
from trainers.run.norm import NormStats
from trainers.run.state import RunDir

__all__ = [
    "EnvData",
    "Evaluation",
    "RunHyper",
    "RunOutcome",
    "RunWindow",
    "TrainedRun",
]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a run produced."""

    run_id: str
    version: str
    mode: str
    reason: str
    gate_passed: bool
    published: bool
    report: dict[str, Any]
    seconds: float

    @property
    def result(self) -> str:
        """``published``, ``passed`` or ``rejected``: the label of the runs counters."""
        return "published" if self.published else ("passed" if self.gate_passed else "rejected")


class RunHyper(Protocol):
    """The kind's run sizes (the sizer's :class:`TrainerSettings` or the allocator's section)."""

    @property
    def iterations(self) -> int: ...

    @property
    def warm_iterations(self) -> int: ...

    @property
    def hidden(self) -> tuple[int, ...]: ...


class EnvData(Protocol):
    """What the kind's env trains on; saved as the run's ``data.npz``."""

    def save(self, path: Path) -> None: ...


@dataclass(frozen=True, slots=True)
class RunWindow:
    """A new run's data, chosen and split by the kind before its directory exists.

    ``holdout`` holds the gate's rows plus ``probe`` (normalised training observations for the
    dead-unit checks) and ``drift`` (raw training observations the drift trigger compares with).
    """

    norm: NormStats  # fitted on the training part
    data: EnvData
    holdout: dict[str, np.ndarray]
    info: dict[str, Any]  # run.json fields: ``data_hash``, ``data_window`` and the kind's own


@dataclass(frozen=True, slots=True)
class TrainedRun:
    """A run whose iterations are done: its directory and info, hold-out, and final weights."""

    rundir: RunDir
    info: dict[str, Any]
    norm: NormStats
    hold: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The kind's candidate: its ONNX bytes, their parity with torch, and the gate's verdict."""

    onnx: bytes
    parity: float
    gate: GateResult
    serving_note: str  # whether (and why not) the serving model was scored
    uplift: dict[str, float]  # the kind's headline uplift over its baseline

    def model_metrics(self) -> dict[str, float]:
        """The manifest's metrics: the candidate's hold-out metrics, uplift, gate bound and parity."""
        return {
            **{f"holdout_{k}": v for k, v in self.gate.policies[CANDIDATE].items()}, **self.uplift,
            "gate_lower_bound": self.gate.lower_bound, "parity_max_abs_diff": self.parity,
        }  # fmt: skip

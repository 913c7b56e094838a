"""Observations for the sizer: request features + the latest feature snapshot of the symbol.

The vectors are exactly :func:`streams.features.build_state`'s (a unit test checks the parity on
random inputs), built for a whole batch at once into one float32 array: ``build_state`` itself
costs ~20 us a row in Python, too slow for 100,000 decisions/s.

Which features are required (a missing one makes the worker answer with the fallback rule,
reason ``missing_features``):

* the signal's own: a finite score and a strategy whose name starts with a known family
  (``ema_cross_fast`` -> ``ema_cross``); the SizingRequest has no family field;
* every engine feature (``eng_*``), finite.

Stream features are tolerated when missing (no snapshot of the symbol yet, a snapshot of another
spec version, non-finite values): they are zeroed exactly as ``build_state`` zeroes them for the
trainer's replay rows, and counted in ``tradeloop_inference_stream_features_missing_total``. ``require_stream_features`` makes a
missing snapshot a fallback too.

Example:
    >>> family_of("ema_cross_fast"), family_of("momentum"), family_of("pairs_1")
    ('ema_cross', 'momentum', None)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from streams.features import FAMILIES, SIZER_SPEC, FeatureSpec

__all__ = ["FeatureCache", "ObservationBuilder", "Observations", "Snapshot", "family_of"]

_FAMILIES_LONGEST_FIRST = sorted(FAMILIES, key=len, reverse=True)
_family_cache: dict[str, str | None] = {}
_FAMILY_CACHE_MAX = 10_000


def family_of(strategy: str) -> str | None:
    """The strategy family a strategy instance name starts with, or None."""
    try:
        return _family_cache[strategy]
    except KeyError:
        pass
    found = next(
        (f for f in _FAMILIES_LONGEST_FIRST if strategy == f or strategy.startswith(f + "_")),
        None,
    )
    if len(_family_cache) < _FAMILY_CACHE_MAX:
        _family_cache[strategy] = found
    return found


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The latest stream features of one symbol: values with non-finite ones zeroed."""

    ts: int
    values: tuple[float, ...]
    present: int


class FeatureCache:
    """Latest FeatureSnapshot per symbol, in event time. Written by one thread, read by another."""

    def __init__(self, spec: FeatureSpec = SIZER_SPEC) -> None:
        self.spec = spec
        self._latest: dict[str, Snapshot] = {}
        self.ignored = 0

    def update(self, record: Mapping[str, Any]) -> bool:
        """Keep ``record`` if it is newer than the cached snapshot and of this spec version."""
        values = record["values"]
        if record["spec_version"] != self.spec.version or len(values) != len(self.spec.stream):
            self.ignored += 1
            return False
        symbol, ts = record["symbol"], record["ts"]
        current = self._latest.get(symbol)
        if current is not None and current.ts > ts:
            return False
        finite = [math.isfinite(v) for v in values]
        clean = tuple(float(v) if ok else 0.0 for v, ok in zip(values, finite, strict=True))
        self._latest[symbol] = Snapshot(ts, clean, sum(finite))
        return True

    def get(self, symbol: str) -> Snapshot | None:
        return self._latest.get(symbol)

    def __len__(self) -> int:
        return len(self._latest)


@dataclass(frozen=True, slots=True)
class Observations:
    """A batch of raw (not yet normalised) observations and what was missing in each row."""

    obs: NDArray[np.float32]
    required_ok: list[bool]
    scores: list[float]
    has_snapshot: list[bool]


# From this batch size on, finiteness is checked with numpy over the batch; below it, per row in
# Python (numpy's fixed cost per call is ~2 us, more than checking a dozen floats by hand).
_VECTORISE_FROM = 16


class ObservationBuilder:
    """Builds the batch observation array for SizingRequest records.

    Rows are assembled as Python lists and converted to one array; a few list operations per row
    is what lets one worker score more than 100,000 requests a second in batches.
    """

    def __init__(self, spec: FeatureSpec = SIZER_SPEC, require_stream: bool = False) -> None:
        self.spec = spec
        self.require_stream = require_stream
        self._engine = spec.engine
        self._head = len(spec.signal) + len(spec.engine)
        self._onehot: dict[str | None, tuple[float, ...]] = {
            f: tuple(1.0 if f == g else 0.0 for g in FAMILIES) for f in (*FAMILIES, None)
        }
        self._no_stream = (0.0,) * len(spec.stream)

    def row(self, request: Mapping[str, Any], cache: FeatureCache | None) -> tuple[list[float], bool, bool]:
        """One request's raw observation, whether its required features are there, and its snapshot's."""
        return self._row(request, cache, check=True)

    def _row(
        self, request: Mapping[str, Any], cache: FeatureCache | None, check: bool
    ) -> tuple[list[float], bool, bool]:
        finite = math.isfinite
        features = request["features"]
        family = family_of(request["strategy"])
        snapshot = cache.get(request["symbol"]) if cache is not None else None
        row = [request["score"], 1.0 if request["side"] == "BUY" else -1.0, *self._onehot[family],
               *[features.get(name, math.nan) for name in self._engine]]  # fmt: skip
        ok = family is not None and (snapshot is not None or not self.require_stream)
        if check and not all(map(finite, row)):
            # Missing (NaN) or non-finite engine features and score are zeroed, as build_state does.
            row = [v if finite(v) else 0.0 for v in row]
            ok = False
        row.extend(self._no_stream if snapshot is None else snapshot.values)
        return row, ok, snapshot is not None

    def build(self, requests: Sequence[Mapping[str, Any]], cache: FeatureCache | None) -> Observations:
        vectorise = len(requests) >= _VECTORISE_FROM
        rows: list[list[float]] = []
        required_ok: list[bool] = []
        has_snapshot: list[bool] = []
        for request in requests:
            row, ok, snapshot = self._row(request, cache, check=not vectorise)
            rows.append(row)
            required_ok.append(ok)
            has_snapshot.append(snapshot)
        scores = [request["score"] for request in requests]
        obs = np.array(rows, dtype=np.float32)
        if vectorise:
            front = obs[:, : self._head]
            finite_mask = np.isfinite(front)
            if not finite_mask.all():
                front[~finite_mask] = 0.0
                complete = cast("list[bool]", finite_mask.all(axis=1).tolist())
                required_ok = [r and c for r, c in zip(required_ok, complete, strict=True)]
        return Observations(obs, required_ok, scores, has_snapshot)

"""Per-symbol rolling features in event time (the ``STREAM_FEATURES`` of :mod:`streams.features`).

State per symbol is two bucket rings (5-second buckets over 5 minutes, 1-minute buckets over 30
minutes) plus two time-decayed EMAs, so it stays a few kilobytes however many trades arrive.
Windows are bucket-aligned: "1 minute" is the current 5-second bucket and the 11 before it,
"5 minutes" the current and 59 before, "30 minutes" the current 1-minute bucket and 29 before.
docs/agents.md gives every formula; tests/kit/agents/reference.py recomputes them from raw trades.

Example:
    >>> state = FeatureState()
    >>> ts = np.array([0, 1_000_000, 2_000_000]) + 1_700_000_000_000_000
    >>> prices, emit = np.array([100.0, 101.0, 100.5]), np.array([False, False, True])
    >>> out = state.update(ts, prices, np.ones(3), np.ones(3), emit)
    >>> [(i, len(v)) for i, v in out]
    [(2, 22)]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from agents.buckets import BUY_VOLUME, CLOSE, COUNT, HIGH, LOW, OPEN, PV, R2, VOLUME, Buckets
from streams.features import STREAM_FEATURES

__all__ = [
    "COARSE_N",
    "COARSE_US",
    "FINE_N",
    "FINE_US",
    "TAU_FAST_US",
    "TAU_SLOW_US",
    "FeatureState",
    "clamp_monotonic",
]

FINE_US: Final = 5_000_000
FINE_N: Final = 60  # 5 minutes of 5-second buckets
COARSE_US: Final = 60_000_000
COARSE_N: Final = 30  # 30 minutes of 1-minute buckets
W1_FINE: Final = 12  # buckets in "1 minute"
TAU_FAST_US: Final = 60_000_000.0
TAU_SLOW_US: Final = 300_000_000.0
RSI_BARS: Final = 14
ATR_BARS: Final = 14

_INDEX: Final = {name: i for i, name in enumerate(STREAM_FEATURES)}
# The order FeatureState.evaluate builds its values in: it must be the spec's.
_EVALUATED: Final = (
    "ret_1m", "ret_5m", "ret_30m", "rv_1m", "rv_5m", "rv_30m", "rv_ratio_1m_30m", "ema_fast_dev",
    "ema_slow_dev", "ema_cross", "rsi_14", "atr_14", "volume_z", "vwap_dev_5m", "vwap_dev_30m",
    "intensity_1m", "intensity_5m", "buy_ratio_1m", "range_5m", "drawdown_30m", "price_z_30m",
    "ret_autocorr_5m",
)  # fmt: skip
if _EVALUATED != STREAM_FEATURES:
    raise ImportError("agents.features.evaluate() no longer follows streams.features.STREAM_FEATURES")


def clamp_monotonic(ts: np.ndarray, last: int) -> np.ndarray:
    """Event times made non-decreasing: an out-of-order trade counts at its predecessor's time."""
    return np.maximum.accumulate(np.maximum(ts, last))


def _seqsum(start: float, values: np.ndarray) -> float:
    """``start + v0 + v1 + ...`` added left to right (np.sum adds pairwise, which depends on length)."""
    if len(values) == 0:
        return start
    return float(np.cumsum(np.concatenate(([start], values)))[-1])


def _ratio(num: float, den: float, default: float = 0.0) -> float:
    return num / den if den > 0 else default


def _zscore(x: float, sample: np.ndarray) -> float:
    n = len(sample)
    if n < 2:
        return 0.0
    mean = float(sample.sum()) / n
    deviations = sample - mean
    std = math.sqrt(float((deviations * deviations).sum()) / n)  # as ndarray.std(): population
    return (x - mean) / std if std > 0 else 0.0


class FeatureState:
    """Rolling state of one symbol. :meth:`update` adds trades and evaluates at emission points."""

    def __init__(self) -> None:
        self.fine = Buckets(FINE_US, FINE_N)
        self.coarse = Buckets(COARSE_US, COARSE_N)
        self.count = 0
        self.first_ts = 0
        self.last_ts = 0
        self.last_price = float("nan")
        # EMA as exp(-(t - anchor)/tau) * s: s is a left-to-right sum, rebased at each coarse bucket.
        self.anchor = 0
        self.s_fast = 0.0
        self.s_slow = 0.0

    # ---- updates -------------------------------------------------------------------------------

    def update(
        self,
        ts: np.ndarray,
        price: np.ndarray,
        size: np.ndarray,
        buy: np.ndarray,
        emit: np.ndarray,
        on_emit: Callable[[int, np.ndarray], None] | None = None,
    ) -> list[tuple[int, np.ndarray]]:
        """Add trades (already clamped with :func:`clamp_monotonic`) in arrival order.

        Args:
            ts: event times in microseconds, non-decreasing and >= :attr:`last_ts`.
            price, size: positive floats.
            buy: 1.0 for buyer-initiated trades, else 0.0.
            emit: True where the features after that trade are wanted.
            on_emit: called with (index, values) at each emission point while the state is still
                the state right after that trade (the price-move detectors look at it).

        Returns:
            (index into the arrays, feature values in STREAM_FEATURES order) per emission point.
        """
        n = len(ts)
        if n == 0:
            return []
        logp = np.log(price)
        prev = math.log(self.last_price) if self.count else logp[0]
        r = np.diff(logp, prepend=prev)
        r2 = r * r
        dt = np.diff(ts, prepend=self.last_ts).astype(np.float64)
        if self.count == 0:
            dt[0] = np.inf  # the first trade sets the EMAs to its price
            self.first_ts = int(ts[0])
        fine_ids = ts // FINE_US
        cuts = np.flatnonzero(np.diff(fine_ids)) + 1
        ends = np.union1d(cuts, np.flatnonzero(emit) + 1)
        starts = np.concatenate(([0], ends[ends < n]))
        ends = np.concatenate((ends[ends < n], [n]))
        out: list[tuple[int, np.ndarray]] = []
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            self._apply(ts[a:b], price[a:b], size[a:b], buy[a:b], r2[a:b], dt[a:b])
            if emit[b - 1]:
                values = self.evaluate()
                out.append((b - 1, values))
                if on_emit is not None:
                    on_emit(b - 1, values)
        return out

    def _apply(
        self,
        ts: np.ndarray,
        price: np.ndarray,
        size: np.ndarray,
        buy: np.ndarray,
        r2: np.ndarray,
        dt: np.ndarray,
    ) -> None:
        t0 = int(ts[0])
        fine, coarse = t0 // FINE_US, t0 // COARSE_US
        self.fine.advance(fine)
        self.coarse.advance(coarse)
        self.fine.add_run(fine, price, size, buy, r2)
        self.coarse.add_run(coarse, price, size, buy, r2)
        anchor = coarse * COARSE_US
        if anchor > self.anchor:
            gap = anchor - self.anchor
            self.s_fast *= math.exp(-gap / TAU_FAST_US)
            self.s_slow *= math.exp(-gap / TAU_SLOW_US)
            self.anchor = anchor
        rel = (ts - self.anchor).astype(np.float64)
        self.s_fast = _seqsum(self.s_fast, -np.expm1(-dt / TAU_FAST_US) * price * np.exp(rel / TAU_FAST_US))
        self.s_slow = _seqsum(self.s_slow, -np.expm1(-dt / TAU_SLOW_US) * price * np.exp(rel / TAU_SLOW_US))
        self.count += len(ts)
        self.last_ts = int(ts[-1])
        self.last_price = float(price[-1])

    # ---- evaluation ----------------------------------------------------------------------------

    def emas(self) -> tuple[float, float]:
        rel = self.last_ts - self.anchor
        return self.s_fast * math.exp(-rel / TAU_FAST_US), self.s_slow * math.exp(-rel / TAU_SLOW_US)

    def ref_close(self, buckets: int) -> float:
        """The last price before the newest ``buckets`` fine buckets (NaN before any such trade)."""
        ids, rows = self.fine.ordered()
        before = ids <= self.fine.head - buckets
        if before.any():
            return float(rows[before][-1, CLOSE])
        return self.fine.carry

    def window_rv(self, buckets: int) -> float:
        ids, rows = self.fine.ordered()
        return math.sqrt(float(rows[ids > self.fine.head - buckets, R2].sum()))

    def evaluate(self) -> np.ndarray:
        """The 22 stream features after the last trade added, in STREAM_FEATURES order.

        Runs at every snapshot, so it takes each window's column sums in one numpy call per
        window rather than one call per feature (numpy's per-call cost dominates these small arrays).
        """
        p = self.last_price
        f_ids, f_rows = self.fine.ordered()
        c_ids, c_rows = self.coarse.ordered()
        in_1m = f_ids > self.fine.head - W1_FINE
        w1 = f_rows[in_1m]
        s1, s5, s30 = w1.sum(axis=0), f_rows.sum(axis=0), c_rows.sum(axis=0)
        before_1m = f_rows[~in_1m]
        ref_1m = float(before_1m[-1, CLOSE]) if len(before_1m) else self.fine.carry

        def ret(ref: float, window: np.ndarray) -> float:
            base = ref if not math.isnan(ref) else float(window[0, OPEN])
            return math.log(p / base)

        rv_1m, rv_5m, rv_30m = math.sqrt(float(s1[R2])), math.sqrt(float(s5[R2])), math.sqrt(float(s30[R2]))
        ema_fast, ema_slow = self.emas()
        vol_1m = float(s1[VOLUME])
        f_closes, c_closes = f_rows[:, CLOSE], c_rows[:, CLOSE]
        values = (
            ret(ref_1m, w1),  # ret_1m
            ret(self.fine.carry, f_rows),  # ret_5m
            ret(self.coarse.carry, c_rows),  # ret_30m
            rv_1m,
            rv_5m,
            rv_30m,
            _ratio(rv_1m * math.sqrt(COARSE_N), rv_30m),  # rv_ratio_1m_30m
            p / ema_fast - 1.0,  # ema_fast_dev
            p / ema_slow - 1.0,  # ema_slow_dev
            ema_fast / ema_slow - 1.0,  # ema_cross
            self._rsi(c_closes),
            self._atr(c_rows) / p,
            _zscore(vol_1m, self._minute_volumes(c_ids, c_rows)),  # volume_z
            p / (float(s5[PV]) / float(s5[VOLUME])) - 1.0,  # vwap_dev_5m
            p / (float(s30[PV]) / float(s30[VOLUME])) - 1.0,  # vwap_dev_30m
            float(s1[COUNT]) / 60.0,  # intensity_1m
            float(s5[COUNT]) / 300.0,  # intensity_5m
            _ratio(float(s1[BUY_VOLUME]), vol_1m, 0.5),  # buy_ratio_1m
            (float(f_rows[:, HIGH].max()) - float(f_rows[:, LOW].min())) / p,  # range_5m
            p / float(c_rows[:, HIGH].max()) - 1.0,  # drawdown_30m
            _zscore(p, c_closes),  # price_z_30m
            self._autocorr(f_closes),  # ret_autocorr_5m
        )
        return np.array(values)

    @staticmethod
    def _rsi(closes: np.ndarray) -> float:
        """Cutler's RSI over the last 14 one-minute closes, scaled to [0, 1] (0.5 when flat)."""
        moves = np.diff(closes[-(RSI_BARS + 1) :])
        gains = float(moves[moves > 0].sum())
        losses = float(-moves[moves < 0].sum())
        return _ratio(gains, gains + losses, 0.5)

    @staticmethod
    def _atr(rows: np.ndarray) -> float:
        """Mean true range of the last 14 one-minute bars (the ring's oldest bar has no previous close)."""
        start = max(0, len(rows) - ATR_BARS)
        high, low = rows[start:, HIGH], rows[start:, LOW]
        prev = rows[start - 1 : -1, CLOSE] if start > 0 else np.concatenate(([np.nan], rows[:-1, CLOSE]))
        top = np.where(np.isnan(prev), high, np.fmax(high, prev))
        bottom = np.where(np.isnan(prev), low, np.fmin(low, prev))
        return float((top - bottom).mean())

    def _minute_volumes(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Volumes of the closed 1-minute buckets in the ring since the first trade (empty ones are 0)."""
        first = max(self.coarse.head - COARSE_N + 1, self.first_ts // COARSE_US)
        span = np.arange(first, self.coarse.head)
        volumes = np.zeros(len(span))
        present = (ids >= first) & (ids < self.coarse.head)
        volumes[ids[present] - first] = rows[present, VOLUME]
        return volumes

    @staticmethod
    def _autocorr(closes: np.ndarray) -> float:
        """Lag-1 autocorrelation of the log returns between consecutive non-empty 5-second buckets."""
        r = np.diff(np.log(closes))
        if len(r) < 3:
            return 0.0
        x, y = r[:-1] - r[:-1].mean(), r[1:] - r[1:].mean()
        den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
        return float((x * y).sum()) / den if den > 0 else 0.0

    # ---- persistence ---------------------------------------------------------------------------

    def core(self) -> dict[str, Any]:
        """The scalar state as JSON-ready values (floats round-trip exactly through json)."""
        return {
            "count": self.count, "first_ts": self.first_ts, "last_ts": self.last_ts,
            "last_price": self.last_price if self.count else None, "anchor": self.anchor,
            "s_fast": self.s_fast, "s_slow": self.s_slow,
            "fine": [self.fine.head, None if math.isnan(self.fine.carry) else self.fine.carry],
            "coarse": [self.coarse.head, None if math.isnan(self.coarse.carry) else self.coarse.carry],
        }  # fmt: skip

    def restore_core(self, core: dict[str, Any]) -> None:
        self.count = core["count"]
        self.first_ts = core["first_ts"]
        self.last_ts = core["last_ts"]
        self.last_price = float("nan") if core["last_price"] is None else core["last_price"]
        self.anchor = core["anchor"]
        self.s_fast = core["s_fast"]
        self.s_slow = core["s_slow"]
        for ring, (head, carry) in ((self.fine, core["fine"]), (self.coarse, core["coarse"])):
            ring.head = head
            ring.carry = float("nan") if carry is None else carry

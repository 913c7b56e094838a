"""A hand-checked numpy reference of the stream features, computed from raw trades.

It follows docs/agents.md literally (trade lists and masks, no buckets or rings), so agreement with
agents.features is evidence that the bucketed, incremental implementation computes the spec.
"""

from __future__ import annotations

import math

import numpy as np

FINE = 5_000_000
COARSE = 60_000_000


def _z(x: float, sample: np.ndarray) -> float:
    if len(sample) < 2 or sample.std() == 0:
        return 0.0
    return float((x - sample.mean()) / sample.std())


def _bucket_closes(
    buckets: np.ndarray, prices: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(bucket ids, last price in each) of the non-empty buckets selected by mask, oldest first."""
    ids = buckets[mask]
    px = prices[mask]
    last = np.r_[ids[1:] != ids[:-1], True]
    return ids[last], px[last]


def reference(
    ts: np.ndarray, price: np.ndarray, size: np.ndarray, buy: np.ndarray, n: int
) -> dict[str, float]:
    """The stream features after trade ``n`` (ts already made non-decreasing)."""
    t, p, s, b = ts[: n + 1], price[: n + 1], size[: n + 1], buy[: n + 1]
    pn = p[-1]
    f, c = t // FINE, t // COARSE
    fn, cn = f[-1], c[-1]
    r = np.diff(np.log(p), prepend=math.log(p[0]))
    w1, w5, w30 = f >= fn - 11, f >= fn - 59, c >= cn - 29

    def ret(mask: np.ndarray) -> float:
        before = p[~mask]
        return math.log(pn / (before[-1] if len(before) else p[mask][0]))

    rv1, rv5, rv30 = (math.sqrt(float((r[m] ** 2).sum())) for m in (w1, w5, w30))
    ema = {}
    for tau in (60e6, 300e6):
        e = p[0]
        for i in range(1, n + 1):
            e += (1 - math.exp(-(t[i] - t[i - 1]) / tau)) * (p[i] - e)
        ema[tau] = e
    _, closes30 = _bucket_closes(c, p, w30)
    moves = np.diff(closes30[-15:])
    gains, losses = moves[moves > 0].sum(), -moves[moves < 0].sum()
    rsi = gains / (gains + losses) if gains + losses > 0 else 0.5
    cids, _ = _bucket_closes(c, p, w30)
    highs = np.array([p[c == i].max() for i in cids])
    lows = np.array([p[c == i].min() for i in cids])
    start = max(0, len(cids) - 14)
    trs = []
    for j in range(start, len(cids)):
        prev = closes30[j - 1] if j > 0 else None
        hi, lo = highs[j], lows[j]
        trs.append(hi - lo if prev is None else max(hi, prev) - min(lo, prev))
    first = max(cn - 29, c[0])
    minute_volumes = np.array([s[c == i].sum() for i in range(first, cn)])
    _, closes5 = _bucket_closes(f, p, w5)
    rr = np.diff(np.log(closes5))
    auto = 0.0
    if len(rr) >= 3:
        x, y = rr[:-1] - rr[:-1].mean(), rr[1:] - rr[1:].mean()
        den = math.sqrt((x * x).sum() * (y * y).sum())
        auto = float((x * y).sum() / den) if den > 0 else 0.0
    vol1 = s[w1].sum()
    return {
        "ret_1m": ret(w1), "ret_5m": ret(w5), "ret_30m": ret(w30),
        "rv_1m": rv1, "rv_5m": rv5, "rv_30m": rv30,
        "rv_ratio_1m_30m": rv1 * math.sqrt(30) / rv30 if rv30 > 0 else 0.0,
        "ema_fast_dev": pn / ema[60e6] - 1, "ema_slow_dev": pn / ema[300e6] - 1,
        "ema_cross": ema[60e6] / ema[300e6] - 1,
        "rsi_14": float(rsi), "atr_14": float(np.mean(trs)) / pn,
        "volume_z": _z(float(vol1), minute_volumes),
        "vwap_dev_5m": pn / ((p * s)[w5].sum() / s[w5].sum()) - 1,
        "vwap_dev_30m": pn / ((p * s)[w30].sum() / s[w30].sum()) - 1,
        "intensity_1m": w1.sum() / 60, "intensity_5m": w5.sum() / 300,
        "buy_ratio_1m": (s * b)[w1].sum() / vol1 if vol1 > 0 else 0.5,
        "range_5m": (p[w5].max() - p[w5].min()) / pn,
        "drawdown_30m": pn / p[w30].max() - 1,
        "price_z_30m": _z(pn, closes30),
        "ret_autocorr_5m": auto,
    }  # fmt: skip

"""Numbers for people: counts with k/M/G, durations with units, rates, percentages, signed values.

Three significant figures are enough to watch a running system; the JSON outputs keep full values.

Example:
    >>> count(47_831), count(1_234_567), count(999), count(12.0)
    ('47.8k', '1.23M', '999', '12')
    >>> duration(0.0034), duration(0.00042), duration(12.34), duration(151), duration(7380)
    ('3.4 ms', '420 us', '12.3 s', '2m 31s', '2h 03m')
    >>> count(999.7), count(0.005), percent(-0.0042), percent(1.0)
    ('1k', '0.005', '-0.42%', '100%')
    >>> rate(1234.5), percent(0.1254), signed(0.35712), signed(-1234.5)
    ('1.23k/s', '12.5%', '+0.357', '-1.23k')
    >>> gauge("events_in_total", 47831.0), gauge("sizer_age_seconds", 95.0), gauge("lag", 0.0)
    ('47.8k', '1m 35s', '0')
"""

from __future__ import annotations

import math

__all__ = ["count", "duration", "gauge", "gauge_label", "percent", "rate", "signed"]

_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _three(value: float) -> str:
    """Three significant figures without a trailing ``.0`` (``1.23``, ``12.3``, ``123``)."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def count(value: float) -> str:
    """A count or amount: ``47.8k``, ``1.23M``; below 1,000 as is (three figures for fractions)."""
    if not math.isfinite(value):
        return "-"
    sign = "-" if value < 0 else ""
    size = abs(value)
    for scale, unit in _UNITS:
        if size >= scale * 0.9995:
            return f"{sign}{_three(size / scale)}{unit}"
    return f"{sign}{int(size)}" if size == int(size) else f"{sign}{_three(size)}"


def rate(per_second: float) -> str:
    """Events per second: ``1.23k/s``."""
    return f"{count(per_second)}/s"


def duration(seconds: float) -> str:
    """``420 us``, ``3.4 ms``, ``12.3 s``, ``2m 31s``, ``2h 03m``, ``3d 04h``."""
    if not math.isfinite(seconds):
        return "-"
    if seconds < 0:
        return f"-{duration(-seconds)}"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{_three(seconds * 1e3)} ms"
    if seconds < 60:
        return f"{_three(seconds)} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86_400}d {whole % 86_400 // 3600:02d}h"


def percent(ratio: float) -> str:
    """A share as a percentage with three figures: ``12.5%``, ``0.42%``, ``100%``."""
    if not math.isfinite(ratio):
        return "-"
    return f"{'-' if ratio < 0 else ''}{_three(abs(ratio) * 100)}%"


def signed(value: float) -> str:
    """A value whose sign matters (an uplift): ``+0.357``, ``-1.23k``."""
    if not math.isfinite(value):
        return "-"
    return count(value) if value < 0 else f"+{count(value)}"


def gauge_label(name: str) -> str:
    """A heartbeat gauge's name without its unit suffix: ``events_in_total`` -> ``events_in``."""
    for suffix in ("_total", "_seconds", "_per_s", "_ratio"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def gauge(name: str, value: float) -> str:
    """A heartbeat gauge formatted by its unit suffix (``_seconds``, ``_per_s``, ``_ratio``)."""
    if name.endswith("_seconds"):
        return duration(value)
    if name.endswith("_per_s"):
        return rate(value)
    if name.endswith("_ratio"):
        return percent(value)
    return count(value)

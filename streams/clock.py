"""Event ids and timestamps (microseconds since the epoch, UTC), in one place."""

from __future__ import annotations

import time
import uuid

__all__ = ["new_event_id", "now_us"]


def now_us() -> int:
    return time.time_ns() // 1000


def new_event_id() -> str:
    return uuid.uuid4().hex

"""Which sizing requests are done: their decision (or dead letter) acknowledged by the broker.

The worker commits a request partition's offset only past requests whose answer the broker has
acknowledged (at least once). Waiting for that with ``producer.flush()`` on the serving thread
stalled serving for a whole produce round trip at every commit, and every request that arrived
meanwhile waited too. Instead each answer's delivery report marks its request done, and a commit
takes, per partition, the position after the longest run of done requests from the oldest
pending one. Delivery reports come from whichever thread polls the producer, so it is locked.

Example:
    >>> acks = Acknowledgements()
    >>> first, second = acks.track(0, 10), acks.track(0, 11)
    >>> second(), acks.positions()          # 11 is done, 10 is not: nothing to commit yet
    (None, {})
    >>> first(), acks.positions(), acks.positions()
    (None, {0: 12}, {})
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

__all__ = ["Acknowledgements"]


class _Request:
    __slots__ = ("done", "offset")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.done = False


class Acknowledgements:
    """Requests in consumption order per partition, each done once its answer is acknowledged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, deque[_Request]] = {}

    def track(self, partition: int, offset: int) -> Callable[[], None]:
        """Start tracking a consumed request; call the returned function when its answer is acknowledged."""
        request = _Request(offset)
        with self._lock:
            self._pending.setdefault(partition, deque()).append(request)

        def done() -> None:
            request.done = True  # one assignment; positions() reads it under the lock

        return done

    def positions(self) -> dict[int, int]:
        """Partition -> the next offset to commit, for partitions that advanced since the last call."""
        advanced: dict[int, int] = {}
        with self._lock:
            for partition, queue in self._pending.items():
                while queue and queue[0].done:
                    advanced[partition] = queue.popleft().offset + 1
        return advanced

    def forget(self, partitions: set[int] | frozenset[int]) -> None:
        """Stop tracking revoked partitions (their requests are another worker's now)."""
        with self._lock:
            for partition in partitions:
                self._pending.pop(partition, None)

    def pending(self) -> int:
        """Requests consumed but not yet acknowledged."""
        with self._lock:
            return sum(len(queue) for queue in self._pending.values())

"""Operator control of a worker: freeze model updates, force the fallback rule (kill switch).

Commands arrive on the single-partition control topic in one total order; each worker replays it
from the beginning at start, so a kill switch issued before a worker started still holds for it.
A command applies when its scope is ``all`` or this worker's id.

Example:
    >>> state = ControlState("inference-a")
    >>> state.apply({"command": "FORCE_FALLBACK", "scope": "all", "reason": "drill", "issued_by": "ops"})
    True
    >>> state.kill_switch, state.frozen
    (True, False)
    >>> state.apply({"command": "FREEZE_UPDATES", "scope": "inference-b", "reason": "", "issued_by": "ops"})
    False
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from streams.clock import new_event_id, now_us

__all__ = ["ALL", "FORCE_FALLBACK", "FREEZE_UPDATES", "RELEASE_FALLBACK", "UNFREEZE_UPDATES", "ControlState",
           "control_record"]  # fmt: skip

log = logging.getLogger(__name__)

ALL: Final = "all"
FREEZE_UPDATES: Final = "FREEZE_UPDATES"
UNFREEZE_UPDATES: Final = "UNFREEZE_UPDATES"
FORCE_FALLBACK: Final = "FORCE_FALLBACK"
RELEASE_FALLBACK: Final = "RELEASE_FALLBACK"


def control_record(
    command: str, scope: str = ALL, reason: str = "", issued_by: str = "operator"
) -> dict[str, Any]:
    """A Control record ready to produce to the control topic."""
    return {"event_id": new_event_id(), "ts": now_us(), "command": command, "scope": scope,
            "reason": reason, "issued_by": issued_by}  # fmt: skip


class ControlState:
    """The two switches of one worker. Plain booleans: the serving path reads them without a lock."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.frozen = False
        self.kill_switch = False
        self.reason = ""

    def apply(self, record: Mapping[str, Any]) -> bool:
        """Apply one Control record; True when it changed this worker's state."""
        if record["scope"] not in (ALL, self.worker_id):
            return False
        before = (self.frozen, self.kill_switch)
        command = record["command"]
        if command == FREEZE_UPDATES:
            self.frozen = True
        elif command == UNFREEZE_UPDATES:
            self.frozen = False
        elif command == FORCE_FALLBACK:
            self.kill_switch = True
        elif command == RELEASE_FALLBACK:
            self.kill_switch = False
        changed = before != (self.frozen, self.kill_switch)
        if changed:
            self.reason = f"{command} by {record['issued_by']}: {record['reason']}"
            log.warning("control: %s", self.reason)
        return changed

    def info(self) -> dict[str, str]:
        return {"frozen": str(self.frozen).lower(), "kill_switch": str(self.kill_switch).lower()}

"""Model-update keys per role, the signed clear record, and what a late worker rebuilds from history."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streams.serving.control import FREEZE_UPDATES, UNFREEZE_UPDATES, ControlState, control_record
from streams.serving.errors import ModelRejectedError
from streams.serving.follow import apply_history
from streams.serving.metrics import WorkerMetrics
from streams.serving.model_store import ModelStore
from streams.serving.updates import clear_text, is_clear, update_key, verify_clear
from streams.settings import Settings
from streams.topics import CONTROL, MODEL_UPDATES
from tests.kit.inference.model_factory import sizer_update
from trainers import registry
from trainers.errors import RegistryError

KEY = b"unit-test-key"


def new_store() -> ModelStore:
    settings = Settings(model_signing_key=KEY.decode(), inference={"canary_share": 0.5})
    return ModelStore(settings, WorkerMetrics(f"unit-{uuid.uuid4().hex[:6]}"))


def test_each_role_has_its_own_key_on_both_sides() -> None:
    for role in ("SERVE", "SHADOW"):
        assert update_key("sizer", role) == registry.update_key("sizer", role)
    assert update_key("sizer", "SERVE") == "sizer"
    assert update_key("allocator", "SHADOW") == "allocator:shadow"


def test_the_trainers_clear_record_verifies_on_the_worker() -> None:
    record = registry.clear_record("sizer", "SHADOW", KEY, version="s1")
    assert is_clear(record) and record["manifest_json"] == clear_text("sizer", "SHADOW")
    verify_clear(record, KEY)
    with pytest.raises(RegistryError):
        registry.clear_record("sizer", "SERVE", KEY)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"signature": ""}, "unsigned"),
        ({"manifest_json": clear_text("allocator", "SHADOW")}, "bad_signature"),
        ({"model_name": "allocator"}, "bad_manifest"),  # validly signed, but for the sizer
        ({"role": "SERVE"}, "bad_manifest"),
    ],
)
def test_a_forged_or_misdirected_clear_is_rejected(change: dict[str, Any], reason: str) -> None:
    record = {**registry.clear_record("sizer", "SHADOW", KEY), **change}
    with pytest.raises(ModelRejectedError) as caught:
        verify_clear(record, KEY)
    assert caught.value.reason == reason
    with pytest.raises(ModelRejectedError):
        verify_clear(registry.clear_record("sizer", "SHADOW", b"another-key"), KEY)


def test_a_clear_record_ends_the_shadow_and_nothing_else() -> None:
    store = new_store()
    store.apply(sizer_update("v1", KEY))
    assert store.apply(sizer_update("s1", KEY, seed=3, role="SHADOW")).kind == "shadow"
    forged = registry.clear_record("sizer", "SHADOW", b"another-key")
    assert store.apply(forged).kind == "rejected" and store.slot("sizer").shadow.version == "s1"
    applied = store.apply(registry.clear_record("sizer", "SHADOW", KEY))
    assert (applied.kind, applied.version, applied.changed) == ("cleared", "s1", True)
    slot = store.slot("sizer")
    assert slot.shadow is None and slot.serving.version == "v1" and "sizer.shadow" not in store.info()
    assert store.apply(registry.clear_record("sizer", "SHADOW", KEY)).kind == "unchanged"


def updates(*records: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """History entries in publication order (each a microsecond after the one before)."""
    out = []
    for i, record in enumerate(records):
        topic = CONTROL if "command" in record else MODEL_UPDATES
        out.append((topic, {**record, "ts": 1_000_000 + i}))
    return out


def rebuilt(*records: dict[str, Any]) -> tuple[ModelStore, ControlState]:
    store, control = new_store(), ControlState("w")
    apply_history(updates(*records), store, control)
    return store, control


def test_a_late_worker_rebuilds_serving_and_shadow_without_a_canary() -> None:
    store, _ = rebuilt(
        sizer_update("v1", KEY),
        sizer_update("s1", KEY, seed=3, role="SHADOW"),
        sizer_update("v2", KEY, seed=2),
    )
    slot = store.slot("sizer")
    assert (slot.serving.version, slot.shadow.version, slot.canary) == ("v2", "s1", None)


def test_a_late_worker_loads_no_shadow_that_was_promoted_or_cleared() -> None:
    promoted, _ = rebuilt(
        sizer_update("v1", KEY), sizer_update("s1", KEY, seed=3, role="SHADOW"),
        sizer_update("s1", KEY, seed=3), sizer_update("v3", KEY, seed=4),
    )  # fmt: skip
    assert promoted.slot("sizer").serving.version == "v3" and promoted.slot("sizer").shadow is None
    replaced, _ = rebuilt(
        sizer_update("v1", KEY), sizer_update("s0", KEY, seed=6, role="SHADOW"),
        sizer_update("s1", KEY, seed=3, role="SHADOW"), sizer_update("s1", KEY, seed=3),
    )  # fmt: skip
    assert replaced.slot("sizer").serving.version == "s1" and replaced.slot("sizer").shadow is None
    cleared, _ = rebuilt(
        sizer_update("v1", KEY), sizer_update("s1", KEY, seed=3, role="SHADOW"),
        registry.clear_record("sizer", "SHADOW", KEY),
    )  # fmt: skip
    assert cleared.slot("sizer").serving.version == "v1" and cleared.slot("sizer").shadow is None
    # A shadow published after the clear serves as the shadow again.
    again, _ = rebuilt(
        sizer_update("v1", KEY), registry.clear_record("sizer", "SHADOW", KEY),
        sizer_update("s2", KEY, seed=5, role="SHADOW"),
    )  # fmt: skip
    assert again.slot("sizer").shadow.version == "s2"


def test_a_forged_clear_in_history_leaves_the_shadow() -> None:
    store, _ = rebuilt(
        sizer_update("v1", KEY), sizer_update("s1", KEY, seed=3, role="SHADOW"),
        registry.clear_record("sizer", "SHADOW", b"another-key"),
    )  # fmt: skip
    assert store.slot("sizer").shadow.version == "s1"


def test_a_clear_issued_during_a_freeze_is_held_like_any_update() -> None:
    store, control = rebuilt(
        sizer_update("v1", KEY), sizer_update("s1", KEY, seed=3, role="SHADOW"),
        control_record(FREEZE_UPDATES), registry.clear_record("sizer", "SHADOW", KEY),
    )  # fmt: skip
    assert control.frozen and store.slot("sizer").shadow.version == "s1" and store.held == 1
    control.apply(control_record(UNFREEZE_UPDATES))
    assert [a.kind for a in store.release_held()] == ["cleared"]
    assert store.slot("sizer").shadow is None

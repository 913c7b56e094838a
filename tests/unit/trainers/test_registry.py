"""The local registry: signed versions, tamper detection, serving history, pruning."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import SignatureError
from tests.kit.trainers.registry import KEY, add_version
from trainers.errors import RegistryError
from trainers.registry import ModelRegistry, model_update_record


@pytest.fixture()
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path, keep_versions=3)


def test_saved_version_loads_verified(registry: ModelRegistry) -> None:
    version = add_version(registry)
    model = registry.load(version, KEY)
    assert model.manifest.version == version and model.report() == {"gate": {"passed": True}}
    assert registry.drift_reference(version).shape == (5, 3)
    record = model_update_record(model, "promote")
    assert record["model_name"] == "sizer" and record["role"] == "SERVE" and record["onnx"] == model.onnx


@pytest.mark.parametrize("target", ["manifest.json", "model.onnx"])
def test_verification_fails_on_one_changed_byte(registry: ModelRegistry, target: str) -> None:
    version = add_version(registry)
    path = registry.root / "versions" / version / target
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] = (data[middle] + 1) % 256
    path.write_bytes(bytes(data))
    with pytest.raises(SignatureError) as err:
        registry.load(version, KEY)
    assert err.value.reason in {"bad_signature", "checksum_mismatch"}


def test_wrong_key_is_rejected(registry: ModelRegistry) -> None:
    version = add_version(registry, key=b"other-key")
    with pytest.raises(SignatureError):
        registry.load(version, KEY)


def test_serving_history_and_rollback_target(registry: ModelRegistry) -> None:
    v1, v2 = add_version(registry), add_version(registry)
    assert registry.previous_serving() is None
    registry.mark_serving(v1, "promote")
    registry.mark_serving(v2, "promote")
    assert registry.serving_version == v2 and registry.previous_serving() == v1
    statuses = {r["version"]: r["status"] for r in registry.versions()}
    assert statuses == {v1: "retired", v2: "serving"}
    assert (registry.root / "serving" / "model.onnx").read_bytes() == registry.load(v2, KEY).onnx


def test_prune_keeps_newest_plus_serving_and_rollback_target(registry: ModelRegistry) -> None:
    first, second = add_version(registry), add_version(registry)
    registry.mark_serving(first, "promote")
    registry.mark_serving(second, "promote")
    newer = [add_version(registry, status="rejected") for _ in range(4)]
    kept = {r["version"] for r in registry.versions()}
    assert kept == {first, second, *newer[-3:]}
    assert not (registry.root / "versions" / newer[0]).exists()


def test_unknown_version(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError):
        registry.load("v9999", KEY)
    with pytest.raises(RegistryError):
        registry.mark_serving("v9999", "promote")

"""Promotion and rollback publish signed ModelUpdates to the compacted model-updates topic."""

from __future__ import annotations

import pytest

from streams.errors import SignatureError
from streams.manifest import verify_update
from streams.settings import Settings
from tests.kit.bus import read_updates
from tests.kit.trainers.registry import add_version
from trainers.errors import RegistryError
from trainers.registry import ModelRegistry, promote, rollback

pytestmark = pytest.mark.integration


def test_rollback_republishes_the_older_version(topics: Settings) -> None:
    key = topics.signing_key()
    registry = ModelRegistry(topics.data_dir)
    with pytest.raises(RegistryError):
        rollback(topics, registry)
    v1 = add_version(registry, key=key)
    v2 = add_version(registry, key=key)
    promote(topics, registry, v1)
    promote(topics, registry, v2)
    rolled = rollback(topics, registry)
    assert rolled.version == v1 and registry.serving_version == v1

    updates = read_updates(topics, 3)
    assert [(k, r["version"], r["reason"]) for k, r in updates] == [
        (b"sizer", v1, "promote"),
        (b"sizer", v2, "promote"),
        (b"sizer", v1, "rollback"),
    ]
    for _key, record in updates:
        assert record["role"] == "SERVE" and record["model_name"] == "sizer"
        manifest = verify_update(record["manifest_json"], record["onnx"], record["signature"], key)
        assert manifest.version == record["version"]
    # The rollback carries exactly the bytes first published for v1.
    assert updates[2][1]["onnx"] == updates[0][1]["onnx"]
    assert updates[2][1]["manifest_json"] == updates[0][1]["manifest_json"]


def test_a_tampered_version_is_never_published(topics: Settings) -> None:
    registry = ModelRegistry(topics.data_dir)
    version = add_version(registry, key=topics.signing_key())
    onnx = registry.root / "versions" / version / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\x00")
    with pytest.raises(SignatureError):
        promote(topics, registry, version)
    assert registry.serving_version is None
    assert read_updates(topics, 1, timeout=3.0) == []

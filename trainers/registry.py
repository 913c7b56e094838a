"""The local model registry and publication of signed models to the model-updates topic.

Layout under ``<data_dir>/models/<name>/``::

    index.json                 versions, their status, the serving version, promotion history
    versions/<version>/        model.onnx, manifest.json, signature, report.json, module.npz, drift.npz
    serving/                   a backup copy of the serving version's files

A version's status is ``candidate`` (passed the gate, not published), ``rejected`` (failed the
gate), ``serving`` or ``retired`` (served before). The registry keeps the newest
``keep_versions`` versions plus the serving one and the one a rollback would return to.

Promotion verifies the stored signature with the deployment key, publishes a ``ModelUpdate``
(key: model name, compacted topic), and only then marks the version serving. Rollback promotes
the previously served version again with reason ``rollback``. The signing key is never logged.

Keys on the compacted model-updates topic (docs/inference.md, "Model-updates keys"): one per model
*and role*, because compaction keeps only the newest record per key. The serving model is keyed by
the model name (``sizer``), its shadow ``sizer:shadow`` (:func:`publish_shadow`); a signed clear
record on the shadow's key ends it (:func:`clear_shadow`), for running workers and for those that
start later. The inference workers parse the same format (``streams.serving.updates``).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from streams.clock import new_event_id, now_us
from streams.datadir import DataDir
from streams.kafka.producer import EventProducer
from streams.manifest import Manifest, verify_update
from streams.settings import Settings
from streams.topics import MODEL_UPDATES
from trainers.errors import RegistryError

__all__ = [
    "ModelRegistry",
    "StoredModel",
    "clear_record",
    "clear_shadow",
    "model_update_record",
    "promote",
    "publish_shadow",
    "publish_update",
    "rollback",
    "update_key",
]

log = logging.getLogger(__name__)

ONNX_FILE: Final = "model.onnx"
MANIFEST_FILE: Final = "manifest.json"
SIGNATURE_FILE: Final = "signature"
REPORT_FILE: Final = "report.json"
MODULE_FILE: Final = "module.npz"
DRIFT_FILE: Final = "drift.npz"
SERVE: Final = "SERVE"
SHADOW: Final = "SHADOW"
CLEAR_REASON: Final = "clear"


@dataclass(frozen=True, slots=True)
class StoredModel:
    """One registry version, its signature verified."""

    version: str
    path: Path
    manifest: Manifest
    manifest_json: str
    signature: str
    onnx: bytes

    def report(self) -> dict[str, Any]:
        path = self.path / REPORT_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def module_state(self) -> dict[str, np.ndarray]:
        with np.load(self.path / MODULE_FILE) as data:
            return {k: data[k] for k in data.files}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ModelRegistry:
    """Versions of one model name on local disk."""

    def __init__(self, data_dir: Path, name: str = "sizer", keep_versions: int = 10) -> None:
        self.name = name
        self.root = DataDir(data_dir).model(name)
        self.keep_versions = keep_versions
        (self.root / "versions").mkdir(parents=True, exist_ok=True)

    # -- index -------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The index, under an exclusive file lock; written back atomically on success."""
        with (self.root / "index.lock").open("a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index = self._read_index()
            yield index
            _write_atomic(self.root / "index.json", json.dumps(index, indent=2, sort_keys=True).encode())

    def _read_index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        if not path.exists():
            return {"name": self.name, "next_seq": 1, "serving": None, "versions": {}, "history": []}
        try:
            index: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RegistryError(f"registry index {path} is unreadable: {exc}") from exc
        return index

    def index(self) -> dict[str, Any]:
        return self._read_index()

    def new_version(self) -> str:
        """Reserve the next version name, e.g. ``v0007-20260101T120000``."""
        with self._locked() as index:
            seq = int(index["next_seq"])
            index["next_seq"] = seq + 1
        return f"v{seq:04d}-{datetime.now(UTC):%Y%m%dT%H%M%S}"

    @property
    def serving_version(self) -> str | None:
        serving: str | None = self._read_index().get("serving")
        return serving

    def previous_serving(self) -> str | None:
        """The version served before the current one (the rollback target), if any."""
        index = self._read_index()
        current = index.get("serving")
        for entry in reversed(index["history"]):
            if entry["version"] != current and (self.root / "versions" / entry["version"]).is_dir():
                return str(entry["version"])
        return None

    # -- versions ----------------------------------------------------------------------------

    def save(
        self,
        manifest_json: str,
        signature: str,
        onnx: bytes,
        report: Mapping[str, Any],
        module_state: Mapping[str, np.ndarray],
        drift_reference: np.ndarray | None,
        status: str,
    ) -> Path:
        """Store a new version's files and index entry (status ``candidate`` or ``rejected``)."""
        manifest = Manifest.model_validate_json(manifest_json)
        path = self.root / "versions" / manifest.version
        path.mkdir(parents=True, exist_ok=True)
        _write_atomic(path / ONNX_FILE, onnx)
        _write_atomic(path / MANIFEST_FILE, manifest_json.encode())
        _write_atomic(path / SIGNATURE_FILE, signature.encode())
        _write_atomic(
            path / REPORT_FILE, json.dumps(report, indent=2, sort_keys=True, default=float).encode()
        )
        with (path / MODULE_FILE).open("wb") as fh:
            np.savez(fh, **dict(module_state))  # type: ignore[arg-type]
        if drift_reference is not None:
            with (path / DRIFT_FILE).open("wb") as fh:
                np.savez(fh, states=drift_reference)
        with self._locked() as index:
            index["versions"][manifest.version] = {
                "created_us": manifest.created_us,
                "parent": manifest.parent,
                "status": status,
                "metrics": manifest.metrics,
                "mode": manifest.training.get("mode"),
            }
        self.prune()
        return path

    def load(self, version: str, key: bytes) -> StoredModel:
        """A stored version with its signature and ONNX checksum verified against ``key``.

        Raises:
            RegistryError: unknown version or missing files.
            SignatureError: the files do not verify (tampered, or signed with another key).
        """
        path = self.root / "versions" / version
        try:
            manifest_json = (path / MANIFEST_FILE).read_text()
            signature = (path / SIGNATURE_FILE).read_text().strip()
            onnx = (path / ONNX_FILE).read_bytes()
        except OSError as exc:
            raise RegistryError(f"{self.name} version {version!r} not found in {self.root}") from exc
        manifest = verify_update(manifest_json, onnx, signature, key)
        return StoredModel(version, path, manifest, manifest_json, signature, onnx)

    def drift_reference(self, version: str) -> np.ndarray | None:
        path = self.root / "versions" / version / DRIFT_FILE
        if not path.exists():
            return None
        with np.load(path) as data:
            return np.asarray(data["states"])

    def versions(self) -> list[dict[str, Any]]:
        """Every indexed version, newest first, with its index entry."""
        index = self._read_index()
        rows = [{"version": v, **entry} for v, entry in index["versions"].items()]
        return sorted(rows, key=lambda r: r["version"], reverse=True)

    def mark_serving(self, version: str, reason: str) -> None:
        """Record ``version`` as serving (after it was published) and back up its files."""
        with self._locked() as index:
            if version not in index["versions"]:
                raise RegistryError(f"unknown {self.name} version {version!r}")
            previous = index.get("serving")
            if previous and previous in index["versions"] and previous != version:
                index["versions"][previous]["status"] = "retired"
            index["versions"][version]["status"] = "serving"
            index["serving"] = version
            index["history"].append({"version": version, "ts_us": now_us(), "reason": reason})
        backup = self.root / "serving"
        tmp = self.root / ".serving.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.root / "versions" / version, tmp)
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(tmp, backup)

    def prune(self) -> list[str]:
        """Delete versions beyond the newest ``keep_versions``, sparing serving and rollback target."""
        index = self._read_index()
        spare = {index.get("serving"), self.previous_serving()}
        names = sorted(index["versions"], reverse=True)
        doomed = [v for v in names[self.keep_versions :] if v not in spare]
        if doomed:
            with self._locked() as locked:
                for version in doomed:
                    locked["versions"].pop(version, None)
            for version in doomed:
                shutil.rmtree(self.root / "versions" / version, ignore_errors=True)
        return doomed


def model_update_record(model: StoredModel, reason: str, role: str = SERVE) -> dict[str, Any]:
    """The ``ModelUpdate`` record (schemas/ModelUpdate.avsc) of a stored model."""
    return {
        "event_id": new_event_id(),
        "ts": now_us(),
        "model_name": model.manifest.name,
        "version": model.version,
        "role": role,
        "manifest_json": model.manifest_json,
        "onnx": model.onnx,
        "signature": model.signature,
        "reason": reason,
    }


def update_key(model: str, role: str) -> str:
    """The key of ``model``'s ``role`` on the compacted model-updates topic: ``sizer``, ``sizer:shadow``."""
    return model if role == SERVE else f"{model}:{role.lower()}"


def clear_record(model: str, role: str, key: bytes, version: str = "") -> dict[str, Any]:
    """A signed ``ModelUpdate`` that clears ``model``'s ``role`` (only ``SHADOW`` can be cleared).

    It carries no ONNX; its ``manifest_json`` is the canonical JSON ``{"clear":..,"model":..}``,
    signed with the deployment key like a manifest. ``version`` (the one cleared) is informative.

    Raises:
        RegistryError: ``role`` is not ``SHADOW`` (the serving model is replaced or rolled back).
    """
    if role != SHADOW:
        raise RegistryError(f"only the {SHADOW} role can be cleared, not {role}")
    text = json.dumps({"clear": role.lower(), "model": model}, sort_keys=True, separators=(",", ":"))
    return {
        "event_id": new_event_id(),
        "ts": now_us(),
        "model_name": model,
        "version": version,
        "role": role,
        "manifest_json": text,
        "onnx": b"",
        "signature": hmac.new(key, text.encode(), hashlib.sha256).hexdigest(),
        "reason": CLEAR_REASON,
    }


def publish_update(
    settings: Settings, record: Mapping[str, Any], producer: EventProducer | None = None
) -> None:
    """Produce ``record`` to the model-updates topic, keyed by model and role, and wait for the ack.

    Raises:
        DeliveryError: the broker did not acknowledge the update.
    """
    own = producer is None
    producer = producer or EventProducer(settings, "tradeloop-trainer-publisher")
    key = update_key(str(record["model_name"]), str(record["role"]))
    producer.send(MODEL_UPDATES, key=key, record=record)
    producer.flush(30.0)
    if own:
        producer.close()
    log.info("published %s %s as %s (%s)", key, record["version"], record["role"], record["reason"])


def promote(
    settings: Settings,
    registry: ModelRegistry,
    version: str,
    reason: str = "promote",
    producer: EventProducer | None = None,
) -> StoredModel:
    """Verify, publish and mark ``version`` serving.

    Raises:
        RegistryError, SignatureError, DeliveryError: nothing is marked when publishing fails.
    """
    model = registry.load(version, settings.signing_key())
    publish_update(settings, model_update_record(model, reason), producer)
    registry.mark_serving(version, reason)
    return model


def publish_shadow(
    settings: Settings,
    registry: ModelRegistry,
    version: str,
    reason: str = "shadow",
    producer: EventProducer | None = None,
) -> StoredModel:
    """Verify and publish ``version`` as the shadow (scored on live requests, never answering).

    The registry's serving version is unchanged.

    Raises:
        RegistryError, SignatureError, DeliveryError.
    """
    model = registry.load(version, settings.signing_key())
    publish_update(settings, model_update_record(model, reason, role=SHADOW), producer)
    return model


def clear_shadow(
    settings: Settings, name: str, version: str = "", producer: EventProducer | None = None
) -> None:
    """Publish the signed clear record that ends ``name``'s shadow on every worker.

    Raises:
        DeliveryError: the broker did not acknowledge it.
    """
    publish_update(settings, clear_record(name, SHADOW, settings.signing_key(), version), producer)


def rollback(
    settings: Settings, registry: ModelRegistry, producer: EventProducer | None = None
) -> StoredModel:
    """Republish the previously served version.

    Raises:
        RegistryError: nothing was served before the current version.
    """
    target = registry.previous_serving()
    if target is None:
        raise RegistryError(f"no earlier {registry.name} version to roll back to")
    return promote(settings, registry, target, reason="rollback", producer=producer)

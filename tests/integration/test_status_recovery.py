"""The monitor's recovery actions, wired as `tradeloop health` wires them, against the embedded broker."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from streams.config.health import HealthSettings
from streams.errors import TradeloopError
from streams.heartbeat import Heartbeater
from streams.kafka.broker import free_port
from streams.manifest import Manifest, onnx_digest, sign_manifest
from streams.settings import Settings
from tests.kit.bus import wait_for_beats
from tradeloop.commands import health as health_command
from tradeloop.ops.actions import default_actions, restart_child
from tradeloop.ops.health import CLEAN_DISK, RESTORE_MODEL, HealthMonitor
from tradeloop.ops.status_model import MODEL_INTEGRITY, Problem
from tradeloop.ops.supervisor import Supervisor
from trainers.errors import RegistryError
from trainers.registry import ModelRegistry, promote

pytestmark = pytest.mark.integration


def store_version(settings: Settings, registry: ModelRegistry, version: str, onnx: bytes) -> None:
    manifest = Manifest(
        name="sizer", version=version, parent=None, created_us=time.time_ns() // 1000,
        feature_spec_version="spec-test", feature_spec_digest="d", feature_names=["a"], obs_mean=[0.0],
        obs_std=[1.0], onnx_sha256=onnx_digest(onnx),
    )  # fmt: skip
    text, signature = sign_manifest(manifest, settings.signing_key())
    registry.save(text, signature, onnx, {}, {"w": np.zeros(1)}, None, "candidate")


def test_rejected_newest_model_is_restored_by_the_monitor(topics: Settings) -> None:
    registry = ModelRegistry(topics.data_dir, "sizer", topics.trainer.keep_versions)
    for version, onnx in (("v0001", b"good"), ("v0002", b"also good")):
        store_version(topics, registry, version, onnx)
        promote(topics, registry, version)
    # Every worker rejects v0002 (say its bytes were damaged on the way) and keeps serving v0001.
    info = {"sizer": "v0001", "sizer.rejected": "v0002:checksum_mismatch"}
    worker = Heartbeater(topics, "inference", ident="inference-r", interval=0.5, info=lambda: info).start()
    limits = HealthSettings(check_interval_seconds=0.5)
    monitor = HealthMonitor(topics, default_actions(topics), ident="health-r", limits=limits)
    try:
        wait_for_beats(topics, "inference-r")
        first = monitor.check_once().check(MODEL_INTEGRITY)
        assert [p.facts.get("version") for p in first.problems] == ["v0002"]
        assert registry.serving_version == "v0001"  # the action rolled back and republished
        second = monitor.check_once()
        assert second.check(MODEL_INTEGRITY).ok, second.reasons
    finally:
        monitor.close()
        worker.stop()


def test_clean_disk_prunes_old_versions_and_spares_serving(topics: Settings) -> None:
    settings = topics.model_copy(update={"trainer": topics.trainer.model_copy(update={"keep_versions": 2})})
    registry = ModelRegistry(settings.data_dir, "sizer", keep_versions=100)  # save() must not prune yet
    for i in range(1, 6):
        store_version(settings, registry, f"v{i:04d}", b"model-%d" % i)
    promote(settings, registry, "v0001")
    summary = default_actions(settings)[CLEAN_DISK](Problem("data_dir", "disk 1% free"))
    kept = {v["version"] for v in registry.versions()}
    assert kept == {"v0005", "v0004", "v0001"}, summary
    assert "pruned 2 model versions" in summary


def test_restore_without_an_earlier_version_fails_loudly(topics: Settings) -> None:
    registry = ModelRegistry(topics.data_dir, "sizer", topics.trainer.keep_versions)
    store_version(topics, registry, "v0001", b"only")
    promote(topics, registry, "v0001")
    with pytest.raises(RegistryError, match="no earlier sizer version"):
        default_actions(topics)[RESTORE_MODEL](Problem("sizer", "rejected", {"version": "v0001"}))


def test_health_once_prints_and_exits_like_status(topics: Settings) -> None:
    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = topics

    health_command.register(app)
    result = CliRunner().invoke(app, ["health", "--once", "--no-actions"])
    assert result.exit_code == 1, result.output
    assert "UNHEALTHY" in result.stdout and "no tradeloop process is running" in result.stdout


def test_restart_child_asks_the_supervisor_which_restarts_it(settings: Settings, tmp_path: Path) -> None:
    supervisor = Supervisor(settings, tmp_path / "logs")
    child = supervisor.start("trainer", ["broker", "--port", str(free_port())])  # any long-running command
    try:
        old = child.process
        assert old is not None
        ready = time.monotonic() + 60
        while "broker ready" not in child.log_path.read_text(errors="replace"):  # handles SIGTERM now
            assert time.monotonic() < ready and old.poll() is None, child.log_path.read_text()
            time.sleep(0.2)
        summary = restart_child(supervisor, "trainer")(
            Problem("trainer-1", "training failed 3 runs in a row")
        )
        assert (
            summary
            == f"asked the supervisor to restart trainer (pid {old.pid}) for: training failed 3 runs in a row"
        )
        events = []
        deadline = time.monotonic() + 30
        while child.process is old or not child.alive:  # the supervisor restarts it from this thread
            assert time.monotonic() < deadline, events
            events += supervisor.supervise()
            time.sleep(0.2)
        assert old.returncode == 0, "the old process was stopped first, cleanly"
        assert [e.kind for e in events] == ["exited", "restarted"] and child.restarts == 1
        with pytest.raises(TradeloopError, match="no supervised worker"):
            restart_child(supervisor, "worker")(Problem("w", "x"))
    finally:
        supervisor.stop()

"""Shadow updates have a key of their own on the compacted model-updates topic: a late worker sees both."""

from __future__ import annotations

import pytest

from agents.inference.rollout import RolloutWatcher
from streams.settings import Settings
from tests.kit.bus import read_updates
from tests.kit.inference.harness import running_worker, wait_until
from tests.kit.trainers.registry import add_version
from trainers.registry import ModelRegistry, clear_shadow, promote, publish_shadow

pytestmark = pytest.mark.integration


def test_a_worker_started_after_a_shadow_serves_v1_and_shadows_v2(topics: Settings) -> None:
    key = topics.signing_key()
    registry = ModelRegistry(topics.data_dir)
    v1, v2 = add_version(registry, key=key), add_version(registry, key=key)
    promote(topics, registry, v1)
    publish_shadow(topics, registry, v2)
    assert registry.serving_version == v1  # a shadow is not promoted
    updates = read_updates(topics, 2)
    assert [(k, r["version"], r["role"]) for k, r in updates] == [
        (b"sizer", v1, "SERVE"),
        (b"sizer:shadow", v2, "SHADOW"),
    ]  # compaction keeps the newest record of each key: both survive

    with running_worker(topics) as worker, RolloutWatcher(topics) as watcher:
        info = worker.store.info()
        assert info["sizer"] == v1 and info["sizer.shadow"] == v2 and "sizer.canary" not in info
        assert wait_until(lambda: watcher.poll() >= 0 and watcher.serving().get(worker.worker_id) == {
            "sizer": v1, "sizer.shadow": v2}, 10.0)  # fmt: skip

        # Clearing the shadow ends it on the running worker...
        clear_shadow(topics, "sizer", version=v2)
        assert wait_until(lambda: "sizer.shadow" not in worker.store.info(), 10.0)
        assert worker.store.info()["sizer"] == v1
    assert [k for k, _ in read_updates(topics, 3)] == [b"sizer", b"sizer:shadow", b"sizer:shadow"]

    # ...and for a worker that starts afterwards.
    with running_worker(topics) as late:
        info = late.store.info()
        assert info["sizer"] == v1 and "sizer.shadow" not in info

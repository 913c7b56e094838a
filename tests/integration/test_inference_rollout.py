"""Hot swap under steady load, and two workers in one group sharing requests and both swapping."""

from __future__ import annotations

import threading
import time

import pytest

from agents.inference.rollout import RolloutWatcher
from streams.settings import Settings
from tests.kit.inference.harness import Engine, publish, running_worker, wait_until
from tests.kit.inference.model_factory import sizer_update

pytestmark = pytest.mark.integration

ORDER = {"v1": 1, "v2": 2, "v3": 3}


def test_hot_swap_under_steady_load_loses_and_fails_no_request(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, sizer_update("v1", key, constant=1.1))
    with running_worker(topics, canary_share=0.0) as worker, Engine(topics) as engine:
        ids: list[str] = []
        stop = threading.Event()

        def load() -> None:  # a steady 200 requests/s
            while not stop.is_set():
                ids.append(engine.request())
                time.sleep(0.005)

        thread = threading.Thread(target=load)
        thread.start()
        time.sleep(1.0)
        publish(topics, sizer_update("v2", key, constant=1.2))
        assert wait_until(lambda: worker.store.info()["sizer"] == "v2")
        time.sleep(1.0)
        publish(topics, sizer_update("v3", key, constant=1.3))
        assert wait_until(lambda: worker.store.info()["sizer"] == "v3")
        time.sleep(1.0)
        stop.set()
        thread.join()
        assert len(ids) > 300
        assert engine.wait_all(ids), f"{sum(s not in engine.decisions for s in ids)} requests unanswered"
        decisions = [engine.decisions[s] for s in ids]
        assert all(len(d) == 1 for d in decisions), "a request was answered twice"
        answers = sorted((d[0] for d in decisions), key=lambda d: d["ts"])
        assert not any(d["fallback"] for d in answers)
        versions = [ORDER[d["model_version"]] for d in answers]
        assert versions == sorted(versions), "an older model answered after a newer one"
        assert set(versions) == {1, 2, 3}
        expected = {1: 1.1, 2: 1.2, 3: 1.3}
        assert all(d["multiplier"] == pytest.approx(expected[ORDER[d["model_version"]]]) for d in answers)


def test_two_workers_in_one_group_share_requests_and_both_swap(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, sizer_update("v1", key, constant=1.1))
    with (
        running_worker(topics, canary_share=0.0) as first,
        running_worker(topics, canary_share=0.0) as second,
        Engine(topics) as engine,
        RolloutWatcher(topics) as watcher,
    ):
        # The second join rebalances the group; wait until both hold partitions.
        assert wait_until(lambda: first.assigned and second.assigned and
                          len(first.assigned | second.assigned) == topics.inference.sizing_partitions, 20.0)  # fmt: skip
        assert not first.assigned & second.assigned
        ids = [engine.request() for _ in range(60)]
        assert engine.wait_all(ids)
        assert {engine.decisions[s][0]["worker_id"] for s in ids} == {first.worker_id, second.worker_id}
        assert {engine.decisions[s][0]["model_version"] for s in ids} == {"v1"}
        publish(topics, sizer_update("v2", key, constant=1.2))
        published = time.monotonic()
        assert watcher.wait_for("sizer", "v2", workers=2, timeout=10.0)
        assert time.monotonic() - published < 5.0
        assert {w: v["sizer"] for w, v in watcher.serving().items()} == {
            first.worker_id: "v2",
            second.worker_id: "v2",
        }
        ids = [engine.request() for _ in range(60)]
        assert engine.wait_all(ids)
        answers = [engine.decisions[s][0] for s in ids]
        assert {d["worker_id"] for d in answers} == {first.worker_id, second.worker_id}
        assert {d["model_version"] for d in answers} == {"v2"}

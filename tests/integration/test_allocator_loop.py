"""The trainer loop trains the allocator too: periods on the topic -> trigger -> run -> model update.
A tiny PPO configuration: this tests the loop's wiring, not learning quality."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS
from tests.kit.bus import read_updates
from tests.kit.trainers.periods import bandit_periods
from trainers.run.loop import TrainerLoop
from trainers.run.state import TrainerState
from trainers.store.allocation import AllocationStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = {
    "iterations": 2, "train_batch_size": 256, "minibatch_size": 128, "num_epochs": 2, "num_envs": 4,
    "episode_len": 16, "min_new_periods": 250, "min_train_periods": 100,
}  # fmt: skip


@pytest.fixture()
def ray_session() -> Iterator[None]:
    yield
    from trainers.rl.ppo import shutdown_ray

    shutdown_ray()


def test_loop_trains_and_publishes_the_allocator_on_new_periods(topics: Settings, ray_session: None) -> None:
    trainer = topics.trainer.model_copy(
        update={
            "check_interval_seconds": 0.3,
            "bootstrap_samples": 200,
            "gate_margin": -100.0,
            "allocator": topics.trainer.allocator.model_copy(update=TINY),
        }
    )
    settings = topics.model_copy(update={"trainer": trainer})
    loop = TrainerLoop(settings)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), kwargs={"max_runs": 1}, daemon=True)
    thread.start()
    assert loop.ready.wait(120)
    periods = bandit_periods(300)
    with EventProducer(settings, "test-agents") as producer:
        for period in periods:
            producer.send(ALLOCATION_PERIODS, period["portfolio"], period)
    thread.join(180)
    assert not thread.is_alive(), "the loop did not finish its run"

    assert loop.allocator is not None and not loop.outcomes  # the sizer had nothing to train on
    (outcome,) = loop.allocator.outcomes
    assert outcome.published and outcome.mode == "full" and outcome.reason.startswith("new_periods")
    assert outcome.report["strategies"] == ["alpha", "beta", "gamma"]
    assert loop.periods_ingested.inserted == 300
    with AllocationStore.open(settings.data_dir) as store:
        assert store.count() == 300
    assert TrainerState.load(settings.data_dir, "allocator").last_seq == 300
    assert TrainerState.load(settings.data_dir).runs == 0  # the sizer's state is its own
    updates = [u for _, u in read_updates(settings, 1) if u["model_name"] == "allocator"]
    assert [u["version"] for u in updates] == [outcome.version]

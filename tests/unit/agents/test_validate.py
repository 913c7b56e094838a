"""Every class of bad input becomes a dead letter with its reason; good input passes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agents.market import Market
from agents.validate import Inbound, RecentIds, Validator, id_hash
from streams.config.agents import AgentSettings
from streams.deadletter import DeadLetter
from tests.kit.agents.badinputs import bad_inputs, duplicate_trade
from tests.kit.agents.builders import CODEC, T0, inbound, outcome, signal, trade

NOW = T0 + 10**10


@pytest.mark.parametrize(("topic", "reason", "key", "value"), bad_inputs(), ids=lambda v: str(v)[:24])
def test_bad_input_is_dead_lettered_with_its_reason(
    topic: str, reason: str, key: bytes, value: bytes
) -> None:
    letter = Validator(CODEC, 300).check(Inbound(topic, f"t.{topic}", 2, 41, key, value), NOW)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == reason, letter.error
    assert (letter.topic, letter.partition, letter.offset, letter.key, letter.raw) == (
        f"t.{topic}", 2, 41, key, value,
    )  # fmt: skip
    record = letter.record("worker-x", now=NOW)
    assert CODEC.decode("dead-letter", CODEC.encode("dead-letter", record))["reason"] == reason


@pytest.mark.parametrize(
    ("topic", "record"),
    [("trades", trade(1, T0)), ("signals", signal("a", T0)), ("outcomes", outcome("a", T0))],
)
def test_good_input_passes(topic: str, record: dict) -> None:
    assert Validator(CODEC, 300).check(inbound(topic, record, 0), NOW) == record


def test_every_bad_trade_reaches_the_market_dead_letters_and_never_the_features() -> None:
    market = Market(AgentSettings(), CODEC)
    msgs = [Inbound(t, f"t.{t}", 0, i, k, v) for i, (t, _, k, v) in enumerate(bad_inputs()) if t == "trades"]
    key, value = duplicate_trade()
    msgs += [
        Inbound("trades", "t.trades", 0, 100, key, value),
        Inbound("trades", "t.trades", 0, 101, key, value),
    ]
    out = market.handle(msgs, NOW)
    assert out.accepted == 1
    assert [d.reason for d in out.dead][-1] == "duplicate"
    assert len(out.dead) == len(msgs) - 1


def test_duplicate_window_is_bounded_and_survives_persistence() -> None:
    ids = RecentIds(capacity=128)
    for i in range(200):
        assert ids.add(f"e{i}")
    assert not ids.add("e199") and ids.add("e0"), "old ids leave the window"
    restored = RecentIds(capacity=128)
    restored.restore(ids.count, RecentIds(128).dirty_chunks().items())
    restored.restore(ids.count, ((i, ids.ring[i * 64 : (i + 1) * 64].tobytes()) for i in range(2)))
    assert not restored.add("e150") and restored.count == ids.count


def test_id_hash_is_stable_across_processes() -> None:
    code = "from agents.validate import id_hash; print(id_hash('abc'))"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(other.stdout) == id_hash("abc") > 0

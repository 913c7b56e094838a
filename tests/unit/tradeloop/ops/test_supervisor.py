"""The supervisor hands children exactly the parent's settings and applies its one restart policy."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.config.supervisor import SupervisorSettings
from streams.settings import Settings
from tradeloop.ops.supervisor import FINISHED, GAVE_UP, RESTARTING, Event, Supervisor, settings_env


def test_settings_env_round_trips_including_sections_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = Settings(
        kafka_bootstrap="k:9092", topic_prefix="x.", data_dir=Path("/tmp/d"), model_signing_key="s3cret",
        security={"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u",
                  "sasl_password": "pw"},
        trainer={"min_new_experiences": 42}, metrics_enabled=False,
    )  # fmt: skip
    env = settings_env(parent)
    assert env["TRADELOOP_MODEL_SIGNING_KEY"] == "s3cret"
    assert env["TRADELOOP_SECURITY__SASL_PASSWORD"] == "pw"
    for key in list(__import__("os").environ):
        if key.startswith("TRADELOOP_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = Settings()
    assert child == parent


# -- the restart policy, with real children ----------------------------------------------------
FAILS = ["no-such-command"]  # typer's usage error: exit code 2, quickly, without a broker
FINISHES = ["schemas", "list", "--json"]  # exit code 0


def supervisor(tmp_path: Path, **policy: float) -> Supervisor:
    settings = Settings(data_dir=tmp_path, metrics_enabled=False)
    knobs = {"max_restarts": 2, "restart_backoff_seconds": 0.0, **policy}
    return Supervisor(settings, tmp_path / "logs", policy=SupervisorSettings(**knobs))


def run_until(sup: Supervisor, done: Callable[[], bool], seconds: float = 60.0) -> list[Event]:
    events: list[Event] = []
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, events
        events += sup.supervise()
        time.sleep(0.05)
    return events


def test_a_failing_child_is_restarted_with_backoff_then_given_up(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)
    child = sup.start("worker", FAILS)
    events = run_until(sup, lambda: child.state == GAVE_UP)
    assert [e.kind for e in events] == ["exited", "restarted", "exited", "restarted", "gave_up"]
    assert child.restarts == 2 and sup.gave_up == [child]
    assert "exited with 2; gave up after 2 restarts" in events[-1].message
    assert str(child.log_path) in events[-1].message
    assert child.log_path.read_text().count("No such command") == 3  # every attempt appends to the log


def test_backoff_doubles_up_to_its_cap(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, restart_backoff_seconds=2.0, restart_backoff_max_seconds=5.0)
    assert [sup.backoff(n) for n in range(4)] == [2.0, 4.0, 5.0, 5.0]
    child = sup.start("worker", FAILS)
    events = run_until(sup, lambda: child.state == RESTARTING)
    assert events[-1].message.startswith("worker exited with 2; restarting in 2 s")
    assert child.describe(time.monotonic()) in ("restarting in 2 s", "restarting in 1 s")
    sup.stop()


def test_a_child_that_must_not_restart_is_given_up_at_once(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)
    child = sup.start("simulator", FAILS, restartable=False)
    events = run_until(sup, lambda: child.state == GAVE_UP)
    assert [e.kind for e in events] == ["gave_up"] and "(not restartable)" in events[0].message


def test_a_child_that_exits_0_has_finished(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)
    child = sup.start("schemas", FINISHES)
    events = run_until(sup, lambda: child.state == FINISHED)
    assert [e.kind for e in events] == ["finished"] and child.restarts == 0 and not sup.gave_up
    assert '"schemas"' in child.log_path.read_text()  # it really ran the command


def test_children_get_the_parent_pid_and_the_pid_list_follows_them(tmp_path: Path) -> None:
    changes: list[dict[str, int]] = []
    sup = supervisor(tmp_path, max_restarts=0)
    sup._on_change = lambda: changes.append(sup.pids())
    child = sup.start("worker", FAILS)
    assert child.pid is not None and changes[0] == {"worker": child.pid}
    cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[3:6] == [b"--parent-pid", str(os.getpid()).encode(), b"no-such-command"]
    run_until(sup, lambda: child.state == GAVE_UP)
    assert changes[-1] == {}

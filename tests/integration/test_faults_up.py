"""No process outlives ``tradeloop up``, whichever signal ends it, and a taken port is explained.

Each signal test starts a real ``tradeloop up`` (its own embedded broker on a free port, a small
warm-up) as a subprocess, waits until every component runs and the trainer's Ray is up, takes the
whole process tree below ``up`` from ``/proc`` (broker, components, Ray's processes), sends the
signal, and checks every one of those processes is gone within a bound. SIGHUP, SIGINT and SIGTERM
are handled by ``up`` (children stopped, broker last, exit 0); SIGKILL leaves the children to notice
by themselves (their parent-death signal and parent watch).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.datadir import DataDir
from streams.kafka.broker import free_port
from tests.kit.proc_tree import alive, command, descendants

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = {"worker", "trainer", "inference", "simulator"}
STARTUP_S = 150.0  # up, the broker, four components and Ray on a loaded 2-core machine
HANDLED_STOP_S = 45.0  # up's own stop: children's grace (8 s) + kill margin (5 s), monitor, broker (5 s)
ORPHANS_STOP_S = 30.0  # without up: each child's own SIGTERM deadline (8 s), Tansu's linger (~5 s)


def up_env(port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
    env.update(TRADELOOP_BROKER_PORT=str(port), TRADELOOP_METRICS_ENABLED="false", COLUMNS="120", **extra)
    return env


def start_up(data_dir: Path, port: int, *args: str, **env: str) -> subprocess.Popen[bytes]:
    with (data_dir.parent / "up.out").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tradeloop", "--data-dir", str(data_dir), "up", *args],
            env=up_env(port, **env), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip


def wait_running(up: subprocess.Popen[bytes], data_dir: Path) -> set[int]:
    """Until the pid file lists the broker and every component and Ray runs; the tree below ``up``."""
    pid_file = DataDir(data_dir).up_pids
    deadline = time.monotonic() + STARTUP_S
    while True:
        assert up.poll() is None, f"up exited with {up.returncode}: {tail(data_dir)}"
        assert time.monotonic() < deadline, f"not everything started: {tail(data_dir)}"
        try:
            pids = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            pids = {}
        tree = descendants(up.pid)
        ray = any("raylet" in command(p) for p in tree)
        if pids.get("broker") and set(pids.get("children", {})) == COMPONENTS and ray:
            assert {pids["broker"], *pids["children"].values()} <= tree
            time.sleep(3.0)  # the components are past their start-up and handle signals
            return descendants(up.pid)
        time.sleep(1.0)


def tail(data_dir: Path, lines: int = 40) -> str:
    out = data_dir.parent / "up.out"
    return "\n".join(out.read_text(errors="replace").splitlines()[-lines:]) if out.exists() else ""


def wait_gone(tree: set[int], seconds: float, data_dir: Path) -> float:
    started = time.monotonic()
    while any(alive(p) for p in tree):
        if time.monotonic() - started >= seconds:
            left = {p: command(p)[:100] for p in tree if alive(p)}
            pytest.fail(f"still running after {seconds:.0f}s: {left}\n{stacks(left, data_dir)}")
        time.sleep(0.25)
    return time.monotonic() - started


def stacks(pids: Iterable[int], data_dir: Path) -> str:
    """Where the tradeloop processes among ``pids`` are stuck: SIGUSR1 makes each write its threads'
    stacks to its log (tradeloop.cli.main), whose tail this returns."""
    logs = {"infer": "inference", "worker": "worker", "trainer": "trainer", "simulate": "simulator"}
    tails = []
    for pid in pids:
        words = command(pid).split()
        name = logs.get(words[-1]) if "--parent-pid" in words else None
        if name is None:
            continue
        os.kill(pid, signal.SIGUSR1)
        time.sleep(1.0)
        path = data_dir / "logs" / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-80:] if path.exists() else ["(no log)"]
        tails.append(f"--- {name} (pid {pid}), {path}:\n" + "\n".join(text))
    return "\n".join(tails)


@pytest.fixture()
def up_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, set[int]]]:
    if os.environ.get("TRADELOOP_KAFKA_BOOTSTRAP"):
        pytest.skip("tests up's own embedded broker")
    data_dir = tmp_path / "data"
    up = start_up(data_dir, free_port(), "--duration", "900", "--warmup", "50")
    tree: set[int] = set()
    try:
        tree = wait_running(up, data_dir)
        yield up, data_dir, tree
    finally:
        for pid in [up.pid, *tree]:  # whatever a failed test left: these pids only
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        up.wait()


@pytest.mark.faults
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_stop_signal_stops_every_child_and_up_exits_0(
    up_run: tuple[subprocess.Popen[bytes], Path, set[int]], signum: signal.Signals
) -> None:
    up, data_dir, tree = up_run
    started = time.monotonic()
    up.send_signal(signum)
    assert up.wait(HANDLED_STOP_S) == 0, tail(data_dir)
    took = time.monotonic() - started
    wait_gone(tree, 5.0, data_dir)  # up waited for its children: nothing may linger after it
    assert not DataDir(data_dir).up_pids.exists(), "the pid file is removed at the end"
    summary = tail(data_dir, 200)
    assert '"failures": []' in summary, summary
    print(f"{signum.name}: up and its {len(tree)} descendants stopped in {took:.1f}s")


@pytest.mark.faults
def test_when_up_is_killed_its_children_notice_and_exit(
    up_run: tuple[subprocess.Popen[bytes], Path, set[int]],
) -> None:
    up, data_dir, tree = up_run
    up.kill()
    up.wait()
    took = wait_gone(tree, ORPHANS_STOP_S, data_dir)
    print(f"SIGKILL: {len(tree)} orphans gone {took:.1f}s after up died")


def wait_pids(up: subprocess.Popen[bytes], data_dir: Path) -> dict[str, Any]:
    """Until the pid file lists the broker and every component (no waiting for Ray)."""
    deadline = time.monotonic() + STARTUP_S
    while True:
        assert up.poll() is None, f"up exited with {up.returncode}: {tail(data_dir)}"
        assert time.monotonic() < deadline, f"not everything started: {tail(data_dir)}"
        try:
            pids: dict[str, Any] = json.loads(DataDir(data_dir).up_pids.read_text())
        except (OSError, ValueError):
            pids = {}
        if pids.get("broker") and set(pids.get("children", {})) == COMPONENTS:
            return pids
        time.sleep(0.5)


@pytest.mark.faults
@pytest.mark.parametrize("victim", ["worker", "broker"])
def test_up_fails_with_exit_1_when_a_component_gives_up_or_the_broker_dies(
    tmp_path: Path, victim: str
) -> None:
    if os.environ.get("TRADELOOP_KAFKA_BOOTSTRAP"):
        pytest.skip("tests up's own embedded broker")
    data_dir = tmp_path / "data"
    # The first failure is the last: the supervisor gives up on the killed worker at once.
    up = start_up(
        data_dir, free_port(), "--duration", "900", "--warmup", "50", TRADELOOP_SUPERVISOR__MAX_RESTARTS="0"
    )
    tree: set[int] = set()
    try:
        pids = wait_pids(up, data_dir)
        tree = descendants(up.pid)
        os.kill(pids["broker"] if victim == "broker" else pids["children"][victim], signal.SIGKILL)
        assert up.wait(HANDLED_STOP_S + 30) == 1, tail(data_dir)
        wait_gone(tree, 10.0, data_dir)
    finally:
        for pid in [up.pid, *tree]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        up.wait()
    said = " ".join(tail(data_dir, 300).split())
    expected = "the embedded broker died" if victim == "broker" else "gave up on worker"
    assert f"failed: {expected}" in said, said


def test_a_taken_broker_port_names_the_process_holding_it(tmp_path: Path) -> None:
    if os.environ.get("TRADELOOP_KAFKA_BOOTSTRAP"):
        pytest.skip("tests up's own embedded broker")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        up = start_up(tmp_path / "data", port, "--duration", "30")
        code = up.wait(60)
    said = " ".join(tail(tmp_path / "data", 200).split())
    assert code == 1, said
    assert f"port {port} on 127.0.0.1 is held by pid {os.getpid()} (" in said, said
    assert "pytest" in said or sys.executable in said  # this test's own command line
    assert "TRADELOOP_BROKER_PORT" in said

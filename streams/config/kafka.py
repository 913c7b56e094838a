"""Kafka connection and security settings, passed through to every client."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from streams.config.base import Section

__all__ = ["KafkaSecurity"]


class KafkaSecurity(Section):
    """SASL/TLS pass-through. Empty means plaintext, as the embedded broker expects."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None

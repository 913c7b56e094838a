"""Kafka connection and security settings, passed through to every client.

A half-configured security section is an error, not a default: SASL credentials under a protocol
that ignores them, or a TLS file under a plaintext protocol, would silently connect without the
protection the operator asked for (or fail later with an opaque broker error).

Example:
    >>> KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="svc",
    ...               sasl_password="pw").sasl_password
    SecretStr('**********')
    >>> KafkaSecurity(sasl_username="svc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for KafkaSecurity
    ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator

from streams.config.base import Section

__all__ = ["KafkaSecurity"]

_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS_PROTOCOLS = ("SSL", "SASL_SSL")


class KafkaSecurity(Section):
    """SASL/TLS pass-through. Empty means plaintext, as the embedded broker expects.

    Set from the environment as ``TRADELOOP_SECURITY__<FIELD>``; secrets are ``SecretStr`` so
    they never appear in ``repr``, logs or ``model_dump_json``.
    """

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        sasl = {"sasl_mechanism": self.sasl_mechanism, "sasl_username": self.sasl_username,
                "sasl_password": self.sasl_password}  # fmt: skip
        tls = {"ssl_ca_location": self.ssl_ca_location, "ssl_certificate_location": self.ssl_certificate_location,
               "ssl_key_location": self.ssl_key_location, "ssl_key_password": self.ssl_key_password}  # fmt: skip
        if self.protocol in _SASL_PROTOCOLS:
            missing = [name for name, value in sasl.items() if value is None]
            if missing:
                raise ValueError(f"protocol {self.protocol} needs {', '.join(missing)}")
        else:
            given = [name for name, value in sasl.items() if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} set but protocol {self.protocol} does not use SASL")
        if self.protocol not in _TLS_PROTOCOLS:
            given = [name for name, value in tls.items() if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} set but protocol {self.protocol} does not use TLS")
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError(
                "a TLS client certificate needs both ssl_certificate_location and ssl_key_location"
            )
        if self.ssl_key_password is not None and self.ssl_key_location is None:
            raise ValueError("ssl_key_password set without ssl_key_location")
        return self

"""The rooted exception hierarchy. Each package adds its own subclasses of :class:`TradeloopError`."""

from __future__ import annotations

__all__ = [
    "BatchShapeError",
    "BrokerError",
    "BrokerNotFoundError",
    "ConfigError",
    "DeliveryError",
    "PortInUseError",
    "SchemaDecodeError",
    "SchemaEncodeError",
    "SchemaError",
    "SignatureError",
    "TradeloopError",
]


class TradeloopError(Exception):
    """Root of every error tradeloop raises on purpose."""


class ConfigError(TradeloopError):
    """Settings that cannot work together, or a required setting that is missing."""


class SchemaError(TradeloopError):
    """A schema file is missing, invalid, or incompatible with its history."""


class SchemaDecodeError(SchemaError):
    """Bytes that cannot be decoded. Keeps the raw bytes so a dead-letter record can carry them.

    Attributes:
        topic: the logical topic (e.g. ``trades``) the bytes were read for.
        reason: a machine-readable reason code (``truncated``, ``unknown_schema``, ``bad_magic``,
            ``bad_payload``, ``empty``).
        raw: the original bytes.
    """

    def __init__(self, topic: str, reason: str, detail: str, raw: bytes) -> None:
        super().__init__(f"cannot decode {topic!r} record: {reason}: {detail}")
        self.topic = topic
        self.reason = reason
        self.detail = detail
        self.raw = raw


class BatchShapeError(SchemaError):
    """A decoded batch record whose arrays do not line up, or that holds no events.

    Attributes:
        reason: ``ragged_batch`` or ``empty_batch``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SchemaEncodeError(SchemaError):
    """A record that does not fit its schema (missing field, wrong type)."""

    def __init__(self, topic: str, detail: str) -> None:
        super().__init__(f"cannot encode {topic!r} record: {detail}")
        self.topic = topic
        self.detail = detail


class BrokerError(TradeloopError):
    """The Kafka broker is unreachable or refused an operation."""


class BrokerNotFoundError(BrokerError):
    """No Tansu binary could be located for the embedded broker."""


class PortInUseError(BrokerError):
    """The embedded broker's port is taken; the message names the process that holds it."""


class DeliveryError(BrokerError):
    """A produced record was not acknowledged by the broker."""


class SignatureError(TradeloopError):
    """A model manifest's signature or checksum does not verify.

    Attributes:
        reason: machine-readable: unsigned, bad_signature, bad_manifest, checksum_mismatch.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason

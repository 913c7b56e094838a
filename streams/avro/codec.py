"""The one serialization boundary: Avro records to framed bytes and back.

Two standard framings, and readers accept both:

* **single-object** (default, no server): ``C3 01`` + 8-byte little-endian CRC-64-AVRO
  fingerprint of the schema's Parsing Canonical Form + Avro binary body, as the Avro
  specification defines it (:mod:`streams.avro.single_object`). Any Avro library can produce it from
  the ``.avsc`` files. Headers written big-endian by tradeloop before 0.2 are still read; each such
  record counts in ``tradeloop_codec_legacy_headers_total`` and is logged once per schema.
* **confluent** (when a Schema Registry URL is configured): ``00`` + 4-byte big-endian schema id
  + Avro binary body.

Every decoding failure raises :class:`~streams.errors.SchemaDecodeError` with the topic, a
machine-readable reason and the raw bytes.

Example:
    >>> codec = Codec()
    >>> data = codec.encode("trades", {"event_id": "e1", "ts": 1, "symbol": "X",
    ...                                 "price": 10.0, "size": 2.0, "side": "BUY"})
    >>> data[:2]
    b'\\xc3\\x01'
    >>> codec.decode("trades", data)["price"]
    10.0
"""

from __future__ import annotations

import io
import logging
import struct
import threading
from collections.abc import Mapping
from typing import Any, Final

from fastavro import schemaless_reader, schemaless_writer
from prometheus_client import Counter

from streams.avro.confluent_registry import ConfluentRegistryClient
from streams.avro.schemas import LoadedSchema, SchemaRegistry
from streams.avro.single_object import HEADER_SIZE, MAGIC, fingerprint_hex, parse_header
from streams.errors import SchemaDecodeError, SchemaEncodeError

__all__ = ["CONFLUENT_MAGIC", "LEGACY_HEADERS", "SINGLE_OBJECT_MAGIC", "Codec"]

log = logging.getLogger(__name__)

SINGLE_OBJECT_MAGIC: Final = MAGIC
CONFLUENT_MAGIC: Final = b"\x00"
_CF_HEADER: Final = 5
_ID = struct.Struct(">I")

LEGACY_HEADERS = Counter(
    "tradeloop_codec_legacy_headers_total",
    "Records read whose single-object header has the fingerprint big-endian (written by tradeloop < 0.2)",
    ["schema"],
)
_legacy_logged: set[str] = set()
_legacy_lock = threading.Lock()


def _note_legacy(schema: LoadedSchema, topic: str) -> None:
    LEGACY_HEADERS.labels(schema.name).inc()
    with _legacy_lock:
        if schema.name in _legacy_logged:
            return
        _legacy_logged.add(schema.name)
    log.warning(
        "%s record on %s has a pre-0.2 single-object header (fingerprint %s written big-endian); "
        "read for now, see docs/wire-format.md for when this stops",
        schema.name, topic, fingerprint_hex(schema.fingerprint),
    )  # fmt: skip


class Codec:
    """Encodes and decodes records of tradeloop's topics. Thread-safe; build one per process."""

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        confluent: ConfluentRegistryClient | None = None,
        subject_prefix: str = "tradeloop.",
    ) -> None:
        self._registry = registry or SchemaRegistry.default()
        self._confluent = confluent
        self._subject_prefix = subject_prefix
        self._by_id: dict[int, LoadedSchema] = {}
        self._topics: dict[str, tuple[LoadedSchema, bytes]] = {}
        self._batches: dict[str, tuple[LoadedSchema, bytes] | None] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> Codec:
        """A codec with Confluent framing when ``settings.schema_registry_url`` is set."""
        url = settings.schema_registry_url
        client = ConfluentRegistryClient(url) if url else None
        return cls(confluent=client, subject_prefix=settings.topic_prefix)

    @property
    def registry(self) -> SchemaRegistry:
        return self._registry

    def _header(self, subject: str, schema: LoadedSchema) -> bytes:
        if self._confluent is None:
            return schema.header
        schema_id = self._confluent.register(f"{self._subject_prefix}{subject}", schema.json)
        self._by_id[schema_id] = schema
        return CONFLUENT_MAGIC + _ID.pack(schema_id)

    def _topic(self, topic: str) -> tuple[LoadedSchema, bytes]:
        """The topic's schema and write header, cached: the hot path does one dict lookup."""
        cached = self._topics.get(topic)
        if cached is None:
            schema = self._registry.for_topic(topic)
            cached = self._topics[topic] = (schema, self._header(f"{topic}-value", schema))
        return cached

    def _batch(self, topic: str) -> tuple[LoadedSchema, bytes] | None:
        """The topic's batch schema and write header (None when it has none), cached.

        With a Schema Registry, batch schemas are registered under ``<topic>-<record name>``
        (Confluent's TopicRecordNameStrategy), since a batch record is not a version of the topic's
        single-event schema and would fail the ``<topic>-value`` subject's compatibility check.
        """
        if topic not in self._batches:
            schema = self._registry.batch_for_topic(topic)
            self._batches[topic] = (
                None if schema is None else (schema, self._header(f"{topic}-{schema.name}", schema))
            )
        return self._batches[topic]

    def header(self, topic: str) -> bytes:
        """The framing this codec writes before the body of ``topic``'s single-event records."""
        return (self._topics.get(topic) or self._topic(topic))[1]

    def encode(self, topic: str, record: Mapping[str, Any]) -> bytes:
        """Framed Avro bytes of ``record`` under the value schema of logical ``topic``.

        Raises:
            SchemaEncodeError: the record does not fit the schema.
        """
        return self._encode(topic, self._topics.get(topic) or self._topic(topic), record)

    def encode_batch(self, topic: str, columns: Mapping[str, Any]) -> bytes:
        """Framed Avro bytes of a batch record (one array per field) under ``topic``'s batch schema.

        Raises:
            SchemaEncodeError: the topic has no batch schema, or ``columns`` do not fit it.
        """
        found = self._batch(topic)
        if found is None:
            raise SchemaEncodeError(topic, "the topic has no batch schema")
        return self._encode(topic, found, columns)

    @staticmethod
    def _encode(topic: str, found: tuple[LoadedSchema, bytes], record: Mapping[str, Any]) -> bytes:
        schema, header = found
        out = io.BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, schema.parsed, record)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, struct.error) as exc:
            raise SchemaEncodeError(topic, f"{type(exc).__name__}: {exc}") from exc
        return out.getvalue()

    def _writer_schema(self, topic: str, data: bytes) -> tuple[LoadedSchema, int]:
        if data[:2] == SINGLE_OBJECT_MAGIC:
            fp = parse_header(data)
            if fp is None:
                raise SchemaDecodeError(topic, "truncated", f"{len(data)} bytes, header needs 10", data)
            found = self._registry.by_fingerprint(fp)
            if found is None:
                found = self._registry.by_legacy_fingerprint(fp)
                if found is None:
                    raise SchemaDecodeError(
                        topic, "unknown_schema", f"fingerprint {fingerprint_hex(fp)}", data
                    )
                _note_legacy(found, topic)
            return found, HEADER_SIZE
        if data[:1] == CONFLUENT_MAGIC:
            if len(data) < _CF_HEADER:
                raise SchemaDecodeError(topic, "truncated", f"{len(data)} bytes, header needs 5", data)
            (schema_id,) = _ID.unpack_from(data, 1)
            return self._schema_by_id(topic, schema_id, data), _CF_HEADER
        if not data:
            raise SchemaDecodeError(topic, "empty", "no bytes", data)
        raise SchemaDecodeError(topic, "bad_magic", f"first byte 0x{data[0]:02x} is no known framing", data)

    def _schema_by_id(self, topic: str, schema_id: int, data: bytes) -> LoadedSchema:
        found = self._by_id.get(schema_id)
        if found is not None:
            return found
        if self._confluent is None:
            raise SchemaDecodeError(topic, "unknown_schema", f"schema id {schema_id}, no registry set", data)
        try:
            found = LoadedSchema.from_json(self._confluent.schema(schema_id))
        except Exception as exc:  # registry down or schema invalid: the record cannot be read now
            raise SchemaDecodeError(topic, "unknown_schema", f"schema id {schema_id}: {exc}", data) from exc
        self._by_id[schema_id] = found
        return found

    def decode(self, topic: str, data: bytes) -> dict[str, Any]:
        """The record in ``data``, read with the current single-event schema of logical ``topic``.

        Raises:
            SchemaDecodeError: empty, truncated, unframed, unknown-schema, wrong-schema (for
                example a batch record) or malformed bytes.
        """
        reader, header = self._topics.get(topic) or self._topic(topic)
        if data.startswith(header):
            return self._read(topic, data, reader, reader, len(header))
        writer, start = self._writer_schema(topic, data)
        if writer.name != reader.name:
            raise SchemaDecodeError(topic, "wrong_schema", f"{writer.name} is not {reader.name}", data)
        return self._read(topic, data, writer, reader, start)

    def decode_any(self, topic: str, data: bytes) -> tuple[dict[str, Any], bool]:
        """The record in ``data`` and whether it is a batch record (one array per field).

        Single records are read with the topic's current schema, batch records with its current
        batch schema (:data:`streams.topics.BATCH_SCHEMA_OF_TOPIC`).

        Raises:
            SchemaDecodeError: as :meth:`decode`; a batch record on a topic without batches is
                ``wrong_schema``.
        """
        reader, header = self._topics.get(topic) or self._topic(topic)
        if data.startswith(header):
            return self._read(topic, data, reader, reader, len(header)), False
        batch = self._batches[topic] if topic in self._batches else self._batch(topic)
        if batch is not None and data.startswith(batch[1]):
            return self._read(topic, data, batch[0], batch[0], len(batch[1])), True
        writer, start = self._writer_schema(topic, data)
        if writer.name == reader.name:
            return self._read(topic, data, writer, reader, start), False
        if batch is not None and writer.name == batch[0].name:
            return self._read(topic, data, writer, batch[0], start), True
        raise SchemaDecodeError(topic, "wrong_schema", f"{writer.name} is not a schema of {topic}", data)

    @staticmethod
    def _read(
        topic: str, data: bytes, writer: LoadedSchema, reader: LoadedSchema, start: int
    ) -> dict[str, Any]:
        body = io.BytesIO(data)
        body.seek(start)
        try:
            if writer is reader or writer.fingerprint == reader.fingerprint:
                record = schemaless_reader(body, reader.parsed, None)
            else:
                record = schemaless_reader(body, writer.parsed, reader.parsed)
        # fastavro raises many types on malformed input; all of them mean "these bytes are bad".
        except Exception as exc:
            reason = "truncated" if isinstance(exc, EOFError | StopIteration) else "bad_payload"
            raise SchemaDecodeError(topic, reason, f"{type(exc).__name__}: {exc}", data) from exc
        if body.tell() != len(data):
            raise SchemaDecodeError(topic, "trailing_bytes", f"{len(data) - body.tell()} bytes left", data)
        if not isinstance(record, dict):
            raise SchemaDecodeError(topic, "bad_payload", "not a record", data)
        return record

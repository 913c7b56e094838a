"""A minimal Confluent Schema Registry REST client (register a subject version, fetch by id).

Only what the codec needs, on the standard library: confluent-kafka's own client pulls in an
HTTP stack and auth libraries that tradeloop does not otherwise use. Results are cached, so the
hot path never makes a request after the first record of each schema.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

from streams.errors import SchemaError

__all__ = ["ConfluentRegistryClient"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class ConfluentRegistryClient:
    """Registers schemas under ``<topic>-value`` subjects and resolves schema ids."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise SchemaError(f"schema registry URL must be http(s)://, got {url!r}")
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            f"{self._url}{path}", data=data, method=method, headers={"Content-Type": _CONTENT_TYPE}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SchemaError(
                f"schema registry {method} {path} failed: {exc.code} {exc.read()[:200]!r}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise SchemaError(f"schema registry at {self._url} unreachable: {exc}") from exc

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """The id of ``schema`` under ``subject``, registering it when new."""
        text = json.dumps(schema, sort_keys=True)
        key = (subject, text)
        with self._lock:
            cached = self._ids.get(key)
        if cached is not None:
            return cached
        answer = self._request("POST", f"/subjects/{subject}/versions", {"schema": text})
        schema_id = int(answer["id"])
        with self._lock:
            self._ids[key] = schema_id
            self._schemas[schema_id] = schema
        return schema_id

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The schema with ``schema_id`` (cached after the first lookup)."""
        with self._lock:
            cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        answer = self._request("GET", f"/schemas/ids/{schema_id}")
        schema = json.loads(answer["schema"])
        with self._lock:
            self._schemas[schema_id] = schema
        return schema

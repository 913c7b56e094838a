"""A generated Avro binary writer for flat records: the hot path of the join's output.

fastavro dispatches on the schema for every field of every record, about half a microsecond a
field here, and the join writes an Experience (25 fields, 34 doubles) per signal. Like
``dataclasses`` builds ``__init__``, :func:`compile_writer` generates the Python source of one
straight-line function per record schema, once: no per-field dispatch, arrays of doubles packed in
one ``struct`` call. It covers the types tradeloop's flat records use (primitives, enums, arrays
and maps of primitives, unions of ``null`` and one type) and raises :class:`UnsupportedSchema` for
anything else, so callers can fall back to fastavro. The bytes are the Avro specification's binary
encoding; the tests compare them with fastavro's on generated records of every schema it accepts.

Example:
    >>> schema = {"type": "record", "name": "R", "fields": [
    ...     {"name": "a", "type": "long"}, {"name": "b", "type": ["null", "string"]},
    ...     {"name": "c", "type": {"type": "array", "items": "double"}}]}
    >>> compile_writer(schema)({"a": -1, "b": "x", "c": [1.0]}).hex(" ")
    '01 02 02 78 02 00 00 00 00 00 00 f0 3f 00'
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from streams.errors import SchemaEncodeError

__all__ = ["UnsupportedSchema", "compile_writer"]

Writer = Callable[[Mapping[str, Any]], bytes]


class UnsupportedSchema(Exception):
    """The schema uses a type this writer does not generate code for (use fastavro)."""


def _long(value: int, out: bytearray) -> None:
    if type(value) is not int:
        raise TypeError(f"{value!r} is not an int")
    if 0 <= value < 64:  # one byte: counts, lengths, enum indexes
        out.append(value << 1)
        return
    n = (value << 1) ^ (value >> 63)
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _string(value: str, out: bytearray) -> None:
    data = value.encode()
    n = len(data)
    if n < 64:
        out.append(n << 1)
    else:
        _long(n, out)
    out += data


def _bytes(value: bytes, out: bytearray) -> None:
    _long(len(value), out)
    out += value


def _boolean(value: bool, out: bytearray) -> None:
    if type(value) is not bool:
        raise TypeError(f"{value!r} is not a bool")
    out.append(1 if value else 0)


def _doubles(values: Any, out: bytearray) -> None:
    n = len(values)
    if n:
        _long(n, out)
        out += struct.pack(f"<{n}d", *values)
    out.append(0)


_RUNTIME: dict[str, Any] = {
    "_long": _long, "_string": _string, "_bytes": _bytes, "_boolean": _boolean, "_doubles": _doubles,
    "_D": struct.Struct("<d").pack, "_F": struct.Struct("<f").pack,
}  # fmt: skip
_SIMPLE = {
    "int": "_long({v}, out)", "long": "_long({v}, out)", "bytes": "_bytes({v}, out)",
    "boolean": "_boolean({v}, out)", "double": "out += _D({v})", "float": "out += _F({v})",
}  # fmt: skip


class _Source:
    """The lines of the generated function, with fresh names for nested values and constants."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self._n = 0

    def fresh(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def value(self, schema: Any, v: str, depth: int) -> None:
        """Lines that write expression ``v`` of type ``schema``."""
        kind = schema if isinstance(schema, str) else (schema if isinstance(schema, list) else schema["type"])
        if kind == "string":  # inline: the commonest field, usually shorter than 64 bytes
            data = self.fresh("b")
            self.add(depth, f"{data} = {v}.encode()")
            self.add(depth, f"if len({data}) < 64: out.append(len({data}) << 1)")
            self.add(depth, f"else: _long(len({data}), out)")
            self.add(depth, f"out += {data}")
        elif isinstance(kind, str) and kind in _SIMPLE:
            self.add(depth, _SIMPLE[kind].format(v=v))
        elif kind == "null":
            self.add(depth, f"if {v} is not None: raise TypeError('not null')")
        elif isinstance(kind, list):
            self._union(kind, v, depth)
        elif kind == "enum":
            index = self.fresh("_enum")
            self.constants[index] = {s: i for i, s in enumerate(schema["symbols"])}
            self.add(depth, f"_long({index}[{v}], out)")
        elif kind == "array":
            items = schema["items"]
            if items == "double" or items == {"type": "double"}:
                self.add(depth, f"_doubles({v}, out)")
                return
            seq, item = self.fresh("s"), self.fresh("x")
            self.add(depth, f"{seq} = {v}")
            self.add(depth, f"if {seq}:")
            self.add(depth + 1, f"_long(len({seq}), out)")
            self.add(depth + 1, f"for {item} in {seq}:")
            self.value(items, item, depth + 2)
            self.add(depth, "out.append(0)")
        elif kind == "map":
            mapping, key, item = self.fresh("m"), self.fresh("k"), self.fresh("x")
            self.add(depth, f"{mapping} = {v}")
            self.add(depth, f"if {mapping}:")
            self.add(depth + 1, f"_long(len({mapping}), out)")
            self.add(depth + 1, f"for {key}, {item} in {mapping}.items():")
            self.add(depth + 2, f"_string({key}, out)")
            self.value(schema["values"], item, depth + 2)
            self.add(depth, "out.append(0)")
        else:
            raise UnsupportedSchema(f"type {kind!r}")

    def _union(self, branches: list[Any], v: str, depth: int) -> None:
        if len(branches) != 2 or "null" not in branches:
            raise UnsupportedSchema(f"union {branches!r} (only null and one type)")
        null = branches.index("null")
        name = self.fresh("u")
        self.add(depth, f"{name} = {v}")
        self.add(depth, f"if {name} is None:")
        self.add(depth + 1, f"out.append({2 * null})")
        self.add(depth, "else:")
        self.add(depth + 1, f"out.append({2 * (1 - null)})")
        self.value(branches[1 - null], name, depth + 1)


def compile_writer(schema: Mapping[str, Any]) -> Writer:
    """A function from a record to its Avro binary body under ``schema`` (a record schema's JSON).

    The function raises :class:`~streams.errors.SchemaEncodeError` for a record that does not fit.

    Raises:
        UnsupportedSchema: the schema has a type outside the generated subset.
    """
    if schema.get("type") != "record":
        raise UnsupportedSchema("only record schemas")
    source = _Source()
    source.add(0, "def write(r):")
    source.add(1, "out = bytearray()")
    for field in schema["fields"]:
        if not str(field["name"]).isidentifier():
            raise UnsupportedSchema(f"field name {field['name']!r}")
        source.value(field["type"], f"r[{field['name']!r}]", 1)
    source.add(1, "return bytes(out)")
    namespace: dict[str, Any] = {**_RUNTIME, **source.constants}
    exec("\n".join(source.lines), namespace)  # noqa: S102 - our own generated code, as dataclasses does
    generated: Callable[[Mapping[str, Any]], bytes] = namespace["write"]
    name = schema["name"]

    def write(record: Mapping[str, Any]) -> bytes:
        try:
            return generated(record)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, struct.error) as exc:
            raise SchemaEncodeError(name, f"{type(exc).__name__}: {exc}") from exc

    return write

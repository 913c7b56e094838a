"""JSON output of the list commands (``--json``): one document on stdout, for scripts.

Non-finite floats become ``null`` (JSON has no NaN), so any JSON parser reads the output.

Example:
    >>> print(json_text({"sharpe": float("nan"), "rows": [1.5, float("inf")]}))
    {
      "sharpe": null,
      "rows": [
        1.5,
        null
      ]
    }
"""

from __future__ import annotations

import json
import math
from typing import Any

import typer

__all__ = ["echo_json", "finite", "json_text"]


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_text(data: Any) -> str:
    """``data`` as indented JSON, non-finite floats as null, anything else unknown as a string."""
    return json.dumps(finite(data), indent=2, default=str, allow_nan=False)


def echo_json(data: Any) -> None:
    """Print ``data`` as one JSON document on stdout (no colours, no wrapping)."""
    typer.echo(json_text(data))

"""Shared output of the benchmarks: a rich table on stdout and a JSON file."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["machine", "report"]


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def report(
    title: str, rows: list[tuple[str, str, str]], result: dict[str, Any], json_path: Path | None
) -> None:
    """Print ``rows`` (metric, value, target) and write ``result`` (plus date and machine) as JSON."""
    table = Table("metric", "value", "target", title=title)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if json_path is not None:
        payload = {**result, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine()}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2) + "\n")

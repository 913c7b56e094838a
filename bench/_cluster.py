"""The cluster a benchmark runs on: an existing one (``--bootstrap``) or an embedded broker of its own."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.kafka.broker import EmbeddedBroker, free_port

__all__ = ["add_bootstrap_option", "cluster"]


def add_bootstrap_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap", default=None,
        help="bootstrap servers of an existing cluster (default: an embedded Tansu broker for this run)",
    )  # fmt: skip


@contextmanager
def cluster(
    bootstrap: str | None, log_path: Path | None = None
) -> Iterator[tuple[str, EmbeddedBroker | None]]:
    """``(bootstrap, None)`` for an existing cluster, else ``(its bootstrap, broker)`` of a broker
    started here and stopped on exit."""
    if bootstrap:
        yield bootstrap, None
        return
    with EmbeddedBroker(port=free_port(), log_path=log_path) as broker:
        yield broker.bootstrap, broker

"""Command modules; each exposes ``register(app)``. Order here is the order in ``--help``."""

from __future__ import annotations

from tradeloop.commands import (
    broker,
    data,
    health,
    infer,
    models,
    schemas,
    simulate,
    status,
    topics,
    train,
    up,
    worker,
)

COMMAND_MODULES = (up, status, broker, topics, schemas, simulate, worker, train, infer, models, data, health)

"""Command modules; each exposes ``register(app)``. Order here is the order in ``--help``."""

from __future__ import annotations

from tradeloop.commands import broker, topics

COMMAND_MODULES = (broker, topics)

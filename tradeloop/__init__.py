"""The ``tradeloop`` CLI: the one place that wires streams, agents and trainers together."""

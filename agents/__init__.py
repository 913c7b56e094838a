"""The stream layer: Faust agents that turn engine events into features and training experiences.

Every agent is a thin loop over a pure handler that unit tests call directly:

* :mod:`agents.validate` decodes and checks inputs; rejects become :class:`streams.deadletter.DeadLetter`.
* :mod:`agents.market` runs validation, rolling features (:mod:`agents.features`) and rapid price
  move detection (:mod:`agents.price_moves`) over a batch of trades.
* :mod:`agents.join` joins signals with point-in-time features and their outcomes into experiences.
* :mod:`agents.periods` rolls experiences up into per-portfolio allocation periods.
* :mod:`agents.journal` persists per-symbol and per-portfolio state atomically, one record per batch.
* :mod:`agents.worker` wires them into a Faust app (:mod:`agents.app`) and runs it.

docs/agents.md explains the state, the exactly-once reasoning, expiry and throttling.
"""

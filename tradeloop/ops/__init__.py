"""Operations above the base: watching, healing and running the whole loop.

* :mod:`~tradeloop.ops.status_model`, :mod:`~tradeloop.ops.status` and
  :mod:`~tradeloop.ops.status_collect`: what ``tradeloop status`` observes on the bus, the rules
  that judge it, and the reader that collects it.
* :mod:`~tradeloop.ops.health` (with :mod:`~tradeloop.ops.health_metrics`) and
  :mod:`~tradeloop.ops.actions`: the health monitor and its recovery actions.
* :mod:`~tradeloop.ops.supervisor`: child processes under one restart policy.
* :mod:`~tradeloop.ops.up`: ``tradeloop up`` as an object; :mod:`~tradeloop.ops.uplift`: the live
  uplift of the served models.
"""

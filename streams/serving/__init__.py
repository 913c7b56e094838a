"""The serving core: verify model updates, hold and swap models, build observations, size, fall back.

Two kinds of process serve the sizer, and both import this package: the inference workers
(``agents.inference``, answering SizingRequests over the bus) and an engine's in-process sizer
(:class:`streams.engine_sizer.EngineSizer`, answering in the engine's own thread). It lives in the
base package because the SDK is in the base package and ``streams`` imports neither ``agents``
nor ``trainers``; so there is one implementation of every check and rule, not two.

Modules, each with one job:

* :mod:`~streams.serving.verify`: the checks a ModelUpdate passes before it may serve;
* :mod:`~streams.serving.runtime`: the verified graph with its normalisation folded in, run;
* :mod:`~streams.serving.model_store`: serving/previous/shadow/canary slots and their transitions;
* :mod:`~streams.serving.canary`: the sizer's canary (a share of the requests, judged on outcomes);
* :mod:`~streams.serving.updates`: model-updates keys and the signed clear record;
* :mod:`~streams.serving.observation`: observations from the request and the latest FeatureSnapshot;
* :mod:`~streams.serving.sizing`: scoring with the guardrails; :mod:`~streams.serving.fallback`: the rule;
* :mod:`~streams.serving.control`: kill switch and freeze; :mod:`~streams.serving.follow`: reading
  control and model-updates; :mod:`~streams.serving.core`: all of it for one serving process;
* :mod:`~streams.serving.constants`, :mod:`~streams.serving.errors`, :mod:`~streams.serving.metrics`.

What stays with the workers (``agents.inference``): the request consumer group, strategy weights
and the allocator's canary (which needs the weights code).
"""

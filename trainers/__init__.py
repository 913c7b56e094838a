"""The trainer (docs/trainer.md, docs/allocator.md), laid out by role.

* :mod:`trainers.run`: the generic training run and the trainer loop every model kind shares;
* :mod:`trainers.sizer`, :mod:`trainers.allocator`: what is each model kind's own;
* :mod:`trainers.store`: the SQLite stores, their ingestion, the training log, data export;
* :mod:`trainers.rl`: everything that touches Ray RLlib or the torch policy;
* ``registry``, ``metrics``, ``errors``: the model registry, Prometheus series and errors of all.

Builds on ``streams`` only; ``agents`` never imports it and it never imports ``agents``
(tests/unit/test_layering.py). A model leaves this package as a signed manifest plus ONNX bytes
on the model-updates topic.
"""

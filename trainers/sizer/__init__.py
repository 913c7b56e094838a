"""The sizer model kind (docs/trainer.md).

Its env, run data, sampling, pipeline, evaluation, export and its track in the trainer loop; the
run, the gate, PPO and the stores are shared (:mod:`trainers.run`, :mod:`trainers.rl`,
:mod:`trainers.store`).
"""

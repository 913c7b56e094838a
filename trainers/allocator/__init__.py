"""The allocator model kind (docs/allocator.md).

Its env, training pairs, pipeline, evaluation, export, weight history and its track in the
trainer loop; the run, the gate, PPO and the stores are shared (:mod:`trainers.run`,
:mod:`trainers.rl`, :mod:`trainers.store`).
"""

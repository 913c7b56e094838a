"""The generic training run and the trainer loop, shared by every model kind.

The run pipeline (modes, resume, PPO iterations, gate, signing, publishing), run directories and
trainer state, normalisation statistics, the evaluation gate, triggers, tracks and the trainer
process. A model kind (:mod:`trainers.sizer`, :mod:`trainers.allocator`) supplies what differs:
its data window, env, export, gate baselines and report fields.
"""

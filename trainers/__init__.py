"""The trainer: replay stores, the sizer and allocator environments, RLlib PPO, evaluation gate,
ONNX export, registry (docs/trainer.md, docs/allocator.md).

Builds on ``streams`` only; ``agents`` never imports it and it never imports ``agents``. A model
leaves this package as a signed manifest plus ONNX bytes on the model-updates topic.
"""

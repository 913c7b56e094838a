"""The trainer: replay store, sizer environment, RLlib PPO, evaluation gate, ONNX export, registry.

Builds on ``streams`` only; ``agents`` never imports it and it never imports ``agents``. A model
leaves this package as a signed manifest plus ONNX bytes on the model-updates topic.
"""

"""Everything that touches Ray RLlib or the torch policy.

The policy network, its RLModule, PPO (config, runner, Ray start-up) and the ONNX export of an
inference-only torch module. They are model-neutral: the sizer and the allocator build the same
network with their own number of outputs and initial mean.
"""

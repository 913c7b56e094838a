"""Everything that touches Ray RLlib or the torch policy: the policy network, its RLModule, PPO
(config, runner, Ray start-up) and the ONNX export of an inference-only torch module.

The policy, its module and the export are model-neutral: the sizer and the allocator build the
same network with their own number of outputs and initial mean.
"""

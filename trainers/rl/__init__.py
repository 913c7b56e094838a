"""Everything that touches Ray RLlib or the torch policy.

The policy network, its RLModule, PPO (config, runner, Ray start-up) and the ONNX export of an
inference-only torch module. They are model-neutral: the sizer and the allocator build the same
network with their own number of outputs and initial mean.
"""

import os

# Ray reads this once, when it is imported (ray._private.ray_constants), so it is set before any
# module of this package imports ray. Ray's C++ failure-signal handler covers SIGTERM: a stop signal
# during ray.init becomes a stack trace and an abort (-6), and ray.shutdown() puts SIGTERM back to
# the default action behind Python's handler, so a supervisor's second SIGTERM killed a trainer that
# was stopping cleanly (-15). tradeloop's processes handle their stop signals themselves
# (streams.lifetime); a value set in the environment still wins.
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")

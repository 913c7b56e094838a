"""The torch RLModule of the sizer and the allocator for RLlib's new API stack (PPO needs the value
function API).

The policy part is :class:`trainers.rl.policy.PolicyNet`, whose weights keep the ``_pi.`` prefix
in the module's state dict; the log std is one state-independent parameter per action dimension
and the value function a separate MLP of the same widths. The action space's size sets the
number of outputs (1 for the sizer, one per strategy for the allocator).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.annotations import override
from torch import nn

from trainers.rl.policy import OBS_CLIP, PolicyNet, mlp

__all__ = ["PolicyTorchModule"]


class PolicyTorchModule(TorchRLModule, ValueFunctionAPI):
    """PPO-compatible RLModule: a :class:`PolicyNet` mean, a state-independent log std, a value MLP.

    ``model_config``: ``hidden`` (list of widths), ``init_log_std``, ``init_mean`` (initial policy
    mean in RLlib's normalised action range; None: the sizer's multiplier 1.0).
    """

    @override(RLModule)
    def setup(self) -> None:
        assert self.observation_space is not None and self.observation_space.shape is not None
        n_features = int(self.observation_space.shape[0])
        config = dict(self.model_config or {})  # type: ignore[arg-type]
        hidden = list(config.get("hidden", [32, 32]))
        assert self.action_space is not None and self.action_space.shape is not None
        n_actions = int(self.action_space.shape[0])
        self._pi = PolicyNet(n_features, hidden, n_actions, config.get("init_mean"))
        self._log_std = nn.Parameter(torch.full((n_actions,), float(config.get("init_log_std", 0.0))))
        self._vf = nn.Sequential(*mlp(n_features, hidden), nn.Linear(hidden[-1] if hidden else n_features, 1))

    @override(RLModule)
    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mean = self._pi(batch[Columns.OBS])
        log_std = self._log_std.expand_as(mean)
        return {Columns.ACTION_DIST_INPUTS: torch.cat([mean, log_std], dim=-1)}

    @override(ValueFunctionAPI)
    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        obs = torch.clamp(batch[Columns.OBS], -OBS_CLIP, OBS_CLIP)
        return self._vf(obs).squeeze(-1)

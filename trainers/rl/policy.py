"""The policy network in plain torch, shared by the sizer and the allocator.

The policy is a small tanh MLP producing the mean of a diagonal Gaussian over RLlib's normalised
action range [-1, 1], with one output per action dimension (1 for the sizer, one per strategy for
the allocator). Each kind wraps it in its own inference-only forward pass for ONNX
(:class:`trainers.sizer.export.DeterministicSizer`,
:class:`trainers.allocator.export.DeterministicAllocator`).

The mean head starts at zero weights and a bias of ``init_mean``; the default is the sizer's
multiplier 1.0, so an untrained sizer is the fixed-size baseline and training learns deviations
from it. Observations are clamped to ``[-OBS_CLIP, OBS_CLIP]`` inside the network, so outliers
behave the same in torch and ONNX.

This module does not import Ray, so the registry, the CLI and the export load quickly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from trainers.sizer.env import to_normalised_action

__all__ = [
    "OBS_CLIP",
    "PolicyNet",
    "dead_unit_share",
    "mlp",
    "policy_from_state",
    "renormalise_first_layers",
]

OBS_CLIP: Final = 10.0
_FIRST_LAYERS: Final = ("_pi.net.0", "_vf.0")


def mlp(n_in: int, hidden: Sequence[int]) -> nn.Sequential:
    """``n_in`` -> ``hidden`` widths as Linear + Tanh pairs (empty: the identity)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.Tanh()]
        n_in = width
    return nn.Sequential(*layers)


class PolicyNet(nn.Module):
    """Normalised observations -> Gaussian mean in RLlib's normalised action range.

    The allocator uses it with ``n_actions`` outputs (one per strategy) and ``init_mean`` 0
    (logits 0: equal weights); the defaults are the sizer's (one output, multiplier 1.0).
    """

    def __init__(
        self, n_features: int, hidden: Sequence[int], n_actions: int = 1, init_mean: float | None = None
    ) -> None:
        super().__init__()
        self.net = mlp(n_features, hidden)
        self.mean = nn.Linear(hidden[-1] if hidden else n_features, n_actions)
        nn.init.zeros_(self.mean.weight)
        nn.init.constant_(self.mean.bias, to_normalised_action(1.0) if init_mean is None else init_mean)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mean(self.net(torch.clamp(obs, -OBS_CLIP, OBS_CLIP)))


def policy_from_state(
    state: Mapping[str, Any], n_features: int, hidden: Sequence[int], n_actions: int = 1
) -> PolicyNet:
    """A :class:`PolicyNet` loaded from a :class:`trainers.rl.module.PolicyTorchModule` state dict."""
    policy = PolicyNet(n_features, hidden, n_actions)
    own = {
        k.removeprefix("_pi."): torch.as_tensor(np.asarray(v))
        for k, v in state.items()
        if k.startswith("_pi.")
    }
    policy.load_state_dict(own)
    policy.eval()
    return policy


def renormalise_first_layers(
    state: Mapping[str, Any],
    old_mean: np.ndarray,
    old_std: np.ndarray,
    new_mean: np.ndarray,
    new_std: np.ndarray,
) -> dict[str, np.ndarray]:
    """Module weights that compute on new-normalised inputs what ``state`` computed on old ones.

    With ``x_old = (x - m_old) / s_old`` and ``x_new = (x - m_new) / s_new``,
    ``x_old = x_new * s_new / s_old + (m_new - m_old) / s_old``, so each first linear layer
    ``W x_old + b`` becomes ``(W * s_new / s_old) x_new + (b + W (m_new - m_old) / s_old)``: a warm
    start on a window with new statistics starts from exactly the parent's function (up to the
    observation clamp).
    """
    out = {k: np.array(v, dtype=np.float32) for k, v in state.items()}
    scale = (new_std / old_std).astype(np.float32)
    shift = ((new_mean - old_mean) / old_std).astype(np.float32)
    for prefix in _FIRST_LAYERS:
        weight, bias = out.get(f"{prefix}.weight"), out.get(f"{prefix}.bias")
        if weight is None or bias is None:
            continue
        out[f"{prefix}.bias"] = bias + weight @ shift
        out[f"{prefix}.weight"] = weight * scale[None, :]
    return out


def dead_unit_share(policy: PolicyNet, obs: np.ndarray, saturation: float = 0.99) -> float:
    """Share of hidden tanh units that are saturated (|h| > ``saturation``) or constant on ``obs``.

    Such units pass no gradient: a share near 1 means the network has stopped learning.
    """
    x = torch.as_tensor(obs, dtype=torch.float32).clamp(-OBS_CLIP, OBS_CLIP)
    dead, total = 0, 0
    with torch.no_grad():
        for layer in policy.net:
            x = layer(x)
            if isinstance(layer, nn.Tanh):
                saturated = (x.abs() > saturation).float().mean(dim=0) > 0.99
                constant = x.std(dim=0) < 1e-6
                dead += int((saturated | constant).sum())
                total += x.shape[1]
    return dead / total if total else 0.0

"""The policy network: warm-start algebra on new normalisation statistics, dead units."""

from __future__ import annotations

import numpy as np
import torch

from streams.features import SIZER_SPEC
from tests.kit.trainers.policies import trained_like_policy
from trainers.rl.policy import (
    OBS_CLIP,
    PolicyNet,
    dead_unit_share,
    policy_from_state,
    renormalise_first_layers,
)
from trainers.sizer.export import DeterministicSizer

N = SIZER_SPEC.size


def test_renormalised_weights_compute_the_same_function_on_new_statistics() -> None:
    rng = np.random.default_rng(3)
    policy = trained_like_policy(N)
    state = {f"_pi.{k}": v.numpy() for k, v in policy.state_dict().items()}
    x = rng.normal(size=(500, N)) * 2 + 1
    old_mean, old_std = rng.normal(size=N), rng.uniform(0.5, 2, size=N)
    new_mean, new_std = rng.normal(size=N), rng.uniform(0.5, 2, size=N)
    moved = policy_from_state(
        renormalise_first_layers(state, old_mean, old_std, new_mean, new_std), N, [32, 32]
    )
    old_obs = torch.as_tensor((x - old_mean) / old_std, dtype=torch.float32)
    new_obs = torch.as_tensor((x - new_mean) / new_std, dtype=torch.float32)
    keep = (old_obs.abs().max(1).values < OBS_CLIP) & (new_obs.abs().max(1).values < OBS_CLIP)
    with torch.no_grad():
        before = DeterministicSizer(policy)(old_obs[keep])
        after = DeterministicSizer(moved)(new_obs[keep])
    torch.testing.assert_close(after, before, atol=1e-4, rtol=0)


def test_dead_unit_share_sees_saturation() -> None:
    policy = PolicyNet(N, [16])
    obs = np.random.default_rng(4).normal(size=(256, N)).astype(np.float32)
    assert dead_unit_share(policy, obs) < 0.5
    with torch.no_grad():
        policy.net[0].weight.mul_(1000.0)
    assert dead_unit_share(policy, obs) > 0.5

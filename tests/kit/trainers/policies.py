"""Policies that answer like trained ones, without training."""

from __future__ import annotations

import torch

from trainers.rl.policy import PolicyNet


def trained_like_policy(inputs: int, seed: int = 0) -> PolicyNet:
    """A sizer policy whose mean head is far from the untrained (fixed-size) baseline."""
    torch.manual_seed(seed)
    policy = PolicyNet(inputs, [32, 32])
    torch.nn.init.normal_(policy.mean.weight, std=0.8)
    return policy.eval()

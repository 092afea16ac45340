# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Activation checkpointing of module calls and the per-call prefix caches."""

from __future__ import annotations

import torch
from torch import nn

from snapflow_ros.policies.lerobot_vla.target_time import (
    cache_tensors,
    checkpoint_module_calls,
    prefix_cache,
)


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(6, 24)
        self.down = nn.Linear(24, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.nn.functional.gelu(self.up(x)))


def make_stack(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(TinyMLP(), nn.LayerNorm(6), TinyMLP())


def test_checkpointed_calls_give_the_same_outputs_and_gradients():
    plain, checkpointed = make_stack(0), make_stack(0)
    mlps = [m for m in checkpointed.modules() if isinstance(m, TinyMLP)]
    assert checkpoint_module_calls(mlps) == 2
    assert checkpoint_module_calls(mlps) == 0  # already switched
    assert plain.state_dict().keys() == checkpointed.state_dict().keys()
    x = torch.randn(5, 6, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    out, out2 = plain(x), checkpointed(x2)
    assert torch.equal(out, out2)
    out.pow(2).sum().backward()
    out2.pow(2).sum().backward()
    assert torch.equal(x.grad, x2.grad)
    for a, b in zip(plain.parameters(), checkpointed.parameters()):
        assert torch.equal(a.grad, b.grad)
    with torch.no_grad():
        assert torch.equal(plain(x), checkpointed(x))


def test_each_prefix_cache_is_fresh_so_appends_never_reach_the_context():
    keys = tuple(torch.randn(2, 1, 5, 4) for _ in range(3))
    values = tuple(torch.randn(2, 1, 5, 4) for _ in range(3))
    cache = prefix_cache(keys, values)
    cache.update(torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4), 0)
    assert cache.layers[0].keys.shape[2] == 8
    again = prefix_cache(keys, values)
    assert [k.shape[2] for k in cache_tensors(again)[0]] == [5, 5, 5]
    assert all(torch.equal(a, b) for a, b in zip(cache_tensors(again)[0], keys))
